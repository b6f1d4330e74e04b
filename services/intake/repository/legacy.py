"""Bringing incidents written by the previous embedded engine (the document store under
``<data_dir>/store``) into intake's SQLite file, once, losing nothing."""

from __future__ import annotations

from typing import Any

from libs.common.store import legacy_documents
from services.intake.repository.sqlite import SqliteIntakeRepository

LEGACY_COLLECTION = "incidents"


def import_legacy_incidents(legacy_db: Any, repo: SqliteIntakeRepository) -> int:
    """Copy every legacy incident (pending events into the outbox) unless already done.

    The previous documents stay where they were; a marker in the SQLite file keeps this from
    running twice, and an interrupted run resumes (documents already copied are skipped).
    """
    if repo.imported():
        return 0
    if LEGACY_COLLECTION not in legacy_db.list_collection_names():
        return repo.import_documents([])
    return repo.import_documents(legacy_documents(legacy_db[LEGACY_COLLECTION]))

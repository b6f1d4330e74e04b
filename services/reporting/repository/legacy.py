"""Bringing reporting's documents written by the previous embedded engine (the document store
under ``<data_dir>/store``) into reporting's SQLite file, once, losing nothing."""

from __future__ import annotations

from typing import Any

from libs.common.store import legacy_documents
from services.reporting.repository import COLLECTIONS
from services.reporting.repository.sqlite import SqliteReportingRepository


def import_legacy_documents(legacy_db: Any, repo: SqliteReportingRepository) -> int:
    """Copy every legacy document of every reporting collection (pending events into the
    outbox) unless already done; returns how many were copied.

    The previous documents stay where they were; a marker in the SQLite file keeps this from
    running twice, and an interrupted run resumes (documents already copied are skipped).
    """
    if repo.imported():
        return 0
    present = set(legacy_db.list_collection_names())
    copied = 0
    for name in COLLECTIONS:
        if name in present:
            copied += repo.import_documents(name, legacy_documents(legacy_db[name]))
    repo.mark_imported()
    return copied

"""Bringing the warning service's collections written by the previous embedded engine (the
document store under ``<data_dir>/store``) into its SQLite file, once, losing nothing."""

from __future__ import annotations

from typing import Any

from libs.common.store import legacy_documents
from services.warning.repository import DOCUMENT_TABLES
from services.warning.repository.sqlite import SqliteWarningRepository


def import_legacy_warnings(legacy_db: Any, repo: SqliteWarningRepository) -> int:
    """Copy warnings, deliveries, receipts, suggestions, the incident view and delivery marks
    (pending events into the outbox) unless already done; how many documents were copied.

    The previous documents stay where they were; a marker in the SQLite file keeps this from
    running twice, and an interrupted run resumes (documents already copied are skipped).
    """
    if repo.imported():
        return 0
    present = set(legacy_db.list_collection_names())
    copied = 0
    for name in DOCUMENT_TABLES:
        if name in present:
            copied += repo.import_documents(name, legacy_documents(legacy_db[name]))
    repo.finish_import()
    return copied

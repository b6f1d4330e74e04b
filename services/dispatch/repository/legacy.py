"""Bringing dispatch's documents written by the previous embedded engine (the document store
under ``<data_dir>/store``) into dispatch's SQLite file, once, losing nothing."""

from __future__ import annotations

from typing import Any

from libs.common.store import legacy_documents
from services.dispatch.repository.sqlite import TABLES, SqliteDispatchRepository


def import_legacy_dispatch(legacy_db: Any, repo: SqliteDispatchRepository) -> int:
    """Copy every legacy collection of dispatch (teams, warehouses, stock and its ledger,
    orders, plans, assignments, the local incident and warning views) unless already done.

    Pending events go into the outbox, a stock line's unfinished ledger copies into the ledger.
    The previous documents stay where they were; a marker in the SQLite file keeps this from
    running twice, and an interrupted run resumes (documents already copied are skipped).
    Returns how many documents were copied.
    """
    if repo.imported():
        return 0
    present = set(legacy_db.list_collection_names())
    copied = 0
    for collection in TABLES:
        if collection in present:
            copied += repo.import_documents(collection, legacy_documents(legacy_db[collection]))
    repo.mark_imported()
    return copied

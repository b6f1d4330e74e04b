"""Which key repository a process uses, and bringing the previous engine's keys over."""

from __future__ import annotations

from typing import Any

from libs.common.keys import KeyRepository
from libs.common.keys.mongo import COLLECTION, MongoKeyRepository
from libs.common.keys.sqlite import SqliteKeyRepository
from libs.common.settings import Settings
from libs.common.sqlite import SqliteDatabase
from libs.common.store import StoreFactory, legacy_documents, sqlite_file

PLATFORM = "platform"


def open_key_repository(settings: Settings, stores: StoreFactory) -> KeyRepository:
    """SQLite (the platform's file, shared by the host's service processes) unless the
    database URL is ``mongodb://``; the schema is in place when this returns."""
    path = sqlite_file(settings, PLATFORM)
    repo: KeyRepository
    if path is None:
        repo = MongoKeyRepository(stores.database(PLATFORM)[COLLECTION])
    else:
        repo = SqliteKeyRepository(SqliteDatabase(path))
    repo.ensure_schema()
    return repo


def import_legacy_keys(repo: KeyRepository, legacy_db: Any) -> int:
    """Copy the keys the previous engine kept (once; a marker stops a second copy)."""
    if COLLECTION not in legacy_db.list_collection_names():
        return repo.import_legacy_keys([])
    return repo.import_legacy_keys(legacy_documents(legacy_db[COLLECTION]))


def migrate_keys(settings: Settings, stores: StoreFactory) -> int:
    """``yingji migrate-store``: the keys of a data directory into the platform's SQLite file."""
    if sqlite_file(settings, PLATFORM) is None:
        return 0  # on MongoDB the keys are already where they belong
    repo = open_key_repository(settings, stores)
    try:
        return import_legacy_keys(repo, stores.legacy_database(PLATFORM))
    finally:
        repo.close()

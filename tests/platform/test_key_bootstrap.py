"""The configured admin key survives services that start together and race to write it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mongomock
import pytest
from pymongo.errors import DuplicateKeyError

from libs.common.auth import BOOTSTRAP_KEY_ID, KeyStore
from libs.common.clock import ManualClock
from libs.common.keys.mongo import MongoKeyRepository

pytestmark = pytest.mark.unit


class _RacingCollection:
    """Another service inserts the key between this one's read and its upsert."""

    def __init__(self, real: Any, inserted_meanwhile: dict[str, Any]) -> None:
        self._real = real
        self._inserted_meanwhile = inserted_meanwhile

    def update_one(
        self, query: dict[str, Any], change: dict[str, Any], upsert: bool = False
    ) -> Any:
        if upsert and self._inserted_meanwhile:
            self._real.insert_one(self._inserted_meanwhile)
            self._inserted_meanwhile = {}
            # What the database answers to the loser of two concurrent upserts.
            raise DuplicateKeyError("E11000 duplicate key error", 11000)
        return self._real.update_one(query, change, upsert=upsert)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_a_key_inserted_by_another_service_meanwhile_is_updated_not_a_crash(tmp_path: Path) -> None:
    real = mongomock.MongoClient().db.api_keys
    other = {"_id": BOOTSTRAP_KEY_ID, "name": "bootstrap admin", "role": "admin", "hash": "old"}
    racing = MongoKeyRepository(_RacingCollection(real, other))
    keys = KeyStore(racing, ManualClock(datetime(2026, 12, 1, tzinfo=UTC)))

    assert keys.bootstrap("configured-admin-key-000000000000", tmp_path) is None

    principal = keys.verify("configured-admin-key-000000000000")
    assert principal is not None and principal.role.value == "admin"

"""Key records on MongoDB: the ``api_keys`` collection of the platform database."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from libs.common.keys import KeyExistsError

COLLECTION = "api_keys"


class MongoKeyRepository:
    """The key records in one MongoDB collection."""

    def __init__(self, collection: Any) -> None:
        self.collection = collection

    def ensure_schema(self) -> None:
        """Index the admin check and the list order."""
        self.collection.create_index([("role", 1)])
        self.collection.create_index([("created_at", 1)])

    def add_key(self, record: Mapping[str, Any]) -> None:
        """Insert a record; KeyExistsError when the id is taken."""
        try:
            self.collection.insert_one(dict(record))
        except DuplicateKeyError as exc:
            raise KeyExistsError(record["_id"]) from exc

    def key_by_id(self, key_id: str) -> dict[str, Any] | None:
        """The record with this id."""
        found = self.collection.find_one({"_id": key_id})
        return dict(found) if found is not None else None

    def keys_by_creation(self) -> list[dict[str, Any]]:
        """Every record without its hash, oldest first."""
        rows = self.collection.find({}, projection={"hash": 0}, sort=[("created_at", 1)])
        return [dict(row) for row in rows]

    def active_admin_exists(self) -> bool:
        """Some admin key is not revoked (``revoked_at`` null or missing)."""
        return self.collection.find_one({"role": "admin", "revoked_at": None}) is not None

    def revoke_key(self, key_id: str, at: datetime) -> bool:
        """Set ``revoked_at`` on an active key (the guard is in the filter)."""
        result = self.collection.update_one(
            {"_id": key_id, "revoked_at": None}, {"$set": {"revoked_at": at}}
        )
        return bool(result.modified_count)

    def revoke_key_keeping_an_admin(self, key_id: str, at: datetime) -> str:
        """Revoke a key unless it is the last active admin key. Without a transaction, two
        admins revoking each other at the same instant could both pass the check; the
        bootstrap key (``YINGJI_BOOTSTRAP_ADMIN_KEY``) restores access then."""
        record = self.collection.find_one({"_id": key_id, "revoked_at": None}, {"role": 1})
        if record is None:
            return "missing"
        if record.get("role") == "admin" and (
            self.collection.find_one(
                {"role": "admin", "revoked_at": None, "_id": {"$ne": key_id}}, {"_id": 1}
            )
            is None
        ):
            return "last_admin"
        return "revoked" if self.revoke_key(key_id, at) else "missing"

    def put_key(self, record: Mapping[str, Any]) -> None:
        """Upsert the record; of two concurrent upserts the loser updates the winner's."""
        change = {"$set": {k: v for k, v in record.items() if k != "_id"}}
        try:
            self.collection.update_one({"_id": record["_id"]}, change, upsert=True)
        except DuplicateKeyError:
            # Another service inserted it between the lookup and the insert of our upsert.
            self.collection.update_one({"_id": record["_id"]}, change)

    def import_legacy_keys(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Nothing to import: on MongoDB the records are where they belong."""
        return 0

    def ping(self) -> None:
        """Ask the server."""
        self.collection.database.command("ping")

    def close(self) -> None:
        """The client belongs to the store factory."""

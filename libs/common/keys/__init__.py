"""The platform's storage boundary for API keys: what authentication asks of the key records.

A key record is ``{_id, name, role, township_code, hazards, department_code, hash, created_at,
revoked_at}``; only
the SHA-256 of a key is kept. Two engines implement it: ``sqlite.py`` (embedded and one-host
mode: the platform's own SQLite file, shared by every service process of the host) and
``mongo.py`` (the cluster: the ``api_keys`` collection of the platform database). Nothing else
touches the key records.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Protocol


class KeyExistsError(Exception):
    """A key with this id is already stored."""


class KeyRepository(Protocol):
    """Every read and write of the key records."""

    def ensure_schema(self) -> None:
        """Create tables or indexes the queries rely on (idempotent)."""

    def add_key(self, record: Mapping[str, Any]) -> None:
        """Store a new key record; KeyExistsError when its id is taken."""

    def key_by_id(self, key_id: str) -> dict[str, Any] | None:
        """One key record, hash included."""

    def keys_by_creation(self) -> list[dict[str, Any]]:
        """Every key record without its hash, oldest first (ties in the order they were added)."""

    def active_admin_exists(self) -> bool:
        """True when some admin key is not revoked."""

    def revoke_key(self, key_id: str, at: datetime) -> bool:
        """Mark a key revoked at ``at``; False when there is no such key or it is revoked."""

    def revoke_key_keeping_an_admin(self, key_id: str, at: datetime) -> str:
        """Revoke a key unless it is the last active admin key: ``"revoked"``, ``"missing"``
        (no such active key) or ``"last_admin"`` (nothing written)."""

    def put_key(self, record: Mapping[str, Any]) -> None:
        """Store ``record`` whether or not its id exists (the configured admin key); services
        starting together may race to do it, and the last one wins without an error."""

    def import_legacy_keys(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Copy key records of the previous engine once; how many were added (0 when done)."""

    def ping(self) -> None:
        """Touch the database (readiness)."""

    def close(self) -> None:
        """Release connections this repository opened."""

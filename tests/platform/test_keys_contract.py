"""One contract for the platform's key repository, run on every engine: SQLite, mongomock, and a
real MongoDB when ``YINGJI_TEST_MONGO_URL`` is set. Unique ids, the revocation guard under
concurrency, racing upserts of the configured admin key, null vs missing ``revoked_at``, the
list order and the one-time import behave the same everywhere."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from libs.common.keys import KeyExistsError, KeyRepository
from libs.common.keys.mongo import MongoKeyRepository
from libs.common.keys.sqlite import SqliteKeyRepository
from tests.support.engines import engine_names, repository_on

pytestmark = pytest.mark.store

T0 = datetime(2026, 7, 6, 2, 0, tzinfo=UTC)


@pytest.fixture(params=engine_names())
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyRepository]:
    """The key repository on one engine, schema in place."""
    with repository_on(
        request.param,
        tmp_path,
        SqliteKeyRepository,
        lambda mdb: MongoKeyRepository(mdb["api_keys"]),
    ) as on_engine:
        yield on_engine


def record(ident: str, role: str = "operator", at: datetime = T0, **fields: Any) -> dict[str, Any]:
    """A key record as KeyStore writes it."""
    doc: dict[str, Any] = {
        "_id": ident,
        "name": f"值班员{ident}",
        "role": role,
        "township_code": None,
        "hazards": [],
        "hash": f"hash-{ident}",
        "created_at": at,
        "revoked_at": None,
    }
    doc.update(fields)
    return doc


def all_at_once(work: Callable[[], Any], threads: int = 8) -> list[Any]:
    """Run ``work`` on several threads released together; each one's result or exception."""
    results: list[Any] = []
    barrier = threading.Barrier(threads)
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        try:
            outcome = work()
        except Exception as exc:
            outcome = exc
        with lock:
            results.append(outcome)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return results


def test_a_record_reads_back_as_written(repo: KeyRepository) -> None:
    written = record("k1", role="township", township_code="349901001", hazards=["flood"])
    repo.add_key(written)
    assert repo.key_by_id("k1") == written
    assert repo.key_by_id("k2") is None


def test_ids_are_unique_even_when_added_at_once(repo: KeyRepository) -> None:
    repo.add_key(record("k1"))
    with pytest.raises(KeyExistsError):
        repo.add_key(record("k1", name="another"))
    outcomes = all_at_once(lambda: repo.add_key(record("k2")))
    assert outcomes.count(None) == 1
    assert all(isinstance(o, KeyExistsError) for o in outcomes if o is not None)


def test_the_list_is_oldest_first_ties_in_insertion_order_without_hashes(
    repo: KeyRepository,
) -> None:
    for ident, minutes in (("c", 5), ("b", 0), ("a", 0), ("d", -5)):
        repo.add_key(record(ident, at=T0 + timedelta(minutes=minutes)))
    listed = repo.keys_by_creation()
    assert [r["_id"] for r in listed] == ["d", "b", "a", "c"]
    assert all("hash" not in r for r in listed)
    assert listed[0]["created_at"] == T0 - timedelta(minutes=5)


def test_an_admin_counts_until_revoked_and_a_missing_revoked_at_means_active(
    repo: KeyRepository,
) -> None:
    assert not repo.active_admin_exists()
    repo.add_key(record("op"))
    assert not repo.active_admin_exists()
    older = record("old-admin", role="admin")
    del older["revoked_at"]  # records of older versions may lack the field
    repo.add_key(older)
    assert repo.active_admin_exists()
    assert repo.revoke_key("old-admin", T0)
    assert not repo.active_admin_exists()
    assert repo.key_by_id("old-admin")["revoked_at"] == T0  # type: ignore[index]


def test_a_key_is_revoked_once_however_many_try(repo: KeyRepository) -> None:
    repo.add_key(record("k1"))
    assert not repo.revoke_key("nobody", T0)
    outcomes = all_at_once(lambda: repo.revoke_key("k1", T0 + timedelta(minutes=1)))
    assert outcomes.count(True) == 1 and outcomes.count(False) == 7
    assert not repo.revoke_key("k1", T0 + timedelta(minutes=2))
    assert repo.key_by_id("k1")["revoked_at"] == T0 + timedelta(minutes=1)  # type: ignore[index]


def test_put_key_inserts_or_replaces_and_racing_writers_never_fail(repo: KeyRepository) -> None:
    repo.put_key(record("bootstrap", role="admin", hash="first"))
    assert repo.key_by_id("bootstrap")["hash"] == "first"  # type: ignore[index]
    repo.add_key(record("other"))
    repo.revoke_key("other", T0)
    repo.put_key(record("bootstrap", role="admin", hash="second"))
    assert repo.key_by_id("bootstrap") == record("bootstrap", role="admin", hash="second")
    outcomes = all_at_once(lambda: repo.put_key(record("fresh", role="admin", hash="same")))
    assert outcomes == [None] * 8
    assert repo.key_by_id("fresh") == record("fresh", role="admin", hash="same")
    assert [r["_id"] for r in repo.keys_by_creation()].count("fresh") == 1


def test_legacy_keys_are_imported_once_on_sqlite_and_left_alone_on_mongodb(
    repo: KeyRepository,
) -> None:
    repo.add_key(record("kept", name="本地"))
    legacy = [record("kept", name="旧的"), record("b"), record("a")]
    copied = repo.import_legacy_keys(legacy)
    again = repo.import_legacy_keys([record("late")])
    if isinstance(repo, SqliteKeyRepository):
        assert (copied, again) == (2, 0)
        assert [r["_id"] for r in repo.keys_by_creation()] == ["kept", "b", "a"]
        assert repo.key_by_id("kept")["name"] == "本地"  # type: ignore[index]
    else:
        assert (copied, again) == (0, 0)
    assert repo.key_by_id("late") is None
    repo.ping()


def test_the_last_active_admin_key_is_kept(repo: KeyRepository) -> None:
    """Revoking keeps one admin: the last active one is refused with nothing written, a key of
    another role or a second admin goes, and a revoked or unknown key is missing."""
    repo.add_key(record("op"))
    older = record("admin-1", role="admin")
    del older["revoked_at"]  # records of older versions may lack the field: still active
    repo.add_key(older)
    assert repo.revoke_key_keeping_an_admin("admin-1", T0) == "last_admin"
    assert repo.key_by_id("admin-1").get("revoked_at") is None  # type: ignore[union-attr]
    assert repo.revoke_key_keeping_an_admin("op", T0) == "revoked"
    assert repo.revoke_key_keeping_an_admin("op", T0) == "missing"
    assert repo.revoke_key_keeping_an_admin("nobody", T0) == "missing"
    repo.add_key(record("admin-2", role="admin"))
    assert repo.revoke_key_keeping_an_admin("admin-1", T0) == "revoked"
    assert repo.revoke_key_keeping_an_admin("admin-2", T0) == "last_admin"
    assert repo.active_admin_exists()

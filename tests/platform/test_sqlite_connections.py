"""The SQLite plumbing: connections outlive the threads that used them, and a bulk transaction
turns the transactions inside it into savepoints."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from libs.common.sqlite import CACHE_KIB, MAX_IDLE, SqliteDatabase


def _write(db: SqliteDatabase, key: str) -> None:
    with db.transaction() as conn:
        conn.execute("INSERT INTO meta (key, value) VALUES (?, 'v')", (key,))


def _keys(db: SqliteDatabase) -> list[str]:
    return [row[0] for row in db.query("SELECT key FROM meta ORDER BY key")]


def test_threads_that_end_hand_their_connection_on(tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "x.sqlite3")
    for n in range(30):
        thread = threading.Thread(target=_write, args=(db, f"k{n:02}"))
        thread.start()
        thread.join()
    # Thirty short-lived threads, one after another: one connection of theirs (and the
    # creating thread's), not thirty-one.
    assert db.open_connections() == 2
    assert len(_keys(db)) == 30
    db.close()


def test_threads_at_once_each_have_their_own(tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "x.sqlite3")
    inside, release = threading.Barrier(4), threading.Event()

    def hold(n: int) -> None:
        db.connection()
        inside.wait()
        release.wait()
        _write(db, f"t{n}")

    threads = [threading.Thread(target=hold, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    inside.wait()
    assert db.open_connections() == 4  # three threads in flight and the creating one
    release.set()
    for thread in threads:
        thread.join()
    assert _keys(db) == ["t0", "t1", "t2"]
    db.close()


def test_a_burst_of_threads_leaves_at_most_max_idle_connections(tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "x.sqlite3")
    count = MAX_IDLE + 6
    inside, release = threading.Barrier(count + 1), threading.Event()

    def hold(n: int) -> None:
        db.connection()
        inside.wait()
        release.wait()
        _write(db, f"t{n:02}")

    threads = [threading.Thread(target=hold, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    inside.wait()
    assert db.open_connections() == count + 1
    release.set()
    for thread in threads:
        thread.join()
    # The creating thread's connection and MAX_IDLE kept for later threads; the rest closed.
    assert db.open_connections() == MAX_IDLE + 1
    assert len(_keys(db)) == count
    # Later threads take the kept ones rather than opening more.
    for n in range(MAX_IDLE + 3):
        thread = threading.Thread(target=_write, args=(db, f"u{n:02}"))
        thread.start()
        thread.join()
    assert db.open_connections() == MAX_IDLE + 1
    db.close()


def test_each_connection_has_the_bounded_page_cache(tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "x.sqlite3")
    assert db.query("PRAGMA cache_size") == [(-CACHE_KIB,)]
    db.close()


def test_outer_transaction_commits_everything_at_its_end(tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "x.sqlite3")
    other = SqliteDatabase(tmp_path / "x.sqlite3")
    with db.outer_transaction():
        _write(db, "a")
        with pytest.raises(RuntimeError), db.transaction() as conn:
            conn.execute("INSERT INTO meta (key, value) VALUES ('b', 'v')")
            raise RuntimeError("this savepoint only")
        _write(db, "c")
        assert _keys(db) == ["a", "c"]
        assert _keys(other) == []  # nothing committed yet
    assert _keys(other) == ["a", "c"]
    with pytest.raises(RuntimeError), db.outer_transaction():
        _write(db, "d")
        raise RuntimeError("all of it")
    assert _keys(other) == ["a", "c"]
    _write(db, "e")  # an ordinary transaction again afterwards
    assert _keys(other) == ["a", "c", "e"]
    db.close()
    other.close()


def test_the_file_and_its_journal_are_the_owners_alone(tmp_path: Path) -> None:
    """A county's reports, names and phone numbers are not for every user of the host."""
    path = tmp_path / "x.sqlite3"
    db = SqliteDatabase(path)
    _write(db, "k")
    files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
    assert {f.name: f.stat().st_mode & 0o777 for f in files} == {f.name: 0o600 for f in files}
    db.close()
    path.chmod(0o644)
    SqliteDatabase(path).close()
    assert path.stat().st_mode & 0o777 == 0o600

"""Writers of one SQLite file queue for it: threads of a process on a lock, processes of a host
on an advisory lock beside the file, so no writer sleeps in SQLite's busy handler; and a batch
of sent events leaves the outbox and enters the journal in one transaction."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from libs.common import metrics
from libs.common.clock import ManualClock
from libs.common.eventmodels.intake import IncidentClosedV1
from libs.common.events import EventEnvelope, make_event
from libs.common.outbox import (
    SQLITE_OUTBOX_SCHEMA,
    SqliteJournal,
    SqliteOutbox,
    append_events,
)
from libs.common.sqlite import WRITER_SUFFIX, SqliteDatabase

pytestmark = pytest.mark.unit

CLOCK = ManualClock(datetime(2026, 7, 6, 2, 0, tzinfo=UTC))


def sample_events(count: int) -> list[EventEnvelope]:
    """Events about one incident, in order."""
    return [
        make_event(
            CLOCK,
            "intake",
            "incident_closed",
            IncidentClosedV1(
                incident_id="a",
                township_code="349901001",
                closed_by="leader",
                reason=f"r{n}",
                exercise=False,
            ),
            correlation_id="a",
        )
        for n in range(count)
    ]


def _count(db: SqliteDatabase) -> int:
    rows = db.query("SELECT value FROM meta WHERE key = 'n'")
    return int(rows[0][0]) if rows else 0


def _increment(db: SqliteDatabase) -> None:
    # Read, then write, inside one write transaction: a lost update would show in the total.
    with db.transaction() as conn:
        row = conn.execute("SELECT value FROM meta WHERE key = 'n'").fetchone()
        value = int(row[0]) + 1 if row else 1
        db.set_meta(conn, "n", str(value))


def _increment_many(path: str, times: int) -> None:
    db = SqliteDatabase(Path(path))
    for _ in range(times):
        _increment(db)
    db.close()


def test_a_writer_waits_while_another_process_holds_the_file(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    db = SqliteDatabase(path)
    # Another process's turn, as the kernel sees it: a second open file description holding the
    # advisory lock (SQLite's own lock is free, so only the queue can hold the writer back).
    other = os.open(f"{path}{WRITER_SUFFIX}", os.O_RDWR)
    fcntl.flock(other, fcntl.LOCK_EX)
    waited, writes = _figure(metrics.STORE_WRITE_WAIT), _figure(metrics.STORE_WRITES)
    writer = threading.Thread(target=_increment, args=(db,))
    writer.start()
    writer.join(0.5)
    assert writer.is_alive() and _count(db) == 0
    fcntl.flock(other, fcntl.LOCK_UN)
    os.close(other)
    writer.join(10)
    assert not writer.is_alive() and _count(db) == 1
    # The wait is counted: the writer was held back for most of the half second above (its
    # wait began a moment after the thread started).
    assert _figure(metrics.STORE_WRITES) == writes + 1
    assert _figure(metrics.STORE_WRITE_WAIT) >= waited + 0.4
    db.close()


def _figure(counter: Any) -> float:
    """This test file's series of a store counter (the file is named ``x``)."""
    return float(counter.labels("x")._value.get())


def test_writes_are_counted_with_the_time_they_held_the_file(tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "x.sqlite3")
    writes, held = _figure(metrics.STORE_WRITES), _figure(metrics.STORE_WRITE_HELD)
    for _ in range(5):
        _increment(db)
    with pytest.raises(RuntimeError), db.transaction():
        raise RuntimeError("rolled back, and counted all the same")
    assert _figure(metrics.STORE_WRITES) == writes + 6
    assert _figure(metrics.STORE_WRITE_HELD) > held
    db.close()


def test_processes_on_one_file_lose_no_write(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    db = SqliteDatabase(path)
    spawn = multiprocessing.get_context("spawn")
    workers = [spawn.Process(target=_increment_many, args=(str(path), 150)) for _ in range(2)]
    for worker in workers:
        worker.start()
    _increment_many(str(path), 150)
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert _count(db) == 450
    db.close()


def _open_lock_files(path: Path) -> int:
    target = f"{path}{WRITER_SUFFIX}"
    fds = Path("/proc/self/fd")
    return sum(1 for fd in fds.iterdir() if os.path.realpath(fd) == os.path.realpath(target))


def test_the_lock_file_is_let_go_with_the_last_handle(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    first, second = SqliteDatabase(path), SqliteDatabase(path)
    assert _open_lock_files(path) == 1  # one per process, shared by its handles
    first.close()
    first.close()  # closing twice counts once
    _increment(second)
    assert _open_lock_files(path) == 1
    second.close()
    assert _open_lock_files(path) == 0


def test_a_confirmed_batch_is_settled_in_one_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = SqliteDatabase(tmp_path / "x.sqlite3")
    db.script(SQLITE_OUTBOX_SCHEMA)
    outbox, journal = SqliteOutbox(db), SqliteJournal(db)
    events = sample_events(3)
    with db.transaction() as conn:
        append_events(conn, "a", events)
    batch = outbox.claim(10, 30.0, "relay")
    assert batch is not None and batch.bodies
    opened = []
    real = db.transaction

    def counted() -> Any:
        opened.append(1)
        return real()

    monkeypatch.setattr(db, "transaction", counted)
    outbox.confirm(batch, journal)
    assert len(opened) == 1
    assert outbox.pending() == (0, None)
    assert journal.since(0) == events
    db.close()

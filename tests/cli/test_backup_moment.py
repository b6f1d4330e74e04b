"""A backup is one point in time across the data directory's SQLite files: what a consumer's
file holds, its producer's file holds too, however the writes interleave with the copies."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from libs.common.sqlite import SqliteDatabase
from yingji.backup import _snapshot

pytestmark = pytest.mark.unit


def _keep_writing(
    producer: SqliteDatabase, consumer: SqliteDatabase, stop: threading.Event
) -> None:
    """An event written by the producer, then taken up in the consumer's own file."""
    number = 0
    while not stop.is_set():
        number += 1
        with producer.transaction() as conn:
            conn.execute("INSERT INTO incidents VALUES (?)", (number,))
        with consumer.transaction() as conn:
            conn.execute("INSERT INTO deadlines VALUES (?)", (number,))


def _ids(path: Path, table: str) -> set[int]:
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute(f"SELECT id FROM {table}")}


def test_a_backup_taken_while_writes_run_holds_no_consumer_row_without_its_producer_row(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    # Named so that the producer's file is copied first, as intake's is before reporting's.
    producer = SqliteDatabase(data / "a-intake.sqlite3")
    consumer = SqliteDatabase(data / "b-reporting.sqlite3")
    with producer.transaction() as conn:
        conn.execute("CREATE TABLE incidents (id INTEGER PRIMARY KEY)")
        # Enough rows that copying the producer's file takes a while.
        conn.execute("CREATE TABLE padding (blob TEXT)")
        conn.executemany("INSERT INTO padding VALUES (?)", [("x" * 4000,)] * 2000)
    with consumer.transaction() as conn:
        conn.execute("CREATE TABLE deadlines (id INTEGER PRIMARY KEY)")
    stop = threading.Event()
    writer = threading.Thread(target=_keep_writing, args=(producer, consumer, stop))
    writer.start()
    try:
        for round_number in range(20):
            staging = tmp_path / f"copy-{round_number}"
            staging.mkdir()
            _snapshot(data, staging)
            incidents = _ids(staging / "a-intake.sqlite3", "incidents")
            deadlines = _ids(staging / "b-reporting.sqlite3", "deadlines")
            assert deadlines <= incidents, sorted(deadlines - incidents)[:5]
            # Between the two writes of one event, a moment may catch the producer's alone.
            assert len(incidents - deadlines) <= 1
    finally:
        stop.set()
        writer.join()
        producer.close()
        consumer.close()

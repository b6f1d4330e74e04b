"""SQLite through the standard library: one file per service, WAL, a connection per thread.

Documents are stored as JSON text. Datetimes are written as ``{"$date": "<fixed-width UTC ISO>"}``
so they come back as datetimes and compare correctly as text inside SQL (a generated column
``doc ->> '$.at."$date"'`` sorts in time order). Several processes may open the same file: WAL
lets readers run beside the one writer. Writers queue for the file before SQLite's own lock:
threads on a lock of the process, processes on an advisory lock of a file beside the database
(see ``SqliteDatabase.transaction``).
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from libs.common import metrics

DATE = "$date"
BUSY_TIMEOUT_MS = 10_000
# A process waiting for another's write looks again after 0.1 ms, then twice as long each time,
# up to 2 ms: most writes hold the file for under a millisecond, so the first looks find it free
# soon after it is let go, and a long write is not polled a thousand times a second.
FIRST_LOOK_SECONDS = 0.0001
LAST_LOOK_SECONDS = 0.002
# Page cache of each connection, KiB (SQLite's default is 2 MiB). Every connection keeps its own
# copy of the pages it read, and a process holds one connection per live thread per file: at the
# default, the caches filled as the data grew and were most of the embedded process's drift
# (docs/performance.md, soak). The operating system's file cache still holds the file below it.
CACHE_KIB = 512
# Connections kept for later threads once theirs ended; more are closed, so a burst of threads
# does not leave its connections (files, page caches, parsed schema) open for the process's life.
MAX_IDLE = 4
# The file beside a database whose advisory lock orders the writers of several processes.
WRITER_SUFFIX = "-writer"
# Fixed width: a four-digit year (zero-padded below 1000, which ``strftime('%Y')`` does not do
# everywhere), then microseconds and the UTC offset, so the text sorts in time order and
# ``datetime.fromisoformat`` reads it back for every year 1..9999.
_ISO_TAIL = "-%m-%dT%H:%M:%S.%f+00:00"


# SQLite's primary result codes for a file that is not a database or whose pages are damaged.
SQLITE_CORRUPT = 11
SQLITE_NOTADB = 26


class DamagedStoreError(sqlite3.DatabaseError):
    """A SQLite file that is not a database or is damaged (truncated, overwritten): the command
    stops with one line naming the file, and ``yingji restore`` brings back a backup."""

    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(
            f"the SQLite file {path} is damaged ({detail}); restore the data directory from a "
            "backup: yingji restore <backup.tar.gz> --data-dir <dir> --replace"
        )
        self.path = path


def _is_damage(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.DatabaseError) and (
        (code is not None and code & 0xFF in (SQLITE_CORRUPT, SQLITE_NOTADB))
        or "malformed" in str(exc)
        or "not a database" in str(exc)
    )


@contextmanager
def _naming_damage(path: Path) -> Iterator[None]:
    """Turn SQLite's "file is not a database" or "disk image is malformed" into an error that
    names the file."""
    try:
        yield
    except DamagedStoreError:
        raise
    except sqlite3.DatabaseError as exc:
        if _is_damage(exc):
            raise DamagedStoreError(path, str(exc)) from exc
        raise


class _WriterQueue:
    """Where the writers of one database file wait their turn: the threads of this process on a
    lock, then the processes of the host on an advisory lock (``flock``) of ``<file>-writer``.

    SQLite's own busy handler, left alone, sleeps with growing pauses (up to 100 ms) and is not
    woken when the lock frees, so writers of two processes on one file spent much of their time
    asleep (docs/performance.md, replicas). Here a waiting process looks again within a millisecond,
    and the kernel lets go of the lock of a process that dies. Either wait is bounded by the busy
    timeout: a writer that waited that long goes on to SQLite's own wait, which fails then
    instead of hanging (a process stopped inside a write holds both locks).
    """

    def __init__(self, path: Path) -> None:
        self.threads = threading.Lock()
        self.users = 0
        self._fd = os.open(f"{path}{WRITER_SUFFIX}", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def close(self) -> None:
        """Let go of the lock file (the last handle on the database was closed)."""
        os.close(self._fd)

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Hold the file for one write transaction."""
        # A thread that waits longer than the busy timeout goes on to SQLite's own wait.
        queued = self.threads.acquire(timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            locked = queued and self._lock_file()
            try:
                yield
            finally:
                if locked:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            if queued:
                self.threads.release()

    def _lock_file(self) -> bool:
        """Take the file's advisory lock; False when the busy timeout passed first."""
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        pause = FIRST_LOOK_SECONDS
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(pause)
                pause = min(pause * 2, LAST_LOOK_SECONDS)


_WRITER_QUEUES: dict[str, _WriterQueue] = {}
_WRITER_QUEUES_GUARD = threading.Lock()


def _join_writers(path: Path) -> _WriterQueue:
    """The writer queue of a file in this process (shared by every handle on that file)."""
    key = str(path.resolve())
    with _WRITER_QUEUES_GUARD:
        if key not in _WRITER_QUEUES:
            _WRITER_QUEUES[key] = _WriterQueue(path)
        queue = _WRITER_QUEUES[key]
        queue.users += 1
        return queue


def _leave_writers(path: Path) -> None:
    """One handle on the file fewer; the last one closes the queue's lock file."""
    key = str(path.resolve())
    with _WRITER_QUEUES_GUARD:
        queue = _WRITER_QUEUES.get(key)
        if queue is None:
            return
        queue.users -= 1
        if queue.users <= 0:
            del _WRITER_QUEUES[key]
            queue.close()


def iso(moment: datetime) -> str:
    """A datetime as fixed-width UTC text (naive values are taken as UTC), sortable as text."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    utc = aware.astimezone(UTC)
    return f"{utc.year:04d}{utc.strftime(_ISO_TAIL)}"


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {DATE: iso(value)}
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


def from_iso(text: str) -> datetime:
    """A time written by ``iso`` (a column, or a tagged value) back as an aware UTC datetime."""
    return datetime.fromisoformat(text).astimezone(UTC)


def _decode(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and DATE in obj and isinstance(obj[DATE], str):
        return from_iso(obj[DATE])
    return obj


def dumps(value: Any) -> str:
    """JSON text for a document or value, datetimes tagged."""
    return json.dumps(value, default=_encode, ensure_ascii=False, separators=(",", ":"))


def loads(text: str) -> Any:
    """A document back from JSON text, tagged datetimes restored (aware, UTC)."""
    return json.loads(text, object_hook=_decode)


class _Lease:
    """A thread's hold on a connection; dropped with the thread's locals when the thread ends."""

    __slots__ = ("__weakref__", "conn")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn


def _owner_only(path: Path) -> None:
    """Make the file (and its journal files) readable by the service's own user only: they hold
    a county's reports, names and phone numbers. SQLite gives the journal files the database
    file's mode, so the file is made before SQLite opens it."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
    for part in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if part.exists() and part.stat().st_mode & 0o077:
            part.chmod(0o600)


class SqliteDatabase:
    """One service's SQLite file: a connection per thread, transactions that take the write lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        _owner_only(path)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._writers = _join_writers(path)
        # The file's series, made once (at 0) and kept: a labels() lookup per write costs more
        # than the increment.
        self._writes = metrics.STORE_WRITES.labels(path.stem)
        self._write_wait = metrics.STORE_WRITE_WAIT.labels(path.stem)
        self._write_held = metrics.STORE_WRITE_HELD.labels(path.stem)
        self._connections: list[sqlite3.Connection] = []
        self._idle: list[sqlite3.Connection] = []
        self._closed = False
        with _naming_damage(path), self.transaction() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            # Reads the schema, so a file that is not a database, or whose schema pages are
            # damaged, is named here rather than at the first request.
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (autocommit, transactions explicit).

        A thread takes an idle connection, or opens one, on first use; when the thread ends,
        its connection goes back to the idle ones. Server worker threads come and go (an idle
        one retires after a few seconds), so a connection per thread *ever* would pile up open
        files and page caches for as long as the process lives.
        """
        if self._closed:
            raise RuntimeError(f"database {self.path} is closed")
        lease: _Lease | None = getattr(self._local, "lease", None)
        if lease is None:
            conn = self._take_idle() or self._open()
            lease = _Lease(conn)
            weakref.finalize(lease, self._give_back, conn)
            self._local.lease = lease
        return lease.conn

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path,
            isolation_level=None,
            check_same_thread=False,
            timeout=BUSY_TIMEOUT_MS / 1000,
        )
        try:
            with _naming_damage(self.path):
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        except BaseException:
            conn.close()
            raise
        with self._lock:
            self._connections.append(conn)
        return conn

    def _take_idle(self) -> sqlite3.Connection | None:
        with self._lock:
            return self._idle.pop() if self._idle else None

    def _give_back(self, conn: sqlite3.Connection) -> None:
        """The connection of a thread that ended: kept for the next thread, or closed when
        ``MAX_IDLE`` already wait (or the database is closed)."""
        with self._lock:
            if self._closed:
                return
            if len(self._idle) >= MAX_IDLE:
                self._connections.remove(conn)
                conn.close()
                return
            if conn.in_transaction:  # not expected: every transaction ends in its block
                conn.execute("ROLLBACK")
            self._idle.append(conn)

    def open_connections(self) -> int:
        """How many connections this database holds open (in use by a thread, or idle)."""
        with self._lock:
            return len(self._connections)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``): committed on success, rolled back on error.

        Writers of the file queue for their turn first (threads, then processes: see
        ``_WriterQueue``); SQLite's busy timeout stays as the last resort.
        Inside this thread's ``outer_transaction`` it is a savepoint of that one instead.
        """
        conn = self.connection()
        if getattr(self._local, "outer", False):
            with self._savepoint(conn):
                yield conn
            return
        queued_at = time.perf_counter()
        with _naming_damage(self.path), self._writers.turn():
            turn_at = time.perf_counter()
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                # Also after a failed COMMIT: the connection must not stay inside a transaction.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            finally:
                self._count_write(queued_at, turn_at)

    def _count_write(self, queued_at: float, turn_at: float) -> None:
        # How long writers queue and hold the file: the figures that bound what several
        # threads or processes writing one file can do (docs/performance.md, replicas).
        self._writes.inc()
        self._write_wait.inc(turn_at - queued_at)
        self._write_held.inc(time.perf_counter() - turn_at)

    @contextmanager
    def _savepoint(self, conn: sqlite3.Connection) -> Iterator[None]:
        conn.execute("SAVEPOINT tx")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK TO tx")
            conn.execute("RELEASE tx")
            raise
        conn.execute("RELEASE tx")

    @contextmanager
    def outer_transaction(self) -> Iterator[None]:
        """One write transaction around many, for bulk loads: this thread's ``transaction()``
        calls inside it become savepoints, and everything commits (or rolls back) at the end."""
        with self.transaction():
            self._local.outer = True
            try:
                yield
            finally:
                self._local.outer = False

    def query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[Any]:
        """Rows of one read statement."""
        with _naming_damage(self.path):
            return self.connection().execute(sql, params).fetchall()

    def documents(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[Any]:
        """The decoded documents of a statement selecting one JSON column."""
        return [loads(row[0]) for row in self.query(sql, params)]

    def script(self, statements: Sequence[str]) -> None:
        """Run schema statements in one transaction."""
        with self.transaction() as conn:
            for statement in statements:
                conn.execute(statement)

    def get_meta(self, key: str) -> str | None:
        """A bookkeeping value (schema and migration markers)."""
        rows = self.query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def init_meta(self, key: str, value: str) -> bool:
        """Record a bookkeeping value unless one is there; whether this call recorded it."""
        with self.transaction() as conn:
            row = conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?) RETURNING key", (key, value)
            ).fetchone()
        return row is not None

    def advance_meta(self, key: str, value: str) -> None:
        """Move a bookkeeping value forward only (ISO dates and months compare as text)."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE meta SET value = ? WHERE key = ? AND value < ?", (value, key, value)
            )

    def set_meta(self, conn: sqlite3.Connection, key: str, value: str) -> None:
        """Record a bookkeeping value inside the caller's transaction."""
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def ping(self) -> None:
        """Touch the file (readiness)."""
        self.query("SELECT 1")

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            if not self._closed:
                _leave_writers(self.path)
            self._closed = True
            for conn in self._connections:
                conn.close()
            self._connections.clear()
            self._idle.clear()


def _field(name: str) -> str:
    # Field names are the repository's own constants, never caller input; checked anyway so a
    # typo cannot build odd SQL.
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a field name: {name!r}")
    return name


def patched(
    fields: Mapping[str, Any], appends: Mapping[str, Sequence[Any]] | None = None
) -> tuple[str, list[Any]]:
    """The SQL expression of ``doc`` with top-level ``fields`` set and values appended to arrays.

    For ``UPDATE … SET doc = <expression>``; values go through ``dumps`` so datetimes keep their
    tag. An array that is missing starts empty.
    """
    expr, params = "doc", list[Any]()
    for name, values in (appends or {}).items():
        if not values:
            continue
        base = f"coalesce(json_extract(doc, '$.{_field(name)}'), json('[]'))"
        inserts = ", ".join("'$[#]', json(?)" for _ in values)
        expr = f"json_set({expr}, '$.{name}', json_insert({base}, {inserts}))"
        params.extend(dumps(v) for v in values)
    if fields:
        pairs = ", ".join(f"'$.{_field(name)}', json(?)" for name in fields)
        expr = f"json_set({expr}, {pairs})"
        params.extend(dumps(v) for v in fields.values())
    return expr, params

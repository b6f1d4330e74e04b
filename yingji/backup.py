"""``yingji backup`` and ``yingji restore``: the embedded data directory as one checked archive.

A backup copies every SQLite file of the data directory (intake's and the other services' own
files as well as the previous engine's files under ``store/``) with SQLite's online backup API,
so a running platform keeps working and each copy is a consistent snapshot of its file, and adds
the other files that hold state (the bootstrap admin key, the cursor secret). The archive is a
``.tar.gz`` with ``manifest.json`` (every file, its kind, size and SHA-256) and the files under
``data/``. A restore refuses a data directory that a running ``yingji`` holds, checks every
checksum and every SQLite file's integrity before it writes anything, then moves the files in.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

LOCK_FILE = "yingji.lock"
MANIFEST = "manifest.json"
FORMAT = "yingji-data-backup/1"
SQLITE_MAGIC = b"SQLite format 3\x00"
# Coordination files of a running process: never state, never copied.
SKIPPED_NAMES = {LOCK_FILE, "platform-init.lock"}
SKIPPED_SUFFIXES = ("-wal", "-shm", "-journal", "-writer")


class BackupError(Exception):
    """A backup or restore that cannot go on, with a message the operator can act on."""


class DataDirInUseError(BackupError):
    """The data directory is held by a running ``yingji`` process."""

    def __init__(self, data_dir: Path, holder: str) -> None:
        super().__init__(
            f"the data directory {data_dir.resolve()} is in use by another yingji process "
            f"(pid {holder}); stop that one first, or give another --data-dir"
        )
        self.holder = holder


@dataclass(frozen=True)
class Entry:
    """One file of the archive: where it lives under the data directory and what it holds."""

    path: str
    kind: str  # "sqlite" or "file"
    size: int
    sha256: str

    def as_json(self) -> dict[str, Any]:
        """The manifest row."""
        return {"path": self.path, "kind": self.kind, "size": self.size, "sha256": self.sha256}


def hold_data_dir(data_dir: Path) -> IO[str]:
    """Take the data directory's OS lock (the one ``yingji up`` holds while it runs) and write
    this process's pid into it; raises DataDirInUseError when another process holds it, and
    BackupError when the directory cannot be made or written (a file, a read-only place)."""
    if data_dir.exists() and not data_dir.is_dir():
        raise BackupError(f"the data directory {data_dir.resolve()} is a file, not a directory")
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        handle = open(data_dir / LOCK_FILE, "a+")  # noqa: SIM115 - held by the caller
    except OSError as exc:
        raise BackupError(
            f"cannot use {data_dir.resolve()} as the data directory: {exc.strerror or exc}"
        ) from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "?"
        handle.close()
        raise DataDirInUseError(data_dir, holder) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def release_data_dir(handle: IO[str], data_dir: Path, *, created: bool) -> None:
    """Let go of the lock after a failed command; a directory the command created and left
    holding nothing but the lock file goes too, so the failure leaves no trace."""
    if created and [p.name for p in data_dir.iterdir()] == [LOCK_FILE]:
        # Removed while still held, so no other process takes a lock file about to vanish.
        (data_dir / LOCK_FILE).unlink()
        handle.close()
        with contextlib.suppress(OSError):
            data_dir.rmdir()
        return
    handle.close()


def _is_sqlite(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC


def state_files(data_dir: Path) -> list[tuple[Path, str]]:
    """Every file of the data directory that holds state, with its kind, in path order."""
    found = []
    for path in sorted(data_dir.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        if path.name in SKIPPED_NAMES or path.name.endswith(SKIPPED_SUFFIXES):
            continue
        found.append((path, "sqlite" if _is_sqlite(path) else "file"))
    return found


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# How long a backup waits for the writers of the files it copies before it gives up.
WRITER_WAIT_SECONDS = 30.0


def copy_sqlite(source: sqlite3.Connection, target: Path) -> None:
    """Copy a live SQLite file through the online backup API, from a read connection already
    in its read transaction: the copy is that transaction's point in time, WAL content
    included, while writers keep going."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # Made owner-only before SQLite writes a page into it (and its journal takes its mode).
    os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
    os.chmod(target, 0o600)
    dst = sqlite3.connect(target)
    try:
        source.backup(dst)
        # One self-contained file: no -wal beside it in the archive.
        dst.execute("PRAGMA journal_mode=DELETE")
    finally:
        dst.close()


def _hold_writers(path: Path, deadline: float) -> int:
    """Take the advisory lock the writers of ``path`` queue on (``<file>-writer``), waiting for
    the one writing now; the descriptor that holds it."""
    fd = os.open(f"{path}-writer", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise BackupError(
                    f"a writer held {path} for over {WRITER_WAIT_SECONDS:g} s; try again"
                ) from None
            time.sleep(0.001)


@contextmanager
def one_moment(paths: list[Path]) -> Iterator[dict[Path, sqlite3.Connection]]:
    """Read connections on every SQLite file, each in a read transaction begun while no writer
    of any of them was inside a write: one point in time across the files.

    Each service writes its own file, and an event one service wrote reaches another's file
    later. Files copied one after the other would be of different moments, and a later copy of
    a consumer could hold what an earlier copy of its producer lacks (reporting's deadlines for
    an incident intake's copy never had), which nothing mends. Writers wait a few milliseconds
    while the read transactions begin; the copies are then made with writers going on."""
    deadline = time.monotonic() + WRITER_WAIT_SECONDS
    readers: dict[Path, sqlite3.Connection] = {}
    held: list[int] = []
    try:
        try:
            for path in paths:  # in path order, as every backup takes them
                held.append(_hold_writers(path, deadline))
            for path in paths:
                reader = sqlite3.connect(
                    f"{path.as_uri()}?mode=ro", uri=True, timeout=30, isolation_level=None
                )
                readers[path] = reader
                reader.execute("BEGIN")
                reader.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            for fd in held:
                os.close(fd)  # closing the descriptor lets go of its lock
        yield readers
    finally:
        for reader in readers.values():
            reader.close()


def _snapshot(data_dir: Path, staging: Path) -> list[Entry]:
    files = state_files(data_dir)
    entries = []
    with one_moment([path for path, kind in files if kind == "sqlite"]) as readers:
        for path, kind in files:
            relative = path.relative_to(data_dir).as_posix()
            copy = staging / relative
            if kind == "sqlite":
                copy_sqlite(readers[path], copy)
            else:
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, copy)
            entries.append(Entry(relative, kind, copy.stat().st_size, sha256_of(copy)))
    return entries


def archive_name(moment: datetime) -> str:
    """``yingji-backup-<UTC timestamp>.tar.gz``."""
    return f"yingji-backup-{moment.astimezone(UTC):%Y%m%dT%H%M%SZ}.tar.gz"


def backup(data_dir: Path, output_dir: Path, now: datetime | None = None) -> tuple[Path, int]:
    """Write a timestamped archive of ``data_dir`` into ``output_dir``; its path and file count."""
    if not data_dir.is_dir():
        raise BackupError(f"no data directory at {data_dir.resolve()}")
    moment = now or datetime.now(UTC)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(
            f"cannot write the archive into {output_dir.resolve()}: {exc.strerror or exc}"
        ) from None
    target = output_dir / archive_name(moment)
    if target.exists():
        raise BackupError(f"{target} already exists")
    with tempfile.TemporaryDirectory(prefix="yingji-backup-", dir=output_dir) as scratch:
        staging = Path(scratch) / "data"
        staging.mkdir()
        entries = _snapshot(data_dir, staging)
        manifest = {
            "format": FORMAT,
            "created_at": moment.astimezone(UTC).isoformat(),
            "source": str(data_dir.resolve()),
            "files": [entry.as_json() for entry in entries],
        }
        manifest_path = Path(scratch) / MANIFEST
        manifest_path.write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n")
        partial = Path(scratch) / target.name
        with tarfile.open(partial, "w:gz") as tar:
            tar.add(manifest_path, arcname=MANIFEST)
            tar.add(staging, arcname="data")
        os.chmod(partial, 0o600)  # it holds the admin key and the cursor secret
        os.replace(partial, target)
    return target, len(entries)


def _read_manifest(root: Path) -> list[Entry]:
    path = root / MANIFEST
    if not path.is_file():
        raise BackupError("the archive has no manifest.json: not a yingji backup")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT:
        raise BackupError(f"unknown backup format {manifest.get('format')!r} (expected {FORMAT})")
    entries = [Entry(**row) for row in manifest["files"]]
    for entry in entries:
        if entry.path.startswith("/") or ".." in Path(entry.path).parts:
            raise BackupError(f"the manifest names a path outside the data directory: {entry.path}")
    return entries


def _safe_members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    for member in tar.getmembers():
        parts = Path(member.name).parts
        if member.name.startswith("/") or ".." in parts or not (member.isfile() or member.isdir()):
            raise BackupError(f"refusing archive member {member.name!r}")
        yield member


def verify(root: Path) -> list[Entry]:
    """Check an unpacked archive: every manifest file present with its size and checksum, no
    file the manifest does not name, every SQLite file passing ``PRAGMA integrity_check``."""
    entries = _read_manifest(root)
    data = root / "data"
    named = {entry.path for entry in entries}
    extra = (
        {p.relative_to(data).as_posix() for p in data.rglob("*") if p.is_file()} - named
        if data.is_dir()
        else set()
    )
    if extra:
        raise BackupError(f"files not in the manifest: {', '.join(sorted(extra))}")
    for entry in entries:
        path = data / entry.path
        if not path.is_file():
            raise BackupError(f"{entry.path} is in the manifest but not in the archive")
        if path.stat().st_size != entry.size or sha256_of(path) != entry.sha256:
            raise BackupError(f"checksum mismatch for {entry.path}: the archive is damaged")
        if entry.kind == "sqlite":
            conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
            try:
                (result,) = conn.execute("PRAGMA integrity_check").fetchone()
            finally:
                conn.close()
            if result != "ok":
                raise BackupError(f"{entry.path} fails SQLite's integrity check: {result}")
    return entries


@contextmanager
def unpacked(archive: Path, near: Path) -> Iterator[Path]:
    """The archive unpacked into a scratch directory beside ``near`` (same file system, so the
    files can be moved into place)."""
    if not archive.is_file():
        raise BackupError(f"no backup archive at {archive}")
    near.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".yingji-restore-", dir=near) as scratch:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(scratch, members=list(_safe_members(tar)), filter="data")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise BackupError(f"cannot read {archive}: {exc}") from exc
        yield Path(scratch)


def _existing_state(data_dir: Path) -> list[Path]:
    return [path for path, _ in state_files(data_dir)] if data_dir.is_dir() else []


def _set_aside(data_dir: Path, moment: datetime) -> Path:
    """Move what the data directory holds (but its lock) into a sibling directory."""
    aside = data_dir.parent / f"{data_dir.name}.before-restore-{moment:%Y%m%dT%H%M%SZ}"
    aside.mkdir()
    for child in data_dir.iterdir():
        if child.name != LOCK_FILE:
            shutil.move(str(child), aside / child.name)
    return aside


def restore(archive: Path, data_dir: Path, *, replace: bool = False) -> tuple[int, Path | None]:
    """Restore ``archive`` into ``data_dir``; the number of files and where the replaced files
    went (with ``replace``). Refuses a data directory in use, or one holding data without
    ``replace``; writes nothing unless the whole archive checks out."""
    created = not data_dir.exists()
    lock = hold_data_dir(data_dir)
    try:
        present = _existing_state(data_dir)
        if present and not replace:
            raise BackupError(
                f"the data directory {data_dir.resolve()} already holds data "
                f"({len(present)} files); restore into an empty directory, or pass --replace "
                "to set the present files aside first"
            )
        with unpacked(archive, data_dir.parent) as root:
            entries = verify(root)
            aside = _set_aside(data_dir, datetime.now(UTC)) if present else None
            for entry in entries:
                target = data_dir / entry.path
                target.parent.mkdir(parents=True, exist_ok=True)
                source = root / "data" / entry.path
                # Owner only, before it is in place: the files hold phone numbers, key hashes,
                # the bootstrap key and the cursor secret.
                os.chmod(source, 0o600)
                os.replace(source, target)
    except BaseException:
        release_data_dir(lock, data_dir, created=created)
        raise
    lock.close()
    return len(entries), aside

"""Start-up refusals and restores as an operator meets them: an unknown deadline profile and a
damaged SQLite file stop ``yingji up`` with one line and leave no data directory behind; restored
files are owner-only at once; JSON logs stay JSON for the standard library's records too."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from libs.common.sqlite import SqliteDatabase
from tests.cli.support import ROOT, cli_env, free_port, one_line, yingji

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    "variable", ["YINGJI_DEADLINE_PROFILE", "YINGJI_UPSTREAM_DEADLINE_PROFILE"]
)
def test_an_unknown_deadline_profile_is_refused_before_anything_is_made(
    tmp_path: Path, variable: str
) -> None:
    data = tmp_path / "data"
    env = cli_env(**{variable: "nowhere"})
    result = yingji(
        "up", "--port", str(free_port()), "--data-dir", str(data), cwd=tmp_path, env=env
    )
    line = one_line(result)
    assert line.startswith("yingji up: "), line
    assert variable in line and "'nowhere'" in line
    assert "default, national, henan" in line
    assert not data.exists()


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_sqlite_file_names_the_file(tmp_path: Path, damage: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    target = data / "yingji_intake.sqlite3"
    if damage == "garbage":
        target.write_bytes(os.urandom(8192))
    else:
        db = SqliteDatabase(target)
        db.script(["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"])
        with db.transaction() as conn:
            conn.executemany("INSERT INTO t (v) VALUES (?)", [("x" * 400,) for _ in range(3000)])
            conn.execute("CREATE INDEX t_v ON t (v)")
        db.close()
        for suffix in ("-wal", "-shm"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 3])
    result = yingji("up", "--port", str(free_port()), "--data-dir", str(data), cwd=tmp_path)
    line = one_line(result)
    assert str(target) in line and "damaged" in line and "yingji restore" in line, line
    assert target.exists()


def test_restored_files_are_owner_only_at_once(tmp_path: Path) -> None:
    data, backups, restored = tmp_path / "data", tmp_path / "backups", tmp_path / "restored"
    db = SqliteDatabase(data / "yingji_intake.sqlite3")
    db.script(["CREATE TABLE t (id INTEGER PRIMARY KEY, phone TEXT)"])
    db.close()
    (data / "store").mkdir()
    (data / "store" / "notes.json").write_text("{}")
    backups.mkdir()
    old_umask = os.umask(0o022)
    try:
        made = yingji("backup", "--data-dir", str(data), "--output", str(backups), cwd=tmp_path)
        assert made.returncode == 0, made.stderr
        (archive,) = backups.glob("*.tar.gz")
        done = yingji("restore", str(archive), "--data-dir", str(restored), cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    finally:
        os.umask(old_umask)
    files = [p for p in restored.rglob("*") if p.is_file() and p.name != "yingji.lock"]
    assert restored / "yingji_intake.sqlite3" in files
    modes = {p.relative_to(restored).as_posix(): oct(stat.S_IMODE(p.stat().st_mode)) for p in files}
    assert set(modes.values()) == {"0o600"}, modes


def test_json_logs_keep_standard_library_records_and_tracebacks_on_one_line(
    tmp_path: Path,
) -> None:
    script = textwrap.dedent(
        """
        import logging
        from libs.common.logging import configure_logging

        configure_logging("json", "INFO")
        try:
            raise RuntimeError("boom for 13800001111")
        except RuntimeError:
            logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
        logging.getLogger("kombu").warning("plain %s", "warning")
        """
    )
    env = {**cli_env(), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 2, lines
    error, warning = records
    assert error["logger"] == "uvicorn.error" and error["level"] == "error"
    assert "RuntimeError: boom for 138****0000" not in error["exception"]
    assert "RuntimeError: boom for 138****1111" in error["exception"]
    assert warning["event"] == "plain warning"

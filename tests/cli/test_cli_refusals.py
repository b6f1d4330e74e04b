"""Mistakes an operator makes on the command line end with one line and exit status 1, never a
traceback, and leave no data directory behind that the command had to make."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from tests.cli.support import cli_env, free_port, one_line, yingji
from yingji.backup import hold_data_dir

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("port", ["99999", "-1", "0", "65536"])
def test_a_port_outside_tcp_is_refused(tmp_path: Path, port: str) -> None:
    data = tmp_path / "data"
    result = yingji("up", "--port", port, "--data-dir", str(data), cwd=tmp_path)
    assert one_line(result) == f"yingji up: --port {port}: a port is a number from 1 to 65535"
    assert not data.exists()


def test_a_port_outside_tcp_in_the_environment_is_refused(tmp_path: Path) -> None:
    env = cli_env(YINGJI_PORT="70000", YINGJI_DATA_DIR=str(tmp_path / "data"))
    line = one_line(yingji("up", cwd=tmp_path, env=env))
    assert line.startswith("yingji up: a setting is not valid: YINGJI_PORT: ")


def test_a_data_directory_that_is_a_file_or_cannot_be_made_is_refused(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    port = str(free_port())
    as_file = yingji("up", "--port", port, "--data-dir", str(afile), cwd=tmp_path)
    assert one_line(as_file) == (
        f"yingji up: the data directory {afile} is a file, not a directory"
    )
    unmakeable = yingji("up", "--port", port, "--data-dir", "/proc/nope", cwd=tmp_path)
    assert one_line(unmakeable).startswith(
        "yingji up: cannot use /proc/nope as the data directory: "
    )


def test_a_missing_or_invalid_county_file_names_the_file_and_the_field(tmp_path: Path) -> None:
    data, port = tmp_path / "data", str(free_port())
    missing = tmp_path / "nonexist.yaml"
    env = cli_env(YINGJI_COUNTY_FILE=str(missing))
    result = yingji("up", "--port", port, "--data-dir", str(data), cwd=tmp_path, env=env)
    assert one_line(result) == (
        f"yingji up: cannot read the county file {missing} (YINGJI_COUNTY_FILE): "
        "No such file or directory"
    )
    invalid = tmp_path / "county.yaml"
    invalid.write_text("name: 测试县\ntownships: 3\n", encoding="utf-8")
    env = cli_env(YINGJI_COUNTY_FILE=str(invalid))
    result = yingji("up", "--port", port, "--data-dir", str(data), cwd=tmp_path, env=env)
    line = one_line(result)
    assert line.startswith(f"yingji up: the county file {invalid} is not valid: ")
    assert "code: Field required" in line and "townships: " in line
    assert "YINGJI_CODE" not in line and "YINGJI_TOWNSHIPS" not in line
    assert not data.exists()


def test_a_busy_port_leaves_no_data_directory(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        result = yingji("up", "--port", port, "--data-dir", str(data), cwd=tmp_path)
    assert "is already in use" in one_line(result)
    assert not data.exists()


def test_backup_into_an_unwritable_place_is_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    result = yingji("backup", "--data-dir", str(data), "--output", "/proc/x", cwd=tmp_path)
    assert one_line(result).startswith("yingji backup: cannot write the archive into /proc/x: ")


def test_a_failed_restore_leaves_no_data_directory(tmp_path: Path) -> None:
    data, archive = tmp_path / "data", tmp_path / "broken.tar.gz"
    archive.write_bytes(b"not an archive")
    result = yingji("restore", str(archive), "--data-dir", str(data), cwd=tmp_path)
    assert one_line(result).startswith(f"yingji restore: cannot read {archive}")
    assert not data.exists()


def test_migrate_store_refuses_a_missing_directory(tmp_path: Path) -> None:
    typo = tmp_path / "yingji-dta"
    result = yingji("migrate-store", "--data-dir", str(typo), cwd=tmp_path)
    assert one_line(result) == f"yingji migrate-store: no data directory at {typo}"
    assert not typo.exists()


def test_migrate_store_on_a_directory_without_a_previous_store_makes_nothing(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    result = yingji("migrate-store", "--data-dir", str(data), cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == (
        f"nothing to migrate: no previous store at {data / 'store'} (无需迁移)"
    )
    assert [p.name for p in data.iterdir()] == ["yingji.lock"]


def test_migrate_store_refuses_a_directory_in_use(tmp_path: Path) -> None:
    data = tmp_path / "data"
    held = hold_data_dir(data)
    try:
        result = yingji("migrate-store", "--data-dir", str(data), cwd=tmp_path)
    finally:
        held.close()
    assert one_line(result) == (
        f"yingji migrate-store: the data directory {data} is in use by another yingji process "
        f"(pid {os.getpid()}); stop that one first, or give another --data-dir"
    )
    assert [p.name for p in data.iterdir()] == ["yingji.lock"], "nothing was copied or made"

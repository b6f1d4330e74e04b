"""`yingji backup` / `yingji restore` as an operator runs them: a backup of a running platform
with data, restored into a fresh directory, starts and answers as the original did; a running or
non-empty directory and a damaged archive are refused with one line."""

from __future__ import annotations

import io
import json
import tarfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.support import Running, free_port, yingji
from tests.support.bodies import incident_body
from tests.support.legacy_store import mongomock_database, write_previous_engine

pytestmark = pytest.mark.e2e

# What must read the same after a restore: one route of each service, with the records the
# test made (intake's SQLite file, dispatch/warning/reporting on the store under store/).
COMPARED = ("/v1/incidents", "/v1/warnings", "/v1/teams", "/v1/stock", "/v1/deadlines")


def _start(data: Path, cwd: Path) -> tuple[Running, str]:
    port = free_port()
    process = Running("up", "--port", str(port), "--data-dir", str(data), cwd=cwd)
    process.wait_for("  API ")
    return process, f"http://127.0.0.1:{port}"


def _admin(data: Path) -> dict[str, str]:
    """The bootstrap admin key the first start wrote into the data directory."""
    key = (data / "bootstrap-admin.key").read_text().strip()
    return {"Authorization": f"Bearer {key}"}


def _answers(base: str, headers: dict[str, str], incident_id: str) -> dict[str, Any]:
    got = {}
    for path in (*COMPARED, f"/v1/incidents/{incident_id}", f"/v1/timeline/{incident_id}"):
        response = httpx.get(base + path, headers=headers, timeout=10)
        assert response.status_code == 200, (path, response.text)
        got[path] = response.json()
    return got


def _key(base: str, admin: dict[str, str], **body: str) -> dict[str, str]:
    made = httpx.post(base + "/v1/admin/keys", headers=admin, json=body, timeout=10)
    assert made.status_code == 201, made.text
    return {"Authorization": f"Bearer {made.json()['key']}"}


def _make_data(base: str, admin: dict[str, str]) -> tuple[str, dict[str, str]]:
    """An operator key, a township key, an incident reported with it and its timeline in
    reporting; the incident's id and the operator's headers."""
    headers = _key(base, admin, role="operator", name="县值班室")
    township = _key(base, admin, role="township", name="城关镇值班室", township_code="349901001")
    posted = httpx.post(
        base + "/v1/incidents",
        headers=township,
        json=incident_body(datetime.now(UTC)),
        timeout=10,
    )
    assert posted.status_code == 201, posted.text
    incident_id = str(posted.json()["id"])
    # The events reach reporting through the bus: wait until its timeline has the incident.
    for _ in range(200):
        timeline = httpx.get(base + f"/v1/timeline/{incident_id}", headers=headers, timeout=10)
        if timeline.status_code == 200 and timeline.json():
            return incident_id, headers
        time.sleep(0.05)
    raise AssertionError(f"reporting never saw incident {incident_id}: {timeline.text}")


def test_backup_of_a_running_platform_restores_into_a_fresh_directory(tmp_path: Path) -> None:
    data, backups, restored = tmp_path / "data", tmp_path / "backups", tmp_path / "restored"
    # Files the previous engine left (kept after their one-time import) are backed up too.
    left = mongomock_database("yingji_archive")
    left["things"].insert_one({"_id": "a"})
    write_previous_engine(data, left)
    original, base = _start(data, tmp_path)
    try:
        incident_id, headers = _make_data(base, _admin(data))
        before = _answers(base, headers, incident_id)

        made = yingji("backup", "--data-dir", str(data), "--output", str(backups), cwd=tmp_path)
        assert made.returncode == 0, made.stderr
        (archive,) = backups.glob("yingji-backup-*.tar.gz")
        assert str(archive) in made.stdout

        # The running directory is refused, and so is one that already holds data.
        busy = yingji("restore", str(archive), "--data-dir", str(data), cwd=tmp_path)
        assert busy.returncode == 1
        assert busy.stderr.strip().splitlines() == [
            f"yingji restore: the data directory {data.resolve()} is in use by another yingji "
            f"process (pid {original.process.pid}); stop that one first, or give another "
            "--data-dir"
        ]
    finally:
        assert original.stop() == 0, original.stderr

    held = yingji("restore", str(archive), "--data-dir", str(data), cwd=tmp_path)
    assert held.returncode == 1 and "already holds data" in held.stderr

    done = yingji("restore", str(archive), "--data-dir", str(restored), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    paths = {row["path"]: row["kind"] for row in manifest["files"]}
    for service in ("platform", "intake", "warning", "dispatch", "reporting"):
        assert paths[f"yingji_{service}.sqlite3"] == "sqlite", service
    assert paths["store/yingji_archive/things"] == "sqlite", "the previous engine's files too"
    assert paths["bootstrap-admin.key"] == paths["cursor-secret.key"] == "file"
    assert "yingji.lock" not in paths and not any(p.endswith("-wal") for p in paths)

    again, base = _start(restored, tmp_path)
    try:
        assert _answers(base, headers, incident_id) == before
    finally:
        assert again.stop() == 0, again.stderr


def test_a_damaged_archive_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "cursor-secret.key").write_text("s" * 64)
    made = yingji("backup", "--data-dir", str(data), "--output", str(tmp_path), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    (archive,) = tmp_path.glob("yingji-backup-*.tar.gz")

    # Same manifest, other bytes in the file: the checksum gives it away.
    damaged = tmp_path / "damaged.tar.gz"
    with tarfile.open(archive) as source, tarfile.open(damaged, "w:gz") as target:
        for member in source.getmembers():
            content = source.extractfile(member) if member.isfile() else None
            if member.name == "data/cursor-secret.key":
                changed = b"t" * 64
                member.size = len(changed)
                content = io.BytesIO(changed)
            target.addfile(member, content)
    fresh = tmp_path / "fresh"
    refused = yingji("restore", str(damaged), "--data-dir", str(fresh), cwd=tmp_path)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        "yingji restore: checksum mismatch for cursor-secret.key: the archive is damaged"
    )
    assert not fresh.exists(), "a refused restore leaves no directory it made"

    inside = yingji("backup", "--data-dir", str(data), "--output", str(data / "b"), cwd=tmp_path)
    assert inside.returncode == 1 and "outside the data directory" in inside.stderr


def test_replace_sets_the_present_files_aside_and_restores(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "cursor-secret.key").write_text("before")
    (data / "notes.sqlite3").write_bytes(b"")  # not SQLite: copied as a file
    made = yingji("backup", "--data-dir", str(data), "--output", str(tmp_path), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    (archive,) = tmp_path.glob("yingji-backup-*.tar.gz")
    (data / "cursor-secret.key").write_text("after")
    (data / "added-later.key").write_text("x")

    done = yingji("restore", str(archive), "--data-dir", str(data), "--replace", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (data / "cursor-secret.key").read_text() == "before"
    assert not (data / "added-later.key").exists()
    (aside,) = tmp_path.glob("data.before-restore-*")
    assert (aside / "cursor-secret.key").read_text() == "after"
    assert (aside / "added-later.key").exists()
    assert str(aside) in done.stdout

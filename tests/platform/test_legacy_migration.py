"""A data directory written by the previous embedded engine (litemongo, every service on it, as
of commit 9d32bef) comes out identical over the API: on first start, and after
``yingji migrate-store``.

The fixture under tests/fixtures/legacy-data/ was written through the API by that code
(generate.py says how); answers.json holds what the old code answered to every GET that matters
(incidents incl. a merged and a closed one, warnings incl. an approved and acknowledged one, the
dispatch orders, teams and stock after changes, a plan, the report chain with a follow-up and a
final report, zero reports, deadlines, timeline, audit, daily summary, scores, API keys).
"""

from __future__ import annotations

import importlib.util
import json
import re
import tarfile
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "legacy-data"


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("legacy_generate", FIXTURE / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GENERATE = _generator()
META = json.loads((FIXTURE / "keys.json").read_text())
RECORDED = json.loads((FIXTURE / "answers.json").read_text())


def legacy_copy(tmp_path: Path) -> Path:
    """A fresh copy of the fixture's data directory."""
    with tarfile.open(FIXTURE / "data.tar.gz") as archive:
        archive.extractall(tmp_path, filter="data")
    return tmp_path / "data"


def differences(data_dir: Path) -> list[str]:
    """Start the current code on ``data_dir``; every recorded answer that comes out different."""
    found = []
    at = datetime.fromisoformat(META["clock"])
    with GENERATE.started_on(data_dir, at) as (_, client):
        for old in RECORDED:
            new = GENERATE.answer(client, META["keys"], old["who"], old["path"], old["params"])
            if old["path"].endswith("/cap"):
                old = {**old, "body": GEOCODE.sub("", old["body"])}
            old = _merged_duplicate_left_out(old)
            new = _as_recorded(_without_newer_parts(new, old["path"]), old)
            if new != old:
                found.append(f"{old['who']} GET {old['path']} {old['params']}: {_diff(old, new)}")
    return found


# Events of parts the platform gained after the recording: the duty office's timer raises
# them on the first start (no roster yet: unstaffed shifts a day ahead). They sort after the
# recorded history (they occur at the start), so leaving them out hides nothing recorded.
NEWER_EVENTS = {
    "duty_shift_unstaffed",
    "duty_handover_missing",
    "duty_handover_confirmed",
    "upward_report_sent",
    "upward_report_failed",
    "upstream_request_received",
    "enterprise_registered",  # the demo register, seeded on the first start
    "information_quota_missed",
    "campaign_report_filed",
}

# The CAP areas' geocodes changed on purpose after the recording: the township's 9-digit code was
# labelled GB/T 2260 (which has 6 digits); now the county's GB/T 2260 code stands beside the
# township and village codes of the statistics bureau. tests/warning/test_cap.py checks them, so
# both sides are compared without their geocodes.
GEOCODE = re.compile(r"<geocode>.*?</geocode>")


# Fixed on purpose after the recording: the daily summary counted a merged duplicate as an event
# of its own. Its list is now the recorded one without the duplicate; the figures drawn from that
# list are checked by tests/reporting/test_timeline_summaries.py, so they are not compared here.
# Also changed on purpose: a day's report now spans the day before's 17:00 cut-off to its own
# (it was local midnight to midnight, so what came after 17:00 was in no published report); the
# recorded history holds nothing in the hours that moved, so only the period's bounds differ.
COUNTED_FROM_THE_LIST = {
    "incidents",
    "trend",
    "hot_spots",
    "time_bands",
    "recommendations",
    "reports_filed",
    "period",
    "previous_period",
}


def _merged_duplicate_left_out(old: Any) -> Any:
    """The recorded daily summary as it reads now that a merged duplicate counts once."""
    if old["path"] != "/v1/summaries/daily" or not isinstance(old.get("body"), dict):
        return old
    body = {k: v for k, v in old["body"].items() if k not in COUNTED_FROM_THE_LIST}
    body["incident_list"] = [i for i in body["incident_list"] if i["status"] != "merged"]
    return {**old, "body": body}


def _without_newer_parts(new: Any, path: str) -> Any:
    """The audit trail without the events of parts newer than the recording, and CAP without
    the geocodes added since."""
    if path.endswith("/cap") and isinstance(new.get("body"), str):
        return {**new, "body": GEOCODE.sub("", new["body"])}
    if path != "/v1/audit" or not isinstance(new.get("body"), dict):
        return new
    body = new["body"]
    items = [i for i in body.get("items", []) if i.get("event_type") not in NEWER_EVENTS]
    return {**new, "body": {**body, "items": items}}


def _as_recorded(new: Any, old: Any) -> Any:
    """``new`` without the fields the API gained after the recording (labels, reach, the
    enterprises of an area): additions are allowed, while every recorded field must come out
    as it was recorded."""
    if isinstance(new, dict) and isinstance(old, dict):
        return {key: _as_recorded(value, old[key]) for key, value in new.items() if key in old}
    if isinstance(new, list) and isinstance(old, list) and len(new) == len(old):
        return [_as_recorded(a, b) for a, b in zip(new, old, strict=True)]
    return new


def _diff(old: Any, new: Any, where: str = "") -> str:
    """The first place two answers part."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            if old.get(key, "<missing>") != new.get(key, "<missing>"):
                return _diff(old.get(key, "<missing>"), new.get(key, "<missing>"), f"{where}.{key}")
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for index, (a, b) in enumerate(zip(old, new, strict=True)):
            if a != b:
                return _diff(a, b, f"{where}[{index}]")
    return f"at {where or '.'}: was {str(old)[:300]!r}, now {str(new)[:300]!r}"


def test_the_fixture_records_every_part_of_the_platform() -> None:
    paths = {answer["path"] for answer in RECORDED}
    for part in ("/v1/incidents", "/v1/warnings", "/v1/dispatches", "/v1/reports", "/v1/plans"):
        assert part in paths
    assert all(answer["status"] == 200 for answer in RECORDED)
    incidents = next(a for a in RECORDED if a["path"] == "/v1/incidents")["body"]["items"]
    assert {"merged", "closed"} <= {i["status"] for i in incidents}


def test_old_data_comes_out_identical_on_first_start(tmp_path: Path) -> None:
    assert differences(legacy_copy(tmp_path)) == []


def test_migrate_store_then_start_comes_out_identical(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from yingji.cli import main

    data = legacy_copy(tmp_path)
    main(["migrate-store", "--data-dir", str(data)])
    first = capsys.readouterr().out
    assert "intake: 4" in first and "keys: " in first
    main(["migrate-store", "--data-dir", str(data)])
    again = capsys.readouterr().out
    assert "intake: 0" in again and "keys: 0" in again
    assert differences(data) == []

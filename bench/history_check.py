"""Self-check of the fast history loader: the same plan loaded both ways answers the same.

``python -m bench.history_check [SIZE]`` (default 1,000) loads one plan of history twice, once
through the public API of a running embedded platform (``bench.history.load_api``) and once
through the services' use cases and handlers in-process (``load_fast``), then serves each
data directory and compares the answers of the same GETs over a sample of incidents (the
incident, its deadlines, its timeline, its report chain) and of the day-wide reads (page 1,
overdue deadlines, the daily summary, the situation pack). Identifiers the services draw at
random (incident, event, deadline, report ids) and the wall-clock instants of a run are
replaced by placeholders before comparing; everything else must be equal.
"""

from __future__ import annotations

import json
import random
import re
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench.history import BATCH, DAY_INCIDENTS, Plan, _settings, load_api, load_fast, make_key_in

HEX_ID = re.compile(
    r"\b[0-9a-f]{32}\b|\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"
)
WALL_KEYS = {"generated_at", "served_at"}  # instants of the request, not of the data
# A 终报 ends the follow-up deadlines twice over: reporting reads its own final_report_filed,
# and intake closes the incident on it (incident_closed). The two events reach reporting on
# separate queues, so the live system words the cancellation after whichever came first.
RACED = {"事件已结案，续报时限终止": "<结案或终报>", "终报已报送，续报时限终止": "<结案或终报>"}


def _normalise(value: Any, names: dict[str, str]) -> Any:
    """``value`` with random ids replaced by their plan names (or ``<id>``)."""
    if isinstance(value, dict):
        return {
            k: "<now>"
            if k in WALL_KEYS
            else RACED.get(v, v)
            if k == "cancel_reason"
            else _normalise(v, names)
            for k, v in value.items()
            if k != "next_cursor"
        }
    if isinstance(value, list):
        # Rows of one instant are ordered by their random ids: compare lists as multisets.
        items = [_normalise(v, names) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, ensure_ascii=False, sort_keys=True))
    if isinstance(value, str):
        return HEX_ID.sub(lambda m: names.get(m.group(0), "<id>"), value)
    return value


def _paths(plan: Plan, ids: dict[int, str], sample: list[int]) -> list[str]:
    """Every GET compared, for one loading."""
    day = plan.day.isoformat()
    paths = [
        # Page sizes a multiple of the incidents reported at one instant (BATCH), so a page
        # never cuts an instant whose rows are ordered by random ids.
        f"/v1/incidents?limit={3 * BATCH}",
        f"/v1/incidents?status=open&limit={5 * BATCH}",
        f"/v1/summaries/daily?date={day}",
        f"/v1/summaries/situation?from={day}&to={day}",
    ]
    for n in sample:
        i = ids[n]
        paths += [
            f"/v1/incidents/{i}",
            f"/v1/deadlines?incident_id={i}&limit=100",
            f"/v1/timeline/{i}?limit=100",
            f"/v1/reports?incident_id={i}",
        ]
    return paths


@contextmanager
def _served(data_dir: Path, admin_key: str) -> Iterator[Any]:
    """An in-process client of the embedded platform on ``data_dir``, as an operator."""
    from fastapi.testclient import TestClient

    from libs.common.clock import ManualClock
    from yingji.platform import build

    app, _ = build(_settings(data_dir, admin_key), clock=ManualClock(datetime.now(UTC)))
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {make_key_in(client, admin_key, 'operator')}"
        yield client


def answers(data_dir: Path, admin_key: str, paths: list[str], names: dict[str, str]) -> list[Any]:
    """Status and normalised body of every path."""
    with _served(data_dir, admin_key) as client:
        out = []
        for path in paths:
            response = client.get(path)
            out.append([path, response.status_code, _normalise(response.json(), names)])
        return out


def compare(size: int, sample_size: int = 40, day_incidents: int = DAY_INCIDENTS) -> list[str]:
    """Load ``size`` incidents (and the measured day's) both ways; the differences found (empty
    when they agree)."""
    admin = f"bench-admin-{uuid.uuid4().hex}"
    plan = Plan.of(size, ZoneInfo("Asia/Shanghai"), datetime.now(UTC), day_incidents)
    everyone = sorted(item.n for _, items in plan.moments for item in items)
    sample = sorted(random.Random(5).sample(everyone, min(sample_size, len(everyone))))
    results = []
    with tempfile.TemporaryDirectory(prefix="yingji-bench-check-") as tmp:
        for how, loader in (("api", load_api), ("fast", load_fast)):
            data_dir = Path(tmp) / how
            ids = loader(data_dir, plan, admin)
            names = {i: f"#{n}" for n, i in ids.items()}
            # Paths are compared by the plan's names; each loading asks with its own ids.
            paths = _paths(plan, ids, sample)
            results.append(answers(data_dir, admin, paths, names))
    api, fast = results
    return [
        f"{a[0]}: {a[1]} against {f[1]}; first difference: {_first_difference(a[2], f[2])}"
        for a, f in zip(api, fast, strict=True)
        if a[1:] != f[1:]
    ]


def _first_difference(a: Any, b: Any, where: str = "") -> str:
    """Where two answers part, and what each says there."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return _first_difference(a.get(key), b.get(key), f"{where}.{key}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for n, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return _first_difference(x, y, f"{where}[{n}]")
    show = lambda v: json.dumps(v, ensure_ascii=False)[:200]  # noqa: E731
    return f"{where or '(root)'}: API {show(a)} / fast {show(b)}"


def main() -> None:
    """Compare at the size given (1,000 by default); exit 1 on any difference."""
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    differences = compare(size)
    for line in differences:
        print(line)
    print(f"history loaders, {size} incidents: {len(differences)} differing answers")
    sys.exit(1 if differences else 0)


if __name__ == "__main__":
    main()

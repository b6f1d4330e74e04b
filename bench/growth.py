"""Growth: the deadline scan and the situation summary as stored history grows from 1k to 100k
incidents with the same amount due, and memory per 100k incidents.

History is seeded straight through reporting's repository (its SQLite file in embedded mode), as
reporting itself would have written it: each incident with its met initial deadline
(not armed, so not in the scan's hot set), spread over the last 90 days. Each size also carries
the same work due now: 200 armed deadlines past due, and 200 incidents in the summary's day.
"""

from __future__ import annotations

import os
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.common import ms, record, rss_kib
from libs.common.settings import Settings
from services.reporting.service import open_repository
from services.reporting.usecases import deadlines as deadlines_engine
from services.reporting.usecases import summaries
from yingji.platform import build

SIZES = [int(s) for s in os.environ.get("BENCH_GROWTH_SIZES", "1000,100000").split(",")]
DUE = 200
REPEATS = 5


def _incident(n: int, at: Any, township: str) -> dict[str, Any]:
    return {
        "_id": f"h{n}",
        "township_code": township,
        "category": "flood",
        "title": "历史事件",
        "grade": 4,
        "initial_grade": 4,
        "status": "closed",
        "finalised": True,
        "occurred_at": at,
        "discovered_at": at,
        "reported_at": at,
        "late": False,
        "exercise": False,
        "casualties": {"deaths": 0, "injured": 1},
        "affected": {"people_affected": 10},
        "people_involved": 0,
        "current": {"casualties": {"deaths": 0, "injured": 1}, "affected": {}},
        "report_seq": 1,
        "followup_count": 1,
        "received_at": at,
        "regrades": [],
    }


def _deadline(n: int, incident: dict[str, Any], due: Any, armed: bool) -> dict[str, Any]:
    return {
        "_id": f"{incident['_id']}:{'due' if armed else 'initial'}:{n}",
        "incident_id": incident["_id"],
        "township_code": incident["township_code"],
        "kind": "followup" if armed else "initial",
        "exercise": False,
        "grade": 4,
        "profile": "default",
        "due_at": due,
        "window_start": None,
        "status": "pending" if armed else "met",
        "late": False,
        "escalation": 0,
        "armed": True if armed else None,
        "next_check_at": due if armed else None,
        "created_at": due,
        "met_at": None if armed else due,
        "met_by": None if armed else "initial",
        "overdue_at": None,
    }


def measure(size: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="yingji-bench-growth-") as tmp:
        settings = Settings(data_dir=Path(tmp), log_level="WARNING", log_format="json")
        _, runtime = build(settings, ["reporting"])
        runtime.prepare()
        ctx = runtime.contexts["reporting"]
        store = open_repository(ctx)
        now = ctx.clock.now()
        townships = [t.code for t in ctx.county.townships]
        rss_before = rss_kib(os.getpid())
        seeded = time.perf_counter()
        for n in range(size):
            at = now - timedelta(days=2) - timedelta(seconds=(n * 7777) % (88 * 86400))
            incident = _incident(n, at, townships[n % len(townships)])
            store.record_incident_if_new(incident)
            store.record_deadline_if_new(_deadline(n, incident, at, armed=False))
        today = [
            _incident(size + n, now - timedelta(hours=1, minutes=n % 50), townships[n % 12])
            for n in range(DUE)
        ]
        for row in today:
            row["status"] = "open"
        for row in today:
            store.record_incident_if_new(row)
        seed_s = time.perf_counter() - seeded
        rss_after = rss_kib(os.getpid())
        scans, packs = [], []
        for r in range(REPEATS):
            # Fresh ids each round: the previous round's deadlines are overdue, not due again.
            for row in today:
                store.record_deadline_if_new(_deadline(r, row, now - timedelta(minutes=5), True))
            started = time.perf_counter()
            counts = deadlines_engine.scan_deadlines(ctx, store)
            scans.append(time.perf_counter() - started)
            assert counts["overdue"] == DUE, counts
            started = time.perf_counter()
            pack = summaries.situation(ctx, store, now - timedelta(days=1), now)
            packs.append(time.perf_counter() - started)
        disk = sum(f.stat().st_size for f in Path(tmp).rglob("*.sqlite3*") if f.is_file())
        runtime.stop()
        del pack
    return {
        "history": size,
        "due": DUE,
        "seed_s": round(seed_s, 1),
        "scan_ms": ms(sorted(scans)[len(scans) // 2]),
        "summary_ms": ms(sorted(packs)[len(packs) // 2]),
        "rss_growth_mib": round((rss_after - rss_before) / 1024, 1),
        "disk_mib": round(disk / 2**20, 1),
    }


def main() -> None:
    rows = [measure(size) for size in SIZES]
    for row in rows:
        record(f"growth.history_{row['history']}", **row)
    small, large = rows[0], rows[-1]
    record(
        "growth.ratios",
        scan_large_vs_small=round(large["scan_ms"] / max(small["scan_ms"], 0.001), 2),
        summary_large_vs_small=round(large["summary_ms"] / max(small["summary_ms"], 0.001), 2),
        goal="within 2x",
        reporting_rss_mib_per_100k_incidents=round(
            (large["rss_growth_mib"] - small["rss_growth_mib"])
            * 100_000
            / max(large["history"] - small["history"], 1),
            1,
        ),
        reporting_disk_mib_per_100k_incidents=round(
            (large["disk_mib"] - small["disk_mib"])
            * 100_000
            / max(large["history"] - small["history"], 1),
            1,
        ),
    )


if __name__ == "__main__":
    main()

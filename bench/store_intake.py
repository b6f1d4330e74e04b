"""Intake on the previous engine (litemongo behind one owner thread) against intake on SQLite,
measured in the same run on the same machine:

1. ``POST /v1/incidents`` throughput of the intake process alone (memory bus), with a bare
   FastAPI endpoint with the same request model as the ceiling;
2. the cost of one duplicate lookup as open incidents inside the window grow (30 → 1,030, over a
   history of closed incidents), and of one insert with its unique key.

"Old" is the tree of the commit before intake moved to SQLite, exported with ``git archive`` and
run with the same interpreter. Prints every figure and the new/old ratios.

    .venv/bin/python -m bench.store_intake [--old-ref REF] [--seconds 10] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path
from typing import Any

from bench.common import ROOT, closed_loop, intake_process, record
from bench.http_intake import bare

CONCURRENCY = 8


def old_ref() -> str:
    """The parent of the commit that removed intake's litemongo store."""
    out = subprocess.run(
        ["git", "rev-list", "-1", "HEAD", "--", "services/intake/store.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip() + "^"


def export_tree(ref: str, into: Path) -> Path:
    """The files of ``ref`` in a directory (no worktree, no checkout)."""
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, capture_output=True, check=True)
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into


def post_rate(url: str, headers: dict[str, str], seconds: float) -> float:
    """Requests per second of ``concurrency`` clients posting reports back to back."""
    closed_loop(url, headers, 2.0, CONCURRENCY, seed=99)  # warm up
    result = closed_loop(url, headers, seconds, CONCURRENCY)
    return result.rate


# One program per engine, run inside that engine's tree: load, then time duplicate lookups.
LOOKUP_HEAD = """
import json, sys, time
from datetime import UTC, datetime, timedelta
from pathlib import Path
tmp, history, sizes = Path(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
at = datetime(2026, 7, 6, 2, 0, tzinfo=UTC)
window = timedelta(hours=6)
"""

LOOKUP_BODY = """
def doc(i, occurred, status):
    return {"_id": f"i{i:07d}", "category": "flood", "status": status, "exercise": False,
            "township_code": "349901001", "occurred_at": occurred, "reported_at": occurred,
            "location": {"address": "x", "lat": 31.5, "lon": 116.4}, "merged_ids": [],
            "history": [{"kind": "reported", "at": occurred}], "version": 1, "grade": 4}
def timed(fn, repeat):
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(repeat):
        fn()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return (cpu / repeat * 1000, wall / repeat * 1000)
out, n = {}, 0
started = time.perf_counter()
for i in range(history):
    insert(doc(n, at - timedelta(days=1 + i % 300), "closed")); n += 1
out["insert_wall_ms"] = round((time.perf_counter() - started) / max(history, 1) * 1000, 3)
loaded = 0
for size in sizes:
    for k in range(size - loaded):
        insert(doc(n, at + timedelta(seconds=k * 7 % 20000), "open")); n += 1
    loaded = size
    cpu, wall = timed(lookup, 20)
    out[str(size)] = {"lookup_cpu_ms": round(cpu, 2), "lookup_wall_ms": round(wall, 2)}
print(json.dumps(out))
"""

LOOKUP_OLD = """
from libs.common.store import EmbeddedEngine
from services.intake.store import IncidentStore
engine = EmbeddedEngine(tmp / "store")
store = IncidentStore(engine.database("yingji_intake"))
store.ensure_indexes()
def insert(d):
    store.create(d, "auto:" + d["_id"], "h")
def lookup():
    store.duplicate_candidates("flood", at, window, False)
"""

LOOKUP_NEW = """
from libs.common.sqlite import SqliteDatabase
from services.intake.domain import Neighbourhood
from services.intake.repository.sqlite import SqliteIntakeRepository
near = Neighbourhood("349901001", (31.4, 31.6, 116.3, 116.5))
repo = SqliteIntakeRepository(SqliteDatabase(tmp / "intake.sqlite3"))
repo.ensure_schema()
def insert(d):
    repo.record_incident_with_event(d, "auto:" + d["_id"], "h", [])
def lookup():
    repo.duplicate_candidates("flood", at - window, at + window, False, near)
"""


def lookup_costs(tree: Path, setup: str, history: int, sizes: list[int]) -> dict[str, Any]:
    """Run the lookup program of one engine in its own tree and process."""
    with tempfile.TemporaryDirectory(prefix="yingji-bench-lookup-") as tmp:
        program = LOOKUP_HEAD + setup + LOOKUP_BODY
        out = subprocess.run(
            [sys.executable, "-c", program, tmp, str(history), json.dumps(sizes)],
            cwd=tree,
            env={**os.environ, "PYTHONPATH": str(tree)},
            capture_output=True,
            text=True,
        )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


READS = """
import json, random, statistics, sys, time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from libs.common.pagination import cursor_scope
from libs.common.sqlite import SqliteDatabase
from services.intake.repository import IncidentFilter
from services.intake.repository.sqlite import SqliteIntakeRepository
tmp, count = Path(sys.argv[1]), int(sys.argv[2])
repo = SqliteIntakeRepository(SqliteDatabase(tmp / "intake.sqlite3"))
repo.ensure_schema()
rnd = random.Random(5)
start = datetime(2023, 1, 1, tzinfo=UTC)
for i in range(count):
    at = start + timedelta(minutes=15 * i)
    repo.record_incident_with_event({"_id": f"i{i:07d}", "category": "flood",
        "township_code": f"3499011{i % 12:02d}", "status": rnd.choice(["open", "closed"]),
        "grade": rnd.randint(1, 4), "exercise": False, "late": False, "escalated": False,
        "occurred_at": at, "reported_at": at, "location": {"address": "x"},
        "history": [{"kind": "reported", "at": at}], "merged_ids": [], "version": 1,
        "description": "x" * 400}, f"auto:{i}", "h", [])
def p99(fn, n=200):
    times = []
    for _ in range(n):
        t = time.perf_counter(); fn(); times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return round(times[int(len(times) * 0.99) - 1], 2)
# A page signs its next cursor for the list it belongs to, as inside a request.
with cursor_scope(b"bench-cursor-secret-of-32-bytes!", "/v1/incidents"):
    out = {
        "get_by_id_p99_ms": p99(lambda: repo.incident_by_id(f"i{rnd.randrange(count):07d}")),
        "list_page1_p99_ms": p99(lambda: repo.incidents_page(IncidentFilter(), 50, None)),
        "list_township_p99_ms": p99(
            lambda: repo.incidents_page(IncidentFilter(township_code="349901105"), 50, None)),
        "list_open_grade1_p99_ms": p99(
            lambda: repo.incidents_page(IncidentFilter(status="open", grade=1), 50, None)),
        "open_by_grade_p99_ms": p99(repo.count_open_by_grade, 20),
    }
print(json.dumps(out))
"""


def read_costs(count: int) -> dict[str, Any]:
    """p99 of the repository's reads over ``count`` incidents of history (SQLite only)."""
    with tempfile.TemporaryDirectory(prefix="yingji-bench-reads-") as tmp:
        out = subprocess.run(
            [sys.executable, "-c", READS, tmp, str(count)],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _ratio(old: float, new: float) -> float:
    return round(old / max(new, 1e-3), 1)


def main() -> None:
    """Run both parts and print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--old-ref", default=None)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--history", type=int, default=5000)
    parser.add_argument("--reads", type=int, default=0, help="history size for the read p99s")
    args = parser.parse_args()
    if args.reads:
        record("store_intake.sqlite_reads", history=args.reads, **read_costs(args.reads))
    ref = args.old_ref or old_ref()
    with tempfile.TemporaryDirectory(prefix="yingji-bench-old-") as tmp:
        old_tree = export_tree(ref, Path(tmp))
        record("store_intake.trees", old=ref, new="working tree")
        sizes = [30, 1030]
        old = lookup_costs(old_tree, LOOKUP_OLD, args.history, sizes)
        new = lookup_costs(ROOT, LOOKUP_NEW, args.history, sizes)
        record(
            "store_intake.insert_with_unique_key",
            documents=args.history,
            old_ms=old["insert_wall_ms"],
            new_ms=new["insert_wall_ms"],
            old_over_new=_ratio(old["insert_wall_ms"], new["insert_wall_ms"]),
        )
        for size in sizes:
            o, n = old[str(size)], new[str(size)]
            record(f"store_intake.lookup.open_{size}", history=args.history, old=o, new=n)
            record(
                f"store_intake.lookup.open_{size}.ratios",
                lookup_cpu_old_over_new=_ratio(o["lookup_cpu_ms"], n["lookup_cpu_ms"]),
                lookup_wall_old_over_new=_ratio(o["lookup_wall_ms"], n["lookup_wall_ms"]),
            )
        rates: dict[str, float] = {"bare": 0.0, "old": 0.0, "new": 0.0}
        for _ in range(args.rounds):
            with bare() as url:
                rate = post_rate(url + "/v1/incidents", {}, args.seconds)
                rates["bare"] = max(rates["bare"], rate)
            for side, tree in (("old", old_tree), ("new", ROOT)):
                with intake_process(tree) as (url, key):
                    headers = {"Authorization": f"Bearer {key}"}
                    rate = post_rate(url + "/v1/incidents", headers, args.seconds)
                    rates[side] = max(rates[side], rate)
        record(
            "store_intake.post",
            concurrency=CONCURRENCY,
            seconds=args.seconds,
            rounds=args.rounds,
            **{f"{k}_req_per_s": round(v, 1) for k, v in rates.items()},
            new_over_old=round(rates["new"] / rates["old"], 2),
            old_over_bare=round(rates["old"] / rates["bare"], 3),
            new_over_bare=round(rates["new"] / rates["bare"], 3),
        )


if __name__ == "__main__":
    main()

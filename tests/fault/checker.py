"""The fault checker: what every request got back, and where its effects ended up.

Requests are classified as Jepsen does: **acknowledged** (2xx), **rejected** (4xx: the server
said no, so nothing may have happened) or **indeterminate** (no answer, or a 5xx: it may or may
not have taken effect). After the run settles, every effect a request must have in a service is
looked up through that service's own API and classified:

- **delivered**: present exactly once;
- **lost**: an acknowledged request's effect is missing;
- **duplicated**: present more than once (or an indeterminate request's effect shows twice);
- **unexpected**: present although no acknowledged or indeterminate request explains it (a
  rejected request that took effect, or something nobody asked for).

An indeterminate request's effect may be present once or absent; when it is present in intake it
must then be present everywhere else too, like an acknowledged one.

What must be where, per acknowledged request:

- an acknowledged incident (首报): in intake once; in reporting its report chain (the initial
  report), one `incident_reported` in the audit trail/timeline and one initial deadline; in
  dispatch, `/v1/dispatches/suggest` knows it;
- an acknowledged follow-up or final report: once in its incident's chain in reporting;
- an acknowledged warning: in warning, and one `warning_issued` in reporting's audit trail.
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support.rabbitmq import Broker
from yingji.drill import Outcome

ACKNOWLEDGED, REJECTED, INDETERMINATE = "acknowledged", "rejected", "indeterminate"
DELIVERED, LOST, DUPLICATED, UNEXPECTED = "delivered", "lost", "duplicated", "unexpected"

# Operations whose effects the checker follows.
INCIDENT, FOLLOWUP, FINAL, WARNING = "incident", "followup", "final_report", "warning"
VILLAGE_WARNING = "village_warning"

Get = Callable[[str], httpx.Response]


def classify(outcome: Outcome) -> str:
    """acknowledged, rejected or indeterminate."""
    if outcome.status is None or outcome.status >= 500:
        return INDETERMINATE
    if 200 <= outcome.status < 300:
        return ACKNOWLEDGED
    return REJECTED


@dataclass
class Verdict:
    """The figures of one check."""

    requests: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    effects: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    problems: list[str] = field(default_factory=list)

    def effect(self, where: str, kind: str, detail: str = "") -> None:
        """Count an effect; anything but delivered is also a problem."""
        self.effects[where][kind] += 1
        if kind != DELIVERED:
            self.problems.append(f"{where}: {kind} {detail}".strip())

    def total(self, kind: str) -> int:
        """How many effects of ``kind`` across every service view."""
        return sum(counts[kind] for counts in self.effects.values())

    @property
    def ok(self) -> bool:
        """lost = 0, duplicated = 0, unexpected = 0."""
        return not self.problems

    def summary(self) -> dict[str, Any]:
        """Plain figures, for printing and for docs/reliability.md."""
        return {
            "requests": {op: dict(c) for op, c in sorted(self.requests.items())},
            "effects": {where: dict(c) for where, c in sorted(self.effects.items())},
            "totals": {k: self.total(k) for k in (DELIVERED, LOST, DUPLICATED, UNEXPECTED)},
        }

    def report(self) -> str:
        """A readable table and the first problems."""
        lines = ["requests (acknowledged / rejected / indeterminate):"]
        for op, counts in sorted(self.requests.items()):
            lines.append(
                f"  {op:<16}{counts[ACKNOWLEDGED]:>7}{counts[REJECTED]:>7}"
                f"{counts[INDETERMINATE]:>7}"
            )
        lines.append("effects (delivered / lost / duplicated / unexpected):")
        for where, counts in sorted(self.effects.items()):
            lines.append(
                f"  {where:<28}{counts[DELIVERED]:>7}{counts[LOST]:>6}"
                f"{counts[DUPLICATED]:>6}{counts[UNEXPECTED]:>6}"
            )
        lines += [f"  ! {p}" for p in self.problems[:30]]
        return "\n".join(lines)


def _all_pages(get: Get, path: str) -> list[dict[str, Any]]:
    """Every item of a cursor-paginated list (bounded: at most 1000 pages)."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    separator = "&" if "?" in path else "?"
    for _ in range(1000):
        url = path + (f"{separator}cursor={cursor}" if cursor else "")
        response = get(url)
        assert response.status_code == 200, f"GET {url}: {response.status_code} {response.text}"
        body = response.json()
        items += body["items"]
        cursor = body.get("next_cursor")
        if not cursor:
            return items
    raise AssertionError(f"more than 1000 pages at {path}")


def check(
    outcomes: Sequence[Outcome],
    get: Get,
    *,
    ignore_incidents: Iterable[str] = (),
    workers: int = 8,
) -> Verdict:
    """Classify every request and look up every effect it must have; see the module text."""
    verdict = Verdict()
    for outcome in outcomes:
        verdict.requests[outcome.operation][classify(outcome)] += 1
    by_op: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        by_op[outcome.operation].append(outcome)

    ignored = set(ignore_incidents)
    acked_incidents = {
        o.created_id for o in by_op[INCIDENT] if classify(o) == ACKNOWLEDGED and o.created_id
    }
    open_incident_requests = sum(1 for o in by_op[INCIDENT] if classify(o) == INDETERMINATE)

    # -- intake: every incident, once ----------------------------------------------------------
    listed = Counter(
        row["id"] for row in _all_pages(get, "/v1/incidents?limit=200") if row["id"] not in ignored
    )
    for ident in sorted(acked_incidents):
        seen = listed.get(ident, 0)
        verdict.effect("intake.incidents", {0: LOST, 1: DELIVERED}.get(seen, DUPLICATED), ident)
    extra = sorted(ident for ident in listed if ident not in acked_incidents)
    # An indeterminate POST may have created its incident (once); more than that is unexpected.
    if len(extra) > open_incident_requests:
        for ident in extra:
            verdict.effect("intake.incidents", UNEXPECTED, f"{ident} (nobody was told about it)")
    explained = [i for i in extra if len(extra) <= open_incident_requests]
    verdict.effects["intake.incidents"]["indeterminate_present"] += len(explained)

    # -- every incident intake holds must be everywhere downstream, once ----------------------
    everywhere = sorted(acked_incidents | set(explained))
    reported = Counter(
        e["payload"].get("incident_id")
        for e in _all_pages(get, "/v1/audit?event_type=incident_reported&limit=200")
    )
    initial_deadlines = Counter(
        d["incident_id"] for d in _all_pages(get, "/v1/deadlines?kind=initial&limit=200")
    )
    for ident in everywhere:
        for where, counts in (
            ("reporting.timeline.reported", reported),
            ("reporting.deadline.initial", initial_deadlines),
        ):
            verdict.effect(where, {0: LOST, 1: DELIVERED}.get(counts[ident], DUPLICATED), ident)

    def downstream(ident: str) -> tuple[str, list[dict[str, Any]], list[tuple[str, str]]]:
        found: list[tuple[str, str]] = []
        rows: list[dict[str, Any]] = []
        chain = get(f"/v1/reports?incident_id={ident}")
        if chain.status_code == 404:
            found.append(("reporting.chain.initial", LOST))
        else:
            assert chain.status_code == 200, chain.text
            rows = chain.json()["items"]
            initials = sum(1 for r in rows if r["kind"] == "initial")
            found.append(("reporting.chain.initial", DELIVERED if initials == 1 else DUPLICATED))
        suggest = get(f"/v1/dispatches/suggest?incident_id={ident}&limit=1")
        found.append(("dispatch.incidents", DELIVERED if suggest.status_code == 200 else LOST))
        return ident, rows, found

    chains: dict[str, list[dict[str, Any]]] = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for ident, rows, found in pool.map(downstream, everywhere):
            chains[ident] = rows
            for where, kind in found:
                verdict.effect(where, kind, ident)

    # -- follow-ups and final reports: once in the chain of their incident -------------------
    report_ops = by_op[FOLLOWUP] + by_op[FINAL]
    acked_reports = {o.created_id: o for o in report_ops if classify(o) == ACKNOWLEDGED}
    open_reports = Counter(o.subject for o in report_ops if classify(o) == INDETERMINATE)
    in_chain: dict[str, Counter[str]] = {
        ident: Counter(r["id"] for r in rows if r["kind"] != "initial")
        for ident, rows in chains.items()
    }
    for report_id, outcome in sorted(acked_reports.items(), key=lambda kv: str(kv[0])):
        assert report_id and outcome.subject, f"acknowledged report without ids: {outcome}"
        seen = in_chain.get(outcome.subject, Counter()).get(report_id, 0)
        verdict.effect(
            "reporting.chain.reports", {0: LOST, 1: DELIVERED}.get(seen, DUPLICATED), report_id
        )
    for ident, counts in in_chain.items():
        for report_id, seen in counts.items():
            if seen > 1 and report_id not in acked_reports:
                verdict.effect("reporting.chain.reports", DUPLICATED, report_id)
        unexplained = [r for r in counts if r not in acked_reports]
        if len(unexplained) > open_reports.get(ident, 0):
            for report_id in unexplained:
                verdict.effect("reporting.chain.reports", UNEXPECTED, f"{ident}/{report_id}")
        else:
            verdict.effects["reporting.chain.reports"]["indeterminate_present"] += len(unexplained)

    # -- warnings: in warning, and warning_issued once in reporting's audit trail ------------
    # The drill issues warnings as two operations: the usual ones and those of the last mile.
    warning_ops = [*by_op[WARNING], *by_op[VILLAGE_WARNING]]
    acked_warnings = sorted(
        o.created_id for o in warning_ops if classify(o) == ACKNOWLEDGED and o.created_id
    )
    open_warnings = sum(1 for o in warning_ops if classify(o) == INDETERMINATE)
    if warning_ops:
        issued = Counter(
            e["payload"].get("warning_id")
            for e in _all_pages(get, "/v1/audit?event_type=warning_issued&limit=200")
        )

        def warning_exists(ident: str) -> tuple[str, int]:
            return ident, get(f"/v1/warnings/{ident}").status_code

        with ThreadPoolExecutor(max_workers=workers) as pool:
            statuses = dict(pool.map(warning_exists, acked_warnings))
        for ident in acked_warnings:
            verdict.effect("warning.warnings", DELIVERED if statuses[ident] == 200 else LOST, ident)
            seen = issued.get(ident, 0)
            verdict.effect(
                "reporting.timeline.warning_issued",
                {0: LOST, 1: DELIVERED}.get(seen, DUPLICATED),
                ident,
            )
        unexplained = [w for w in issued if w not in set(acked_warnings)]
        for ident in unexplained:
            if issued[ident] > 1:
                verdict.effect("reporting.timeline.warning_issued", DUPLICATED, ident)
        if len(unexplained) > open_warnings:
            for ident in unexplained:
                verdict.effect("reporting.timeline.warning_issued", UNEXPECTED, ident)
    return verdict


# -- settling -------------------------------------------------------------------------------


def outbox_pending(metrics_text: str) -> float | None:
    """The sum of ``yingji_outbox_pending`` on a /metrics page (None when not reported yet)."""
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in metrics_text.splitlines()
        if line.startswith("yingji_outbox_pending{")
    ]
    return sum(values) if values else None


def consumers_connected(metrics_text: str) -> bool:
    """True when every consumer connection on a /metrics page is up (a queue that reads empty
    while its consumer is still reconnecting after a broker restart is not drained)."""
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in metrics_text.splitlines()
        if line.startswith("yingji_bus_connected{") and 'role="consumer"' in line
    ]
    return bool(values) and all(v == 1.0 for v in values)


def settle(
    metrics_urls: Sequence[str],
    queues: tuple[Broker, str] | None,
    timeout: float = 60.0,
    stable_for: int = 2,
) -> dict[str, Any]:
    """Wait (bounded) until every outbox is empty and every queue but the dead-letter ones of
    ``queues`` (a broker and a vhost) is drained, ``stable_for`` polls in a row; returns what
    was seen last."""
    deadline = time.monotonic() + timeout
    in_a_row = 0
    seen: dict[str, Any] = {}
    previous_dead_letters: dict[str, int] | None = None
    while time.monotonic() < deadline:
        seen = {}
        quiet = True
        for url in metrics_urls:
            try:
                text = httpx.get(url, timeout=5).text
                pending = outbox_pending(text)
                connected = consumers_connected(text)
            except httpx.HTTPError as exc:
                pending, connected = None, False
                seen[url] = type(exc).__name__
            seen.setdefault(url, {"pending": pending, "consumers_connected": connected})
            quiet = quiet and pending == 0 and connected
        if queues is not None:
            try:
                depths = queues[0].queue_depths(queues[1])
            except (subprocess.SubprocessError, ValueError) as exc:
                depths = {"<rabbitmqctl>": -1}
                seen["rabbitmqctl"] = repr(exc)
            busy = {q: n for q, n in depths.items() if n and not q.endswith(".dlq")}
            seen["queues"] = busy
            seen["dead_letters"] = {q: n for q, n in depths.items() if n and q.endswith(".dlq")}
            # Dead-letter counts must hold still too: a message being moved shows in two queues.
            quiet = quiet and not busy and seen["dead_letters"] == previous_dead_letters
            previous_dead_letters = seen["dead_letters"]
        in_a_row = in_a_row + 1 if quiet else 0
        if in_a_row >= stable_for:
            return seen
        time.sleep(1.0)
    raise AssertionError(f"did not settle within {timeout:.0f} s: {seen}")

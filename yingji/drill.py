"""`yingji drill`: drive a running stack over HTTP like a county on a bad day (a flood day).

Incidents arrive in waves from many townships, follow-ups raise the figures, some incidents get
final reports, townships file zero reports and epidemic reports (传染病零报告), warnings are
issued, adjusted and lifted (and reach the villages' information officers, who confirm by the
link in their message or through their township, or stay silent and escalate), teams and
supplies are dispatched and returned. The duty office
(值班室) works the same day: a drill roster for the week, shift handovers opened and confirmed,
spot checks by the leader; incidents of grade Ⅲ and above go up to the city as drill pushes when
an upstream is configured. A drill special campaign (专项行动) gets its reports, and drill
disputes are assigned, supervised (督办) and discussed at joint meetings (联席会议).
Every write carries ``exercise: true`` (演练) or acts on an object that does, so the platform
keeps it apart: it reserves no real team or stock, files no real zero report, and is left out of
every count. Its texts are Chinese. A seed makes the
sequence of operations repeatable; the rate and the duration bound the load. It records every
request (operation, status, latency, the id it created) so the same run serves training drills,
benchmarks and the fault checker.
"""

from __future__ import annotations

import math
import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from services.dispatch.enterprises.domain import RESPONSE_GROUPS, with_check
from yingji import drill_villages

CATEGORY_WEIGHTS = {
    "flood": 8,
    "geological": 3,
    "traffic_accident": 3,
    "fire": 2,
    "production_accident": 1,
    "dispute": 2,
    "public_health": 1,
    "lightning": 1,
}
# The Chinese names of the categories, as the platform shows them (titles carry no raw codes).
CATEGORY_NAMES = {
    "flood": "洪涝灾害",
    "geological": "地质灾害",
    "traffic_accident": "道路交通事故",
    "fire": "火灾",
    "production_accident": "生产安全事故",
    "dispute": "矛盾纠纷",
    "public_health": "公共卫生事件",
    "lightning": "雷电灾害",
}
ROLE_NAMES = {"operator": "值班员", "leader": "带班领导", "department": "水利气象部门"}
HAZARD_OF = {"flood": "flood", "geological": "geological", "lightning": "lightning"}
DRILL_PHONE = "13900000000"
# 篇6: the approver is another person, with a phone of their own.
DRILL_APPROVER_PHONE = "13900000001"
# Drill enterprises (演练企业): risk levels and hazard types they are registered with.
DRILL_ENTERPRISE_KINDS = [
    ("major", ["危险化学品", "有限空间"], "化工"),
    ("large", ["非煤矿山"], "矿业"),
    ("general", ["资金链断裂", "拖欠工资"], "纺织"),
    ("low", ["粉尘涉爆"], "木业"),
]


@dataclass
class Outcome:
    """One request the drill made."""

    operation: str
    status: int | None
    latency: float
    created_id: str | None = None
    error: str | None = None
    subject: str | None = None  # the incident or warning a request acts on, if any
    started_at: float = 0.0  # time.monotonic() when the request was sent

    @property
    def acknowledged(self) -> bool:
        """The server accepted it (2xx)."""
        return self.status is not None and 200 <= self.status < 300

    @property
    def indeterminate(self) -> bool:
        """No answer, or a server error: it may or may not have taken effect."""
        return self.status is None or self.status >= 500


@dataclass
class Recorder:
    """Thread-safe log of outcomes."""

    outcomes: list[Outcome] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, outcome: Outcome) -> None:
        """Record an outcome."""
        with self.lock:
            self.outcomes.append(outcome)

    def acknowledged_ids(self, operation: str) -> list[str]:
        """Ids the server acknowledged creating with ``operation``."""
        return [
            o.created_id
            for o in self.outcomes
            if o.operation == operation and o.acknowledged and o.created_id
        ]

    def summary(self) -> dict[str, Any]:
        """Counts and latency percentiles per operation."""
        by_op: dict[str, list[Outcome]] = defaultdict(list)
        for outcome in self.outcomes:
            by_op[outcome.operation].append(outcome)
        report: dict[str, Any] = {}
        for op, rows in sorted(by_op.items()):
            latencies = sorted(o.latency for o in rows if o.status is not None)
            report[op] = {
                "requests": len(rows),
                "statuses": dict(Counter(str(o.status) for o in rows)),
                "p50_ms": round(percentile(latencies, 50) * 1000, 1),
                "p99_ms": round(percentile(latencies, 99) * 1000, 1),
            }
        return report


def percentile(values: list[float], pct: float) -> float:
    """The ``pct`` percentile of sorted ``values`` (nearest rank); 0 for none."""
    if not values:
        return 0.0
    rank = max(0, min(len(values) - 1, math.ceil(pct / 100 * len(values)) - 1))
    return values[rank]


class Drill:
    """A seeded flood-day scenario against one base URL (embedded, or a proxy in front)."""

    def __init__(
        self,
        base_url: str,
        admin_key: str,
        *,
        seed: int = 1,
        rate: float = 10.0,
        duration: float = 30.0,
        concurrency: int = 8,
        route: Callable[[str], str] | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.admin_key = admin_key
        # The schedule is drawn from one seeded generator; each operation gets a generator of
        # its own seeded from it, so a seed gives the same operations and bodies even though
        # they run on several threads.
        self._schedule = random.Random(seed)
        self._local = threading.local()
        self.rate = rate
        self.duration = duration
        self.concurrency = concurrency
        self.route = route or (lambda path: self.base_url + path)
        self.client = httpx.Client(timeout=timeout)
        self.recorder = Recorder()
        self.keys: dict[str, str] = {}
        self.townships: list[str] = []
        self.teams: list[str] = []
        self.open_incidents: list[dict[str, Any]] = []
        self.active_warnings: list[dict[str, Any]] = []
        # The last mile: drill warnings over villages, and each township's village codes.
        self.village_warnings: list[dict[str, Any]] = []
        self.villages: dict[str, list[str]] = {}
        self.dispatches: list[dict[str, Any]] = []
        # Reporting units (townships, health units) and watched diseases of the epidemic reports.
        self.epidemic_units: list[dict[str, Any]] = []
        self.diseases: list[str] = []
        # Information work: the departments, and the drill's items awaiting feedback.
        self.departments: list[str] = []
        self.information_items: list[str] = []
        self.state_lock = threading.Lock()
        self.run_id = uuid.uuid4().hex[:6]
        # The drill's special campaign (专项行动) and the disputes it has assigned.
        self.campaign: dict[str, Any] | None = None
        self.assigned_disputes: set[str] = set()

    # -- plumbing -------------------------------------------------------------------------

    def call(
        self,
        operation: str,
        method: str,
        path: str,
        who: str,
        body: Any = None,
        id_field: str = "id",
        subject: str | None = None,
    ) -> httpx.Response | None:
        """Make one request, record it, and return the response (None when none came)."""
        headers = (
            {}  # a village's link needs no key
            if who == "public"
            else {"Authorization": f"Bearer {self.keys.get(who, self.admin_key)}"}
        )
        if method == "POST":
            headers["Idempotency-Key"] = f"drill-{self.run_id}-{uuid.uuid4().hex}"
        started = time.perf_counter()
        sent_at = time.monotonic()
        try:
            response = self.client.request(method, self.route(path), json=body, headers=headers)
        except httpx.HTTPError as exc:
            self.recorder.add(
                Outcome(
                    operation,
                    None,
                    time.perf_counter() - started,
                    error=type(exc).__name__,
                    subject=subject,
                    started_at=sent_at,
                )
            )
            return None
        latency = time.perf_counter() - started
        created = None
        if response.status_code in (200, 201) and method == "POST":
            try:
                created = str(response.json().get(id_field) or "") or None
            except ValueError:
                created = None
        self.recorder.add(
            Outcome(
                operation,
                response.status_code,
                latency,
                created,
                subject=subject,
                started_at=sent_at,
            )
        )
        return response

    def setup(self) -> None:
        """Create the drill's keys and learn the county."""
        admin = {"Authorization": f"Bearer {self.admin_key}"}
        townships = self.client.get(self.route("/v1/townships"), headers=admin)
        townships.raise_for_status()
        self.townships = [t["code"] for t in townships.json()["items"]]
        names = {t["code"]: t.get("name") or t["code"] for t in townships.json()["items"]}
        wanted: list[tuple[str, str, str | None]] = [
            ("operator", "operator", None),
            ("leader", "leader", None),
            ("department", "department", None),
        ]
        wanted += [(f"township:{code}", "township", code) for code in self.townships]
        for who, role, code in wanted:
            title = ROLE_NAMES.get(who) or f"{names.get(code or '', code)}值班"
            body: dict[str, Any] = {"role": role, "name": f"演练 {self.run_id} {title}"}
            if code:
                body["township_code"] = code
            if role == "department":
                body["hazards"] = ["flood", "geological", "rainstorm", "lightning"]
            made = self.client.post(self.route("/v1/admin/keys"), json=body, headers=admin)
            made.raise_for_status()
            self.keys[who] = made.json()["key"]
        teams = self.client.get(
            self.route("/v1/teams"), headers={"Authorization": f"Bearer {self.keys['operator']}"}
        )
        if teams.status_code == 200:
            self.teams = [t["id"] for t in teams.json()["items"]]
        epidemic = self.client.get(
            self.route("/v1/epidemic/diseases"),
            headers={"Authorization": f"Bearer {self.keys['operator']}"},
        )
        if epidemic.status_code == 200:
            self.epidemic_units = list(epidemic.json()["units"])
            self.diseases = [d["code"] for d in epidemic.json()["items"]]
        self.learn_information_units(admin)
        villages = self.client.get(
            self.route("/v1/county/villages"),
            headers={"Authorization": f"Bearer {self.keys['operator']}"},
        )
        if villages.status_code == 200:
            for village in villages.json()["items"]:
                self.villages.setdefault(village["township_code"], []).append(village["code"])
        self.enter_duty_roster()

    def learn_information_units(self, admin: dict[str, str]) -> None:
        """The county's departments and a key for each, bound to its department (信息报送)."""
        units = self.client.get(
            self.route("/v1/information/units"),
            headers={"Authorization": f"Bearer {self.keys['operator']}"},
        )
        if units.status_code != 200:
            return  # a platform without information work
        rows = [u for u in units.json()["items"] if u["unit_kind"] == "department"]
        for row in rows:
            body = {
                "role": "department",
                "name": f"演练 {self.run_id} {row['name']}信息员",
                "department_code": row["unit_code"],
            }
            made = self.client.post(self.route("/v1/admin/keys"), json=body, headers=admin)
            made.raise_for_status()
            self.keys[f"department:{row['unit_code']}"] = made.json()["key"]
            self.departments.append(row["unit_code"])

    # -- operations -----------------------------------------------------------------------

    def now(self) -> datetime:
        """Wall-clock time for the bodies (the server judges lateness on its own clock)."""
        return datetime.now(UTC)

    def report_incident(self) -> None:
        """A township reports an incident (首报)."""
        rnd = self.random
        code = rnd.choice(self.townships)
        category = rnd.choices(list(CATEGORY_WEIGHTS), weights=list(CATEGORY_WEIGHTS.values()))[0]
        deaths = rnd.choices([0, 1, 2, 3, 5, 12], weights=[70, 12, 6, 6, 4, 2])[0]
        now = self.now()
        body: dict[str, Any] = {
            "category": category,
            "township_code": code,
            "title": f"演练：{CATEGORY_NAMES[category]}",
            "description": "演练数据：河水上涨，部分道路积水，村民正在转移。",
            "occurred_at": (now - timedelta(minutes=rnd.randint(5, 40))).isoformat(),
            "discovered_at": (now - timedelta(minutes=rnd.randint(0, 4))).isoformat(),
            "location": {"address": f"演练地点 {rnd.randint(1, 99)} 号"},
            "casualties": {
                "deaths": deaths,
                "injured": rnd.randint(0, 8),
                "missing": 0,
                "trapped": rnd.randint(0, 3),
            },
            "affected": {
                "people_affected": rnd.randint(0, 2000),
                "people_evacuated": rnd.randint(0, 300),
                "houses_damaged": rnd.randint(0, 20),
                "houses_collapsed": rnd.randint(0, 3),
                "direct_loss_cny": rnd.randint(0, 500) * 1000,
            },
            "people_involved": rnd.randint(0, 15),
            "measures_taken": "已组织人员转移，设置警戒。",
            "needs": "需要沙袋和抽水泵。",
            "reporter": {"name": "演练报送人", "phone": DRILL_PHONE},
            "approver": {"name": "演练审签人", "phone": DRILL_APPROVER_PHONE},
            "source": "演练",
            "exercise": True,
        }
        response = self.call("incident", "POST", "/v1/incidents", f"township:{code}", body)
        if response is not None and response.status_code == 201:
            created = response.json()
            with self.state_lock:
                self.open_incidents.append(
                    {
                        "id": created["id"],
                        "township": code,
                        "category": category,
                        "casualties": body["casualties"],
                        "affected": body["affected"],
                        "followups": 0,
                    }
                )

    def file_followup(self) -> None:
        """A township files a follow-up (续报) with figures that only rise."""
        with self.state_lock:
            if not self.open_incidents:
                return
            incident = self.random.choice(self.open_incidents)
            incident["casualties"] = {
                k: v + (1 if k == "injured" and self.random.random() < 0.5 else 0)
                for k, v in incident["casualties"].items()
            }
            incident["affected"] = {
                k: v + (10 if k == "people_affected" else 0)
                for k, v in incident["affected"].items()
            }
            final = incident["followups"] >= 2 and self.random.random() < 0.3
            if final:
                self.open_incidents.remove(incident)
            incident["followups"] += 1
        body = {
            "incident_id": incident["id"],
            "kind": "final" if final else "followup",
            "casualties": incident["casualties"],
            "affected": incident["affected"],
            "progress": "演练：险情得到控制，继续监测。",
            "measures_taken": "持续转移群众。",
            "needs": "无",
            "reporter": {"name": "演练报送人", "phone": DRILL_PHONE},
            "approver": {"name": "演练审签人", "phone": DRILL_APPROVER_PHONE},
            "exercise": True,
        }
        self.call(
            "final_report" if final else "followup",
            "POST",
            "/v1/reports",
            f"township:{incident['township']}",
            body,
            subject=incident["id"],
        )

    def enter_duty_roster(self) -> None:
        """The week's drill roster (演练值班表): every shift staffed by drill people."""
        local_today = (self.now() + timedelta(hours=8)).date()
        monday = local_today - timedelta(days=local_today.weekday())
        week = self.client.get(
            self.route(f"/v1/duty/roster?week={monday.isoformat()}&exercise=true"),
            headers={"Authorization": f"Bearer {self.keys['operator']}"},
        )
        if week.status_code != 200:
            return  # a platform without the duty office: the rest of the drill goes on
        shifts = [
            {
                "day": shift["day"],
                "code": shift["code"],
                "leader": {"name": "演练带班领导", "phone": DRILL_PHONE},
                "officers": [{"name": f"演练值班员{n % 3 + 1}", "phone": DRILL_APPROVER_PHONE}],
            }
            for n, shift in enumerate(week.json()["shifts"])
        ]
        self.call(
            "duty_roster",
            "PUT",
            f"/v1/duty/roster/{monday.isoformat()}",
            "operator",
            {"shifts": shifts, "exercise": True},
        )

    def hand_over(self) -> None:
        """The drill officer hands the shift over and the next one confirms (once a shift)."""
        opened = self.call(
            "duty_handover",
            "POST",
            "/v1/duty/handovers",
            "operator",
            {
                "outgoing_officer": "演练值班员1",
                "notes": "演练：雨情持续，注意续报。",
                "exercise": True,
            },
        )
        if opened is None or opened.status_code != 201:
            return  # this shift was handed over already (409)
        self.call(
            "duty_confirm",
            "POST",
            f"/v1/duty/handovers/{opened.json()['id']}/confirm",
            "operator",
            {"incoming_officer": "演练值班员2"},
            subject=opened.json()["id"],
        )

    def spot_check(self) -> None:
        """The leader calls the duty office unannounced (抽查, drill)."""
        rnd = self.random
        absent = rnd.random() < 0.1
        self.call(
            "spot_check",
            "POST",
            "/v1/duty/spot-checks",
            "leader",
            {
                "called_at": self.now().isoformat(),
                "caller": "演练抽查人",
                "caller_unit": "演练：市应急管理局",
                "answerer": "" if absent else "演练值班员1",
                "rings": None if absent else rnd.randint(1, 6),
                "result": "absent" if absent else "on_duty",
                "exercise": True,
            },
        )

    def file_zero_report(self) -> None:
        """A township files yesterday's zero report."""
        code = self.random.choice(self.townships)
        yesterday = (self.now() + timedelta(hours=8) - timedelta(days=1)).date().isoformat()
        self.call(
            "zero_report",
            "POST",
            "/v1/zero-reports",
            f"township:{code}",
            {
                "township_code": code,
                "date": yesterday,
                "nothing_to_report": True,
                "exercise": True,
                "reporter": {"name": "演练报送人", "phone": DRILL_PHONE},
                "approver": {"name": "演练审签人", "phone": DRILL_APPROVER_PHONE},
            },
        )

    def file_epidemic_report(self) -> None:
        """A township files yesterday's epidemic report (传染病零报告) for itself or one of its
        health units: zero cases, now and then a few cases with a case report (drill)."""
        if not self.epidemic_units or not self.diseases:
            return  # a platform without epidemic reports
        rnd = self.random
        unit = rnd.choice(self.epidemic_units)
        yesterday = (self.now() + timedelta(hours=8) - timedelta(days=1)).date().isoformat()
        entries = []
        if rnd.random() < 0.2:
            cases = rnd.randint(1, 3)
            report = f"演练：报告病例{cases}例，已流调并隔离治疗（演练数据）。"
            entries.append(
                {"disease_code": rnd.choice(self.diseases), "cases": cases, "case_report": report}
            )
        self.call(
            "epidemic_report",
            "POST",
            "/v1/epidemic/reports",
            f"township:{unit['township_code']}",
            {
                "unit_id": unit["id"],
                "date": yesterday,
                "entries": entries,
                "zero_for_rest": True,
                # A later drill filing of the same unit and day may change figures: a correction.
                "correction_reason": "演练：数字更正",
                "exercise": True,
                "reporter": {"name": "演练报告人", "phone": DRILL_PHONE},
            },
            id_field="unit_id",
        )

    def submit_information(self) -> None:
        """A department or township submits an information or research item (信息报送); the
        county office then records its adoption (采用) or a leader's instruction (批示), now and
        then both (drill: counted towards no quota or score)."""
        rnd = self.random
        units = [("department", c) for c in self.departments]
        units += [("township", c) for c in self.townships]
        if not units:
            return
        kind, code = rnd.choice(units)
        research = rnd.random() < 0.2
        body = {
            "unit_kind": kind,
            "unit_code": code,
            "kind": "research" if research else "info",
            "title": "演练：汛期隐患排查调研" if research else "演练：河道水位上涨",
            "body": "演练：受上游来水影响，河段水位上涨，已安排专人巡查（演练数据）。",
            "exercise": True,
        }
        response = self.call(
            "information_item", "POST", "/v1/information/items", f"{kind}:{code}", body
        )
        if response is not None and response.status_code in (200, 201):
            self.give_feedback(response.json()["id"])

    def give_feedback(self, item_id: str) -> None:
        """The county office's adoption and instruction on a drill item, by chance."""
        rnd = self.random
        today = (self.now() + timedelta(hours=8)).date().isoformat()
        target = {"target_kind": "item", "target_id": item_id, "date": today, "exercise": True}
        if rnd.random() < 0.5:
            level = rnd.choice(["county", "city", "province", "national"])
            adoption = {**target, "level": level, "by": "演练：市政府办公室《政务信息》"}
            path = "/v1/information/adoptions"
            self.call("information_adoption", "POST", path, "leader", adoption)
        if rnd.random() < 0.3:
            instruction = {
                **target,
                "level": "county",
                "leader": "演练县长",
                "text": "演练：请相关部门加强巡查，及时报告。",
            }
            path = "/v1/information/instructions"
            self.call("information_instruction", "POST", path, "leader", instruction)

    def issue_warning(self) -> None:
        """The duty office issues a yellow or blue flood warning (drill)."""
        rnd = self.random
        areas = rnd.sample(self.townships, k=min(3, len(self.townships)))
        now = self.now()
        body = {
            "hazard": "flood",
            "level": rnd.choice([3, 4]),
            "headline": "演练：暴雨洪水预警",
            "description": "演练：预计未来6小时有强降雨。",
            "instruction": "低洼地区群众注意转移。",
            "areas": areas,
            "effective": now.isoformat(),
            "expires": (now + timedelta(hours=6)).isoformat(),
            "exercise": True,
        }
        response = self.call("warning", "POST", "/v1/warnings", "operator", body)
        if response is not None and response.status_code == 201:
            with self.state_lock:
                self.active_warnings.append(
                    {"id": response.json()["id"], "areas": areas, "level": body["level"]}
                )

    def change_warning(self) -> None:
        """Adjust, acknowledge or lift an active warning."""
        with self.state_lock:
            if not self.active_warnings:
                return
            warning = self.random.choice(self.active_warnings)
            action = self.random.choice(["ack", "ack", "adjust", "lift"])
            if action == "lift":
                self.active_warnings.remove(warning)
        wid = warning["id"]
        if action == "ack":
            code = self.random.choice(warning["areas"])
            self.call("warning_ack", "POST", f"/v1/warnings/{wid}/ack", f"township:{code}", {})
        elif action == "adjust":
            level = 3 if warning["level"] == 4 else 4
            warning["level"] = level
            self.call(
                "warning_adjust",
                "POST",
                f"/v1/warnings/{wid}/adjust",
                "operator",
                {"level": level, "reason": "演练：雨情变化"},
            )
        else:
            self.call(
                "warning_lift",
                "POST",
                f"/v1/warnings/{wid}/lift",
                "operator",
                {"reason": "演练：雨势减弱", "override_reason": "演练结束"},
            )

    def last_mile(self) -> None:
        """Villages and their information officers (yingji/drill_villages.py)."""
        drill_villages.village_step(self)

    def dispatch_team(self) -> None:
        """Dispatch the best suggested team to an open incident, or move a dispatch along."""
        with self.state_lock:
            moving = [d for d in self.dispatches if d["status"] != "released"]
        if moving and self.random.random() < 0.6:
            order = self.random.choice(moving)
            following = {
                "ordered": "en_route",
                "en_route": "on_scene",
                "on_scene": "completed",
                "completed": "released",
            }[order["status"]]
            response = self.call(
                "dispatch_status",
                "POST",
                f"/v1/dispatches/{order['id']}/status",
                "operator",
                {"status": following},
            )
            if response is not None and response.status_code == 200:
                order["status"] = following
            return
        with self.state_lock:
            if not self.open_incidents:
                return
            incident = self.random.choice(self.open_incidents)
        suggested = self.call(
            "dispatch_suggest",
            "GET",
            f"/v1/dispatches/suggest?incident_id={incident['id']}",
            "operator",
        )
        if suggested is None or suggested.status_code != 200:
            return
        items = suggested.json().get("items") or []
        if not items:
            return
        best = items[0]
        team = best.get("team_id") or (best.get("team") or {}).get("id")
        if not team:
            return
        body = {
            "incident_id": incident["id"],
            "team_ids": [team],
            "resources": [{"warehouse_id": "W01", "item_code": "sandbag", "quantity": 50}],
            "note": "演练调度",
            "exercise": True,
        }
        response = self.call("dispatch", "POST", "/v1/dispatches", "operator", body)
        if response is not None and response.status_code == 201:
            with self.state_lock:
                self.dispatches.append({"id": response.json()["id"], "status": "ordered"})

    def register_enterprise(self) -> None:
        """Register a drill enterprise (演练企业) with a valid credit code of its own, then record
        an inspection of it with a finding and a rectification deadline a week ahead."""
        rnd = self.random
        code = rnd.choice(self.townships)
        level, hazards, trade = rnd.choice(DRILL_ENTERPRISE_KINDS)
        serial = "".join(rnd.choice("0123456789") for _ in range(9))
        person = {"name": "演练联系人", "phone": DRILL_PHONE}
        body = {
            "name": f"演练：第{serial[-4:]}号{trade}企业",
            "credit_code": with_check(f"91{code[:6]}{serial}"),
            "township_code": code,
            "risk_level": level,
            "hazard_types": hazards,
            "lat": 31.5 + rnd.uniform(-0.2, 0.2),
            "lon": 116.45 + rnd.uniform(-0.2, 0.2),
            "responsible": {"name": "演练负责人", "phone": DRILL_PHONE},
            "safety_officer": {"name": "演练安全员", "phone": DRILL_APPROVER_PHONE},
            "response_groups": [{"group": group, **person} for group in RESPONSE_GROUPS],
            "exercise": True,
        }
        made = self.call("enterprise", "POST", "/v1/enterprises", "operator", body)
        if made is None or made.status_code != 201:
            return
        today = (self.now() + timedelta(hours=8)).date()
        inspection = {
            "date": today.isoformat(),
            "inspector": "演练检查组",
            "findings": ["演练：应急疏散通道堆放杂物"],
            "deadline": (today + timedelta(days=7)).isoformat(),
        }
        path = f"/v1/enterprises/{made.json()['id']}/inspections"
        self.call("inspection", "POST", path, "operator", inspection)

    # -- special campaigns and disputes (篇1, 篇4) ------------------------------------------

    def campaigns_and_disputes(self) -> None:
        """The county's special campaign and dispute work: a drill campaign started once, then
        a township's campaign report, or a drill dispute assigned, supervised (督办) and put on
        a joint meeting (联席会议)."""
        if self.campaign is None:
            self.start_campaign()
        elif self.random.random() < 0.5:
            self.file_campaign_report()
        else:
            self.supervise_dispute()

    def start_campaign(self) -> None:
        """The county starts a drill campaign (专项行动) of a few townships, in two stages."""
        today = (self.now() + timedelta(hours=8)).date()
        body = {
            "name": "演练：社会矛盾纠纷大排查专项行动",
            "starts_on": today.isoformat(),
            "ends_on": (today + timedelta(days=14)).isoformat(),
            "stages": [
                {"name": "组织动员", "ends_on": (today + timedelta(days=3)).isoformat()},
                {"name": "全面排查", "ends_on": (today + timedelta(days=14)).isoformat()},
            ],
            "participants": self.townships[:4],
            "note": "演练数据",
            "exercise": True,
        }
        response = self.call("campaign", "POST", "/v1/campaigns", "operator", body)
        if response is not None and response.status_code == 201:
            with self.state_lock:
                self.campaign = response.json()

    def file_campaign_report(self) -> None:
        """A participating township files its campaign report (定期报告)."""
        campaign = self.campaign
        if campaign is None:
            return
        code = self.random.choice([p["code"] for p in campaign["participants"]])
        body = {"participant": code, "kind": "campaign_report", "content": "演练：排查纠纷若干起"}
        path = f"/v1/campaigns/{campaign['id']}/reports"
        self.call("campaign_report", "POST", path, f"township:{code}", body)

    def supervise_dispute(self) -> None:
        """A drill dispute is assigned with its stability-control person (稳控责任人), supervised
        in the form now due, and discussed at a joint meeting."""
        with self.state_lock:
            disputes = [
                i
                for i in self.open_incidents
                if i["category"] == "dispute" and i["id"] not in self.assigned_disputes
            ]
            if not disputes:
                return
            incident = self.random.choice(disputes)
            self.assigned_disputes.add(incident["id"])
        body = {
            "incident_id": incident["id"],
            "responsible_leader": "演练责任领导",
            "responsible_unit": "演练综治办",
            "due_at": (self.now() + timedelta(days=3)).isoformat(),
            "stability_contact": {"name": "演练稳控人", "phone": DRILL_PHONE, "unit": "演练派出所"},
            "note": "演练数据",
        }
        made = self.call("assignment", "POST", "/v1/assignments", "operator", body)
        if made is None or made.status_code != 201:
            return
        assignment = made.json()
        today = (self.now() + timedelta(hours=8)).date().isoformat()
        supervision = {
            "form": assignment["supervision_required_form"],
            "on": today,
            "by": "演练督查组",
            "note": "演练：督促按期化解",
        }
        path = f"/v1/assignments/{assignment['id']}/supervisions"
        self.call("supervision", "POST", path, "operator", supervision)
        meeting = {
            "held_on": today,
            "convener": "演练矛盾纠纷大调解协调中心",
            "attendees": ["演练司法所", "演练派出所"],
            "decisions": ["演练：司法所牵头调解，派出所落实稳控"],
            "assignment_ids": [assignment["id"]],
        }
        self.call("joint_meeting", "POST", "/v1/joint-meetings", "operator", meeting)

    # -- the run --------------------------------------------------------------------------

    @property
    def random(self) -> random.Random:
        """The generator of the operation running on this thread (the schedule's otherwise)."""
        return getattr(self._local, "random", None) or self._schedule

    def _seeded(self, operation: Callable[[], None], seed: int) -> None:
        self._local.random = random.Random(seed)
        try:
            operation()
        finally:
            self._local.random = None

    def next_operation(self) -> Callable[[], None]:
        """Choose the next operation; incidents come in waves."""
        elapsed = time.monotonic() - self.started
        wave = 1.5 if int(elapsed // 10) % 2 == 0 else 0.6
        choices: list[tuple[Callable[[], None], float]] = [
            (self.report_incident, 4 * wave),
            (self.file_followup, 3),
            (self.file_zero_report, 1),
            (self.file_epidemic_report, 1),
            (self.submit_information, 1),
            (self.issue_warning, 0.5),
            (self.change_warning, 1),
            (self.last_mile, 0.8),
            (self.dispatch_team, 1.5),
            (self.hand_over, 0.3),
            (self.spot_check, 0.3),
            (self.register_enterprise, 0.3),
            (self.campaigns_and_disputes, 0.6),
        ]
        ops, weights = zip(*choices, strict=True)
        return self.random.choices(ops, weights=weights)[0]

    def run(self) -> Recorder:
        """Run the scenario at ``rate`` operations per second for ``duration`` seconds."""
        if not self.keys:
            self.setup()
        self.started = time.monotonic()
        interval = 1.0 / self.rate
        futures = []
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            tick = 0
            while True:
                due = self.started + tick * interval
                now = time.monotonic()
                if due - self.started >= self.duration:
                    break
                if due > now:
                    time.sleep(due - now)
                futures.append(
                    pool.submit(self._seeded, self.next_operation(), self._schedule.getrandbits(64))
                )
                tick += 1
            for future in futures:
                future.result()
        return self.recorder

    def close(self) -> None:
        """Release the HTTP client."""
        self.client.close()


def format_summary(recorder: Recorder, duration: float) -> str:
    """A human-readable table of a run."""
    lines = [f"{'operation':<18}{'requests':>9}{'p50 ms':>9}{'p99 ms':>9}  statuses"]
    total = 0
    for op, row in recorder.summary().items():
        total += row["requests"]
        statuses = ", ".join(f"{k}:{v}" for k, v in sorted(row["statuses"].items()))
        lines.append(
            f"{op:<18}{row['requests']:>9}{row['p50_ms']:>9}{row['p99_ms']:>9}  {statuses}"
        )
    errors = sum(1 for o in recorder.outcomes if o.indeterminate)
    lines.append(
        f"total {total} requests in {duration:.0f} s "
        f"({total / max(duration, 1e-9):.1f}/s); no answer or 5xx: {errors}"
    )
    return "\n".join(lines)

"""Two townships' worth of data for the authorization matrix: every resource a township owns.

Each township files an incident (twice: a possible duplicate) and a dispute, a follow-up, a
refused 「无事件」 (kept as possible concealment) and a zero report; a department warns
it (a warning for its area only), the warning is delivered and acknowledged; the duty office
sends a team, activates a township plan and assigns the dispute; two special campaigns name
both townships. Deadlines, timeline entries,
audit rows and scores follow from these. The ids are kept per township, so a test can look for
any of them in an answer meant for the other township.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from services.dispatch.enterprises.domain import with_check
from services.warning.service import use_cases
from tests.support.bodies import incident_body, zero_report_body
from tests.support.stack import TOWNSHIP_A, TOWNSHIP_B, Stack

SHANGHAI = ZoneInfo("Asia/Shanghai")
DISPUTE = {
    "nature": "relocation",
    "stability_impact": "medium",
    "escalation_risk": "high",
    "key_persons": False,
}


@dataclass(frozen=True)
class Township:
    """The key of one township and the ids of everything seeded for it."""

    key: str
    code: str
    incident: str
    duplicate: str
    dispute: str
    report: str
    warning: str
    dispatch: str
    plan: str
    assignment: str
    information: str = ""  # an information item (信息报送), adopted by the county office
    enterprise: str = ""  # an enterprise of the risk register (企业风险台账)

    def ids(self) -> dict[str, str]:
        """Every seeded id by the path parameter that names it."""
        return {
            "incident_id": self.incident,
            "report_id": self.report,
            "warning_id": self.warning,
            "dispatch_id": self.dispatch,
            "plan_id": self.plan,
            "assignment_id": self.assignment,
            "item_id": self.information,
            "enterprise_id": self.enterprise,
        }

    def markers(self) -> set[str]:
        """What may appear only in answers about this township: its code and its ids."""
        return {self.code, self.duplicate, self.dispute, *self.ids().values()}


def created(response: Any) -> dict[str, Any]:
    """The body of a 201, failing the seeding loudly otherwise."""
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def seed_township(stack: Stack, key: str, code: str, team_id: str) -> Township:
    """Everything a township owns, filed the way a county would file it."""
    now = stack.clock.now()
    incident = created(
        stack.call(
            "POST", "/v1/incidents", who=key, json=incident_body(now, code, title=f"{code}河堤漫溢")
        )
    )["id"]
    # The same flood reported again (by the village, say): a possible duplicate of the first.
    again = created(
        stack.call(
            "POST", "/v1/incidents", who=key, json=incident_body(now, code, title=f"{code}河堤漫溢")
        )
    )
    assert again["possible_duplicates"] == [incident], again["possible_duplicates"]
    dispute = created(
        stack.call(
            "POST",
            "/v1/incidents",
            who=key,
            json=incident_body(
                now, code, category="dispute", title=f"{code}征地纠纷", dispute=DISPUTE
            ),
        )
    )["id"]
    stack.settle()
    report = created(stack.call("POST", "/v1/reports", who=key, json=followup_body(incident)))["id"]
    warning = created(
        stack.call("POST", "/v1/warnings", who="department", json=warning_body(stack, code))
    )["id"]
    dispatch = created(
        stack.call(
            "POST",
            "/v1/dispatches",
            json={"incident_id": incident, "team_ids": [team_id], "note": f"{code}抢险"},
        )
    )["id"]
    plan = created(stack.call("POST", "/v1/plans", json=plan_body(code)))["id"]
    assignment = created(
        stack.call(
            "POST",
            "/v1/assignments",
            json={
                "incident_id": dispute,
                "responsible_leader": "李副镇长",
                "responsible_unit": "镇综治办",
                "stability_contact": {"name": "王稳控", "phone": "13800000001", "unit": "镇派出所"},
                "due_at": (now + timedelta(days=3)).isoformat(),
            },
        )
    )["id"]
    enterprise = created(stack.call("POST", "/v1/enterprises", json=enterprise_body(code)))["id"]
    return Township(
        key,
        code,
        incident,
        again["id"],
        dispute,
        report,
        warning,
        dispatch,
        plan,
        assignment,
        enterprise=enterprise,
    )


def enterprise_body(code: str) -> dict[str, Any]:
    """An enterprise of the township's on the risk register, with a credit code of its own."""
    return {
        "name": f"{code}化工有限公司",
        "credit_code": with_check(f"91{code[:6]}{code[-3:]}000001"),
        "township_code": code,
        "risk_level": "major",
        "hazard_types": ["危险化学品"],
        "lat": 31.5,
        "lon": 116.4,
        "responsible": {"name": "赵建国", "phone": "13800003001"},
        "safety_officer": {"name": "钱海燕", "phone": "13800003002"},
    }


def followup_body(incident_id: str) -> dict[str, Any]:
    """A complete follow-up report (续报) with unchanged figures."""
    return {
        "incident_id": incident_id,
        "kind": "followup",
        "casualties": {"deaths": 0, "injured": 0, "missing": 0, "trapped": 0},
        "affected": {
            "people_affected": 120,
            "people_evacuated": 40,
            "houses_damaged": 6,
            "houses_collapsed": 0,
            "direct_loss_cny": 150000,
        },
        "progress": "堤防已加固，水位回落。",
        "measures_taken": "组织抢险队员20人巡堤。",
        "needs": "暂无。",
        "reporter": {"name": "张伟", "phone": "13800001111"},
        "approver": {"name": "李娜", "phone": "13900002222"},
    }


def warning_body(stack: Stack, code: str) -> dict[str, Any]:
    """A yellow rainstorm warning for one township only."""
    return {
        "hazard": "rainstorm",
        "level": 3,
        "headline": f"{code}暴雨黄色预警",
        "description": "预计未来6小时降雨量将达50毫米以上。",
        "instruction": "注意防范，转移低洼地带人员。",
        "areas": [code],
        "expires": (stack.clock.now() + timedelta(hours=6)).isoformat(),
    }


def plan_body(code: str) -> dict[str, Any]:
    """A township-scope flood plan activated by hand at the township's request."""
    return {
        "level": 4,
        "hazard": "flood",
        "township_codes": [code],
        "scope": "township",
        "requested_by": f"{code}人民政府",
        "requesting_township": code,
        "reason": "河堤漫溢，请求启动防汛四级响应。",
    }


def available_teams(stack: Stack, count: int) -> list[str]:
    """Ids of ``count`` available teams of the county roster."""
    response = stack.call("GET", "/v1/teams", params={"status": "available", "limit": 100})
    assert response.status_code == 200, response.text
    teams = [t["id"] for t in response.json()["items"]]
    assert len(teams) >= count, teams
    return teams[:count]


def seed_a_third_township(stack: Stack) -> None:
    """A grade Ⅲ flood in a third township, reported by the duty office: a warning suggestion."""
    codes = [t["code"] for t in stack.call("GET", "/v1/townships").json()["items"]]
    third = next(c for c in codes if c not in (TOWNSHIP_A, TOWNSHIP_B))
    casualties = {"deaths": 3, "injured": 2, "missing": 0, "trapped": 0}
    body = incident_body(stack.clock.now(), third, title="山洪冲毁村道", casualties=casualties)
    assert created(stack.call("POST", "/v1/incidents", json=body))["grade"] == 3


def seed_shared_warning(stack: Stack, townships: dict[str, Township]) -> str:
    """A warning addressed to both townships, delivered to and acknowledged by each; its id."""
    codes = [t.code for t in townships.values()]
    body = {**warning_body(stack, codes[0]), "headline": "两镇暴雨黄色预警", "areas": codes}
    warning = str(created(stack.call("POST", "/v1/warnings", who="department", json=body))["id"])
    stack.settle()
    use_cases(stack.ctx("warning")).run_deliveries()
    for township in townships.values():
        note = {"note": f"{township.code}已签收"}
        ack = stack.call("POST", f"/v1/warnings/{warning}/ack", who=township.key, json=note)
        assert ack.status_code == 200, ack.text
    stack.settle()
    return warning


def seed_epidemic_report(stack: Stack, township: Township) -> None:
    """The township's own daily epidemic report (传染病零报告) for the seeding day."""
    body = {
        "unit_id": township.code,
        "date": "2026-07-06",
        "zero_for_rest": True,
        "reporter": {"name": "疫情报告人", "phone": "13900002000"},
    }
    response = stack.call("POST", "/v1/epidemic/reports", who=township.key, json=body)
    assert response.status_code == 200, response.text


def seed_campaigns(stack: Stack) -> list[str]:
    """Two special campaigns (专项行动) of both townships: their deadlines are each township's."""
    today = stack.clock.now().date()
    ids = []
    for name in ("矛盾纠纷大排查", "安全生产大检查"):
        body = {
            "name": name,
            "starts_on": today.isoformat(),
            "ends_on": (today + timedelta(days=9)).isoformat(),
            "stages": [{"name": "全面排查", "ends_on": (today + timedelta(days=4)).isoformat()}],
            "participants": [TOWNSHIP_A, TOWNSHIP_B],
        }
        ids.append(created(stack.call("POST", "/v1/campaigns", json=body))["id"])
    return ids


def seed_information_item(stack: Stack, township: Township) -> Township:
    """The township's own information item, adopted at city level by the county office."""
    body = {
        "unit_kind": "township",
        "unit_code": township.code,
        "kind": "info",
        "title": "河道水位上涨",
        "body": "受上游来水影响，河段水位较昨日上涨0.8米，已安排专人巡查。",
    }
    item = created(stack.call("POST", "/v1/information/items", who=township.key, json=body))
    adoption = {
        "target_kind": "item",
        "target_id": item["id"],
        "level": "city",
        "by": "市政府办公室",
        "date": stack.clock.now().date().isoformat(),
    }
    created(stack.call("POST", "/v1/information/adoptions", json=adoption))
    return replace(township, information=item["id"])


def seed_zero_reports(stack: Stack, townships: list[Township]) -> None:
    """Just after midnight, once the seeding day is over: each township's 「无事件」 for it is
    refused (its incidents contradict it, kept for the duty office as 疑似瞒报), and its zero
    report lists its real incidents of the day instead."""
    day = stack.clock.now().astimezone(SHANGHAI).date()
    stack.clock.set(datetime.combine(day + timedelta(days=1), time(0, 30), SHANGHAI))
    for township in townships:
        body = zero_report_body(township.code, day)
        concealed = stack.call("POST", "/v1/zero-reports", who=township.key, json=body)
        assert concealed.status_code == 409, concealed.text
        own = stack.call("GET", "/v1/incidents", who=township.key, params={"limit": 100})
        real = [i["id"] for i in own.json()["items"] if not i.get("exercise")]
        assert township.incident in real
        listed = {**body, "nothing_to_report": False, "incident_ids": real}
        created(stack.call("POST", "/v1/zero-reports", who=township.key, json=listed))


def seed_two_townships(stack: Stack) -> dict[str, Township]:
    """Seed townships A and B (and a third), deliver and acknowledge warnings; by key name."""
    first, second = available_teams(stack, 2)
    seeded = {
        "township_a": seed_township(stack, "township_a", TOWNSHIP_A, first),
        "township_b": seed_township(stack, "township_b", TOWNSHIP_B, second),
    }
    seed_a_third_township(stack)
    seed_campaigns(stack)
    for key, township in seeded.items():
        seed_epidemic_report(stack, township)
        seeded[key] = seed_information_item(stack, township)
    stack.settle()
    use_cases(stack.ctx("warning")).run_deliveries()
    for township in seeded.values():
        ack = stack.call("POST", f"/v1/warnings/{township.warning}/ack", who=township.key)
        assert ack.status_code == 200, ack.text
    seed_zero_reports(stack, list(seeded.values()))
    stack.settle()
    return seeded

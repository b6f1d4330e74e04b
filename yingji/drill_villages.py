"""The last mile in `yingji drill` (到村、到户、到信息员): an orange drill warning reaches every
village's information officer; the drill clicks some officers' links (GET the page, POST the
confirm), lets a township acknowledge for one of its villages, and leaves the others silent so
that they escalate to their townships (a drill's limit is half a minute). Every write is a drill
(演练): the warning carries ``exercise: true``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

ACK_PATH = "/v1/warnings/ack/"


def issue_village_warning(drill: Any) -> None:
    """The leader issues an orange drill warning over one or two townships (no approval wait)."""
    rnd = drill.random
    areas = rnd.sample(drill.townships, k=min(2, len(drill.townships)))
    now = drill.now()
    body = {
        "hazard": "rainstorm",
        "level": 2,
        "headline": "演练：暴雨橙色预警（到村到户）",
        "description": "演练：预计未来3小时有短时强降雨，请各村信息员立即转告群众。",
        "instruction": "信息员收到后立即入户通知，并点击短信中的链接确认收到。",
        "areas": areas,
        "effective": now.isoformat(),
        "expires": (now + timedelta(hours=3)).isoformat(),
        "exercise": True,
    }
    response = drill.call("village_warning", "POST", "/v1/warnings", "leader", body)
    if response is not None and response.status_code == 201:
        with drill.state_lock:
            drill.village_warnings.append({"id": response.json()["id"], "areas": areas})


def _village_deliveries(drill: Any, warning_id: str) -> list[dict[str, Any]]:
    """The drill warning's village deliveries, as the deliveries list shows them."""
    response = drill.call(
        "village_deliveries", "GET", f"/v1/warnings/{warning_id}/deliveries", "operator"
    )
    if response is None or response.status_code != 200:
        return []
    return [d for row in response.json()["townships"] for d in row.get("village_deliveries", [])]


def click_link(drill: Any, warning_id: str) -> None:
    """An officer opens the link (the page, which acknowledges nothing) and confirms."""
    links = [
        d["exercise_ack_url"]
        for d in _village_deliveries(drill, warning_id)
        if d.get("exercise_ack_url") and not d.get("escalation_of")
    ]
    if not links:
        return
    path = urlsplit(drill.random.choice(links)).path
    if not path.startswith(ACK_PATH):
        return
    drill.call("village_link_page", "GET", path, "public")
    drill.call("village_link_ack", "POST", path, "public", subject=warning_id)


def township_acknowledges_for_a_village(drill: Any, warning: dict[str, Any]) -> None:
    """A township acknowledges on behalf of one of its villages (代村签收)."""
    code = drill.random.choice(warning["areas"])
    villages = drill.villages.get(code) or []
    if not villages:
        return
    drill.call(
        "village_ack_by_township",
        "POST",
        f"/v1/warnings/{warning['id']}/ack",
        f"township:{code}",
        {"village_code": drill.random.choice(villages)},
        subject=warning["id"],
    )


def village_step(drill: Any) -> None:
    """One last-mile operation: issue a drill warning, click a link, acknowledge for a village,
    or read the reach (which shows the silent villages escalating as the drill goes on)."""
    with drill.state_lock:
        warnings = list(drill.village_warnings)
    if not warnings or drill.random.random() < 0.15:
        issue_village_warning(drill)
        return
    warning = drill.random.choice(warnings)
    action = drill.random.choice(["link", "link", "township", "reach"])
    if action == "link":
        click_link(drill, warning["id"])
    elif action == "township":
        township_acknowledges_for_a_village(drill, warning)
    else:
        drill.call("village_reach", "GET", f"/v1/warnings/{warning['id']}", "operator")

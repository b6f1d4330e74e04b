"""The authorization matrix, generated from the route table: every endpoint × every role, on a
stack that holds real data of two townships.

Every route must declare who may call it (`ctx.allow(...)` or `ctx.public()`); a new endpoint
without a rule fails here. A role outside the rule gets 403 (before any validation or effect),
a role inside it never gets 401/403 for a well-formed request of its own township, and no key
at all gets 401.

Every GET route is read by every role and both township keys, about each township's own
resources (tests/security/townships.py seeds incidents, reports, deadlines, timeline entries,
zero reports, warnings with their deliveries and receipts, dispatches, plans, assignments and
scores for townships A and B): a township key gets its own rows and never a code or an id of the
other township, in lists and by id, and the other township's ids answer the one refusal the route
states. A warning addressed to both townships shows each township key only its own deliveries
and receipts, and the county-wide views (audit trail, summaries, admin) refuse township keys.
Writes a township key may make are tried on the other township's resources. A new GET route, or
a new write open to township keys, fails here until it is classified below.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import pytest
from fastapi.routing import APIRoute

from services.warning.service import use_cases
from tests.console.support import live_server, messages_before, open_stream, reopen
from tests.security.townships import (
    Township,
    followup_body,
    seed_shared_warning,
    seed_two_townships,
)
from tests.support.bodies import incident_body, zero_report_body
from tests.support.stack import Stack, running_stack

# Infrastructure routes that are deliberately open and carry no role dependency.
OPEN_INFRASTRUCTURE = {"/healthz", "/readyz", "/metrics"}
ROLE_KEYS = {
    "admin": "admin",
    "leader": "leader",
    "operator": "operator",
    "department": "department",
    "township": "township_a",
}
CALLERS = {
    "admin": "admin",
    "leader": "leader",
    "operator": "operator",
    "department": "department",
    "township_a": "township",
    "township_b": "township",
}
FORBIDDEN_ROLE = (403, "forbidden_role")
NOT_FOUND = (404, "not_found")
FORBIDDEN_TOWNSHIP = (403, "forbidden_township")
# Another township's incident is answered as an unknown one: probing ids tells nothing.
UNKNOWN_INCIDENT = (404, "incident_unknown")
STREAM = "/v1/stream"


def allowed_roles(route: APIRoute) -> tuple[str, ...] | None:
    """The roles a route's dependencies declare, or None when it declares none."""
    found: list[str] = []

    def walk(dependant: Any) -> None:
        for dep in dependant.dependencies:
            roles = getattr(dep.call, "allowed_roles", None)
            if roles is not None:
                found.extend(str(r) for r in roles)
            walk(dep)

    walk(route.dependant)
    return tuple(found) if found else None


@dataclass
class Seeded:
    """The running stack and what was seeded in it."""

    stack: Stack
    townships: dict[str, Township]
    # A warning addressed to both townships, delivered to and acknowledged by each.
    shared_warning: str

    def other(self, key: str) -> Township:
        """The township that is not ``key``'s."""
        return next(t for k, t in self.townships.items() if k != key)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    with running_stack(Path(tmp_path_factory.mktemp("authz")), auth_failure_limit=10**6) as stack:
        townships = seed_two_townships(stack)
        yield Seeded(stack, townships, seed_shared_warning(stack, townships))


@pytest.fixture(scope="module")
def stack(seeded: Seeded) -> Stack:
    return seeded.stack


def api_routes(stack: Stack) -> list[APIRoute]:
    """Every API route of the embedded app, including those of included routers."""
    found: list[APIRoute] = []

    def walk(routes: list[Any]) -> None:
        for route in routes:
            if isinstance(route, APIRoute):
                found.append(route)
            elif hasattr(route, "original_router"):
                walk(route.original_router.routes)

    walk(stack.client.app.routes)  # type: ignore[attr-defined]
    return found


def concrete_path(path: str) -> str:
    """Fill path parameters with ids that do not exist."""
    return re.sub(r"\{[^}]+\}", "nonexistent-id", path)


def test_every_route_declares_who_may_call_it(stack: Stack) -> None:
    undeclared = [
        f"{sorted(r.methods)} {r.path}"
        for r in api_routes(stack)
        if r.path not in OPEN_INFRASTRUCTURE and allowed_roles(r) is None
    ]
    assert undeclared == [], f"routes without an authorization rule: {undeclared}"


def test_the_matrix(stack: Stack) -> None:
    """Every route × role: 403 outside the rule, never 401/403 inside it, 401 without a key."""
    problems = []
    checked = 0
    for route in api_routes(stack):
        roles = allowed_roles(route)
        if route.path in OPEN_INFRASTRUCTURE or roles is None:
            continue
        path = concrete_path(route.path)
        for method in sorted(route.methods - {"HEAD"}):
            body = {} if method in {"POST", "PUT", "PATCH"} else None
            anonymous = stack.client.request(method, path, json=body)
            if "public" not in roles and anonymous.status_code != 401:
                problems.append(f"{method} {route.path} without a key → {anonymous.status_code}")
            for role, who in ROLE_KEYS.items():
                response = stack.call(method, path, who=who, json=body)
                checked += 1
                permitted = "public" in roles or role in roles
                if (
                    permitted
                    and response.status_code in (401, 403)
                    and response.json()["error"]["code"] == "forbidden_role"
                ):
                    problems.append(f"{method} {route.path} as {role}: refused but allowed")
                if not permitted and response.status_code != 403:
                    problems.append(
                        f"{method} {route.path} as {role}: {response.status_code}, expected 403"
                    )
                if response.status_code >= 500:
                    problems.append(f"{method} {route.path} as {role}: {response.status_code}")
    assert checked > 0
    assert problems == [], "\n".join(problems)


# ------------------------------------------------------------------ reads with two townships

Params = Callable[[Township], dict[str, str]]
TODAY = "2026-07-06"  # the seeding day (tests/support/stack.py starts the clock on it)


def no_params(_: Township) -> dict[str, str]:
    return {}


@dataclass(frozen=True)
class Read:
    """How the matrix reads one GET route, and the township scoping it must show.

    ``own``: a township key gets its own township's rows only; ``county``: reference data every
    caller reads alike (the roster, the stores, the county's townships, who am I); ``public``:
    no key needed. ``about`` names the path or query parameter that carries a township's own
    resource id: asked about the other township's, a township key gets ``refused``.
    """

    scope: Literal["own", "county", "public"]
    about: str | None = None
    params: Params = no_params
    refused: tuple[int, str] | None = None
    # Rows of the county's team roster (ranked teams) name any township, but never another
    # township's orders or plans.
    roster: bool = False


def incident_query(t: Township) -> dict[str, str]:
    return {"incident_id": t.incident}


READS: dict[str, Read] = {
    "/v1/": Read("public"),
    "/v1/townships": Read("county"),
    "/v1/county/villages": Read("own"),
    "/v1/me": Read("county"),
    "/v1/admin/keys": Read("county"),
    "/v1/admin/dlq": Read("county"),
    "/v1/incidents": Read("own"),
    "/v1/incidents/grading-rules": Read("county"),
    "/v1/incidents/{incident_id}": Read("own", "incident_id", refused=NOT_FOUND),
    "/v1/incidents/{incident_id}/duplicates": Read("own", "incident_id", refused=NOT_FOUND),
    "/v1/warnings/ack/{token}": Read("public"),
    "/v1/warnings/feed": Read("public"),
    "/v1/warnings/feed/{warning_id}/cap": Read("public", "warning_id"),
    "/v1/warnings/suggestions": Read("county"),
    "/v1/warnings/suggestions/{suggestion_id}": Read("county"),
    "/v1/warnings": Read("own"),
    "/v1/warnings/{warning_id}": Read("own", "warning_id", refused=FORBIDDEN_TOWNSHIP),
    "/v1/warnings/{warning_id}/cap": Read("own", "warning_id", refused=FORBIDDEN_TOWNSHIP),
    "/v1/warnings/{warning_id}/deliveries": Read("own", "warning_id", refused=FORBIDDEN_TOWNSHIP),
    "/v1/teams": Read("county", roster=True),
    "/v1/teams/{team_id}": Read("county", roster=True),
    "/v1/warehouses": Read("county"),
    "/v1/stock": Read("county"),
    "/v1/stock/ledger": Read("county"),
    "/v1/dispatches/suggest": Read(
        "own", "incident_id", incident_query, refused=NOT_FOUND, roster=True
    ),
    "/v1/dispatches": Read("own"),
    "/v1/dispatches/{dispatch_id}": Read("own", "dispatch_id", refused=NOT_FOUND),
    "/v1/plans": Read("own"),
    "/v1/plans/{plan_id}": Read("own", "plan_id", refused=NOT_FOUND),
    "/v1/assignments": Read("own"),
    "/v1/assignments/{assignment_id}": Read("own", "assignment_id", refused=NOT_FOUND),
    "/v1/reports": Read("own", "incident_id", incident_query, refused=UNKNOWN_INCIDENT),
    "/v1/reports/{report_id}": Read("own", "report_id", refused=NOT_FOUND),
    "/v1/deadlines": Read("own"),
    "/v1/zero-reports": Read("own", params=lambda _: {"date": TODAY}),
    "/v1/zero-reports/contradictions": Read("own"),
    # The seeded campaign has both townships among its participants, so each reads it; what a
    # township sees of a campaign (its own deadlines and reports, none it is not part of) is
    # tested in tests/reporting/test_campaigns.py.
    "/v1/campaigns": Read("county"),
    "/v1/campaigns/{campaign_id}": Read("county"),
    "/v1/epidemic/diseases": Read("county"),
    "/v1/enterprise-reference": Read("county"),
    "/v1/enterprises": Read("own"),
    "/v1/enterprises/{enterprise_id}": Read("own", "enterprise_id", refused=NOT_FOUND),
    "/v1/epidemic/day": Read("own", params=lambda _: {"date": TODAY}),
    "/v1/epidemic/reports": Read("own", params=lambda _: {"date": TODAY}),
    "/v1/epidemic/missing": Read("own", params=lambda _: {"date": TODAY}),
    "/v1/information/units": Read("county"),
    "/v1/information/items": Read("own", params=lambda _: {"month": TODAY[:7]}),
    "/v1/information/items/{item_id}": Read("own", "item_id", refused=NOT_FOUND),
    "/v1/information/feedback": Read("own", params=lambda _: {"month": TODAY[:7]}),
    "/v1/information/quotas": Read("own"),
    "/v1/information/scores": Read("own", params=lambda _: {"month": TODAY[:7]}),
    "/v1/timeline/{incident_id}": Read("own", "incident_id", refused=NOT_FOUND),
    "/v1/audit": Read("county"),
    "/v1/summaries/daily": Read("county", params=lambda _: {"date": TODAY}),
    "/v1/summaries/situation": Read(
        "county",
        params=lambda _: {"from": f"{TODAY}T00:00:00+08:00", "to": f"{TODAY}T23:59:59+08:00"},
    ),
    "/v1/scores": Read("own", params=lambda _: {"month": TODAY[:7]}),
    "/v1/duty/now": Read("county"),
    "/v1/duty/roster": Read("county"),
    "/v1/duty/handovers": Read("county"),
    "/v1/duty/handovers/{handover_id}": Read("county"),
    "/v1/duty/handovers/{handover_id}/document": Read("county"),
    "/v1/duty/spot-checks": Read("county", params=lambda _: {"month": TODAY[:7]}),
    "/v1/duty/monthly": Read("county", params=lambda _: {"month": TODAY[:7]}),
    "/v1/duty/upward": Read("county"),
    "/v1/duty/incidents/{incident_id}/upward": Read("county"),
    "/console": Read("public"),
    "/console/static/{name}": Read("public"),
    "/console/context": Read("county"),
}


def get_routes(stack: Stack) -> list[APIRoute]:
    """Every GET route the matrix reads (the stream has a test of its own)."""
    return [
        r
        for r in api_routes(stack)
        if "GET" in r.methods and r.path not in OPEN_INFRASTRUCTURE and r.path != STREAM
    ]


def county_ids(seeded: Seeded) -> dict[str, str]:
    """Ids of shared county data for path parameters that name no township's resource."""
    stack = seeded.stack
    suggestions = stack.call("GET", "/v1/warnings/suggestions").json()["items"]
    assert suggestions, "the seed raised no warning suggestion to read by id"
    keys = stack.call("GET", "/v1/admin/keys", who="admin").json()["items"]
    handovers = stack.call("GET", "/v1/duty/handovers").json()["items"]
    if not handovers:  # the duty office's handover of the shift in force, read by id
        opened = stack.call("POST", "/v1/duty/handovers", json={"outgoing_officer": "李明"})
        handovers = [opened.json()]
    return {
        "handover_id": handovers[0]["id"],
        # The duty office's view of an incident's pushes is county-wide (no township reads it).
        "incident_id": next(iter(seeded.townships.values())).incident,
        "team_id": stack.call("GET", "/v1/teams").json()["items"][0]["id"],
        "suggestion_id": suggestions[0]["id"],
        "key_id": keys[0]["id"],
        "campaign_id": stack.call("GET", "/v1/campaigns").json()["items"][0]["id"],
        "name": "app.js",
        "token": village_link_token(seeded),
    }


def village_link_token(seeded: Seeded) -> str:
    """A village's link token, as one try of the shared warning's village delivery sends it."""
    service = use_cases(seeded.stack.ctx("warning"))
    service.run_deliveries()
    for township in seeded.townships.values():
        rows = service.repo.deliveries_for(seeded.shared_warning, [township.code])
        village = next((r for r in rows if r["target"]["kind"] == "village"), None)
        if village is not None:
            full = service.repo.delivery_by_id(village["_id"])
            assert full is not None
            return str(service.outgoing(full)["ack_url"]).rsplit("/", 1)[1]
    raise AssertionError("the shared warning reached no village")


def fill(path: str, read: Read, target: Township, county: Mapping[str, str]) -> str:
    """The path with the target township's id in ``about`` and shared ids elsewhere."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == read.about:
            return target.ids()[name]
        return county[name]

    return re.sub(r"\{([^}]+)\}", value, path)


def expected(role: str, caller: str, read: Read, target: Township, roles: tuple[str, ...]) -> Any:
    """The one answer a caller must get: 200, or the (status, code) of a refusal."""
    if read.scope == "public" or "public" in roles:
        return 200
    if role not in roles:
        return FORBIDDEN_ROLE
    if role == "township" and read.scope == "own" and read.about and caller != target.key:
        return read.refused
    return 200


def answer(response: Any) -> Any:
    """The status of a success, or the (status, code) of an error answer."""
    if response.status_code < 400:
        return response.status_code
    try:
        return response.status_code, response.json()["error"]["code"]
    except (ValueError, KeyError):
        return response.status_code, response.text[:80]


def without_shared(seeded: Seeded, response: Any) -> str:
    """The answer's text without the warning addressed to both townships, whose list row names
    both by right (its deliveries and receipts have a test of their own)."""
    if not response.headers.get("content-type", "").startswith("application/json"):
        return str(response.text)
    body = response.json()
    if isinstance(body, dict) and isinstance(body.get("items"), list):
        items = [i for i in body["items"] if i.get("id") != seeded.shared_warning]
        return json.dumps({**body, "items": items}, ensure_ascii=False)
    return str(response.text)


def read_problems(
    seeded: Seeded, route: APIRoute, caller: str, target: Township, county: Mapping[str, str]
) -> list[str]:
    """Everything wrong with one read: its answer, a row of the other township, no own row."""
    read = READS[route.path]
    roles = allowed_roles(route) or ()
    role = CALLERS[caller]
    path = fill(route.path, read, target, county)
    response = seeded.stack.call("GET", path, who=caller, params=read.params(target))
    where = f"GET {path} as {caller}"
    want = expected(role, caller, read, target, roles)
    got = answer(response)
    if got != want:
        return [f"{where}: {got}, expected {want}"]
    if got != 200 or not (read.scope == "own" or read.roster):
        return []
    problems = []
    text = without_shared(seeded, response)
    if role == "township":
        other = seeded.other(caller)
        markers = other.markers() - ({other.code} if read.roster else set())
        leaked = sorted(m for m in markers if m in text)
        if leaked:
            problems.append(f"{where}: shows {leaked} of township {other.code}")
    if read.roster:
        return problems
    if role == "township":
        own = seeded.townships[caller]
        if own.code not in text and not (read.about and target.ids()[read.about] in text):
            problems.append(f"{where}: shows nothing of the caller's own township")
    elif read.about is None:
        missing = [t.code for t in seeded.townships.values() if t.code not in text]
        if missing:
            problems.append(f"{where}: the seeded rows of {missing} are missing")
    return problems


def test_every_get_route_is_classified(stack: Stack) -> None:
    """A new GET route fails here until the matrix knows how to read it."""
    unclassified = [r.path for r in get_routes(stack) if r.path not in READS]
    assert unclassified == [], f"GET routes the matrix cannot read: {unclassified}"
    stale = sorted(set(READS) - {r.path for r in get_routes(stack)})
    assert stale == [], f"classified routes that no longer exist: {stale}"


def test_every_read_by_every_role_of_every_township(seeded: Seeded) -> None:
    """Route × caller × township whose data is asked for: the stated answer, no foreign row."""
    unclassified = [r.path for r in get_routes(seeded.stack) if r.path not in READS]
    assert unclassified == [], f"GET routes the matrix cannot read: {unclassified}"
    county = county_ids(seeded)
    problems: list[str] = []
    checked = 0
    for route in get_routes(seeded.stack):
        about = READS[route.path].about if route.path in READS else None
        # A route about no township's resource is read once per caller.
        targets = list(seeded.townships.values())[: 2 if about else 1]
        for caller in CALLERS:
            for target in targets:
                problems.extend(read_problems(seeded, route, caller, target, county))
                checked += 1
    assert checked >= len(CALLERS) * len(READS)
    assert problems == [], "\n".join(problems)


# County-wide views that name every township's rows: no township key may read them at all (the
# matrix above takes the allowed roles from the code, so it cannot notice one opened to them).
COUNTY_WIDE = {
    "/v1/audit": no_params,
    "/v1/summaries/daily": lambda _: {"date": TODAY},
    "/v1/summaries/situation": lambda _: {
        "from": f"{TODAY}T00:00:00+08:00",
        "to": f"{TODAY}T23:59:59+08:00",
    },
    "/v1/admin/keys": no_params,
    "/v1/admin/dlq": no_params,
    "/v1/duty/handovers": no_params,
    "/v1/duty/spot-checks": lambda _: {"month": TODAY[:7]},
    "/v1/duty/monthly": lambda _: {"month": TODAY[:7]},
    "/v1/duty/upward": no_params,
}


def test_county_wide_views_are_closed_to_township_keys(seeded: Seeded) -> None:
    """The audit trail, the summaries and the admin views answer a township key 403."""
    for caller, township in seeded.townships.items():
        for path, params in COUNTY_WIDE.items():
            response = seeded.stack.call("GET", path, who=caller, params=params(township))
            assert answer(response) == FORBIDDEN_ROLE, f"{path} as {caller}: {answer(response)}"
        operator = seeded.stack.call("GET", "/v1/audit", params={"township_code": township.code})
        assert operator.status_code == 200 and township.incident in operator.text


def test_township_keys_cannot_filter_for_another_township(seeded: Seeded) -> None:
    """Every list a township key reads that takes ``township_code``: another code is refused."""
    checked = []
    problems = []
    for route in get_routes(seeded.stack):
        read = READS[route.path]
        params = {p.name for p in route.dependant.query_params}
        roles = allowed_roles(route) or ()
        if read.scope != "own" or "township" not in roles or "township_code" not in params:
            continue
        for caller in ("township_a", "township_b"):
            other = seeded.other(caller)
            query = {**read.params(other), "township_code": other.code}
            response = seeded.stack.call("GET", route.path, who=caller, params=query)
            checked.append(route.path)
            if answer(response) != FORBIDDEN_TOWNSHIP:
                problems.append(
                    f"{route.path}?township_code={other.code} as {caller}: {answer(response)}"
                )
    assert {"/v1/incidents", "/v1/warnings", "/v1/deadlines"} <= set(checked)
    assert problems == [], "\n".join(problems)


def test_a_warning_to_both_townships_shows_each_only_its_own_deliveries_and_receipts(
    seeded: Seeded,
) -> None:
    """Deliveries and acknowledgements of a warning both townships received: a township key
    gets its own township's rows only, the duty office and the department get both."""
    path = f"/v1/warnings/{seeded.shared_warning}/deliveries"
    both = {t.code for t in seeded.townships.values()}
    for caller in ("operator", "department", "leader", *seeded.townships):
        response = seeded.stack.call("GET", path, who=caller)
        assert response.status_code == 200, f"{caller}: {response.text}"
        body = response.json()
        own = {seeded.townships[caller].code} if caller in seeded.townships else both
        rows = body["townships"]
        assert {row["township_code"] for row in rows} == own, caller
        for row in rows:
            assert row["acknowledged"] is True, (caller, row)
            assert {a["township_code"] for a in row["acknowledgements"]} == {row["township_code"]}
            assert row["deliveries"], (caller, row)
        assert body["summary"]["acknowledgements"]["acked"] == len(own), caller
        if caller in seeded.townships:
            other = seeded.other(caller).code
            assert other not in response.text, f"{caller} sees township {other}'s receipts"


# ------------------------------------------------------------------ writes across townships

Write = Callable[[Seeded, Township], tuple[str, dict[str, Any]]]

# Every write a township key may make, aimed at the other township, and the one refusal it gets.
TOWNSHIP_WRITES: dict[tuple[str, str], tuple[Write, tuple[int, str]]] = {
    ("POST", "/v1/incidents"): (
        lambda s, t: ("/v1/incidents", incident_body(s.stack.clock.now(), t.code)),
        FORBIDDEN_TOWNSHIP,
    ),
    ("POST", "/v1/reports"): (
        lambda s, t: ("/v1/reports", followup_body(t.incident)),
        UNKNOWN_INCIDENT,
    ),
    ("POST", "/v1/zero-reports"): (
        lambda s, t: ("/v1/zero-reports", zero_report_body(t.code, s.stack.clock.now().date())),
        FORBIDDEN_TOWNSHIP,
    ),
    ("POST", "/v1/epidemic/reports"): (
        lambda s, t: (
            "/v1/epidemic/reports",
            {
                "unit_id": t.code,
                "date": TODAY,
                "zero_for_rest": True,
                "reporter": {"name": "疫情报告人", "phone": "13900002000"},
            },
        ),
        FORBIDDEN_TOWNSHIP,
    ),
    ("POST", "/v1/campaigns/{campaign_id}/reports"): (
        lambda s, t: (
            f"/v1/campaigns/{campaign_of(s)}/reports",
            {"participant": t.code, "kind": "campaign_report", "content": "排查纠纷3起"},
        ),
        FORBIDDEN_TOWNSHIP,
    ),
    ("POST", "/v1/information/items"): (
        lambda s, t: (
            "/v1/information/items",
            {
                "unit_kind": "township",
                "unit_code": t.code,
                "kind": "info",
                "title": "河道水位上涨",
                "body": "受上游来水影响，河段水位较昨日上涨0.8米。",
            },
        ),
        FORBIDDEN_TOWNSHIP,
    ),
    ("POST", "/v1/warnings/{warning_id}/ack"): (
        lambda s, t: (f"/v1/warnings/{t.warning}/ack", {"note": "已收到"}),
        FORBIDDEN_TOWNSHIP,
    ),
    ("POST", "/v1/assignments/{assignment_id}/attempts"): (
        lambda s, t: (
            f"/v1/assignments/{t.assignment}/attempts",
            {"level": "group", "outcome": "unresolved", "note": "调解未果"},
        ),
        NOT_FOUND,
    ),
    ("POST", "/v1/assignments/{assignment_id}/supervisions"): (
        lambda s, t: (
            f"/v1/assignments/{t.assignment}/supervisions",
            {"form": "notice", "on": TODAY, "by": "镇综治办"},
        ),
        NOT_FOUND,
    ),
    ("POST", "/v1/joint-meetings"): (
        lambda s, t: (
            "/v1/joint-meetings",
            {
                "held_on": TODAY,
                "convener": "镇综治办",
                "attendees": ["镇司法所"],
                "decisions": ["继续调解"],
                "assignment_ids": [t.assignment],
            },
        ),
        NOT_FOUND,
    ),
    ("POST", "/v1/assignments/{assignment_id}/escalate"): (
        lambda s, t: (f"/v1/assignments/{t.assignment}/escalate", {"reason": "三次调解未果"}),
        NOT_FOUND,
    ),
}


def campaign_of(seeded: Seeded) -> str:
    """The id of a seeded campaign both townships take part in."""
    return str(seeded.stack.call("GET", "/v1/campaigns").json()["items"][0]["id"])


def township_writes(stack: Stack) -> list[tuple[str, str]]:
    """Every (method, path) outside GET that township keys may call."""
    return sorted(
        (method, route.path)
        for route in api_routes(stack)
        if "township" in (allowed_roles(route) or ())
        for method in route.methods - {"GET", "HEAD"}
    )


def owner_views(seeded: Seeded, township: Township) -> dict[str, str]:
    """Everything a township reads about itself, as text, to compare before and after."""
    county = county_ids(seeded)
    views = {}
    for route in get_routes(seeded.stack):
        read = READS[route.path]
        if read.scope != "own" or "township" not in (allowed_roles(route) or ()):
            continue
        path = fill(route.path, read, township, county)
        response = seeded.stack.call("GET", path, who=township.key, params=read.params(township))
        views[path] = f"{response.status_code} {response.text}"
    return views


def test_township_writes_on_another_townships_resources_are_refused(seeded: Seeded) -> None:
    """Each write a township key may make, on the other township: refused, nothing changed."""
    assert township_writes(seeded.stack) == sorted(TOWNSHIP_WRITES), "unclassified writes"
    before = {key: owner_views(seeded, t) for key, t in seeded.townships.items()}
    problems = []
    for (method, _), (build, refused) in TOWNSHIP_WRITES.items():
        for caller in ("township_a", "township_b"):
            path, body = build(seeded, seeded.other(caller))
            response = seeded.stack.call(method, path, who=caller, json=body)
            if answer(response) != refused:
                problems.append(f"{method} {path} as {caller}: {answer(response)}, not {refused}")
    seeded.stack.settle()
    assert problems == [], "\n".join(problems)
    after = {key: owner_views(seeded, t) for key, t in seeded.townships.items()}
    assert after == before


# ------------------------------------------------------------------ the live event stream


def report_of(message: dict[str, Any]) -> Any:
    """The report id a ``followup_filed`` message carries (None for any other message)."""
    if message.get("event") != "followup_filed":
        return None
    return message.get("data", {}).get("payload", {}).get("report_id")


def is_report(report_id: str, message: dict[str, Any]) -> bool:
    """Whether ``message`` is the ``followup_filed`` of ``report_id``."""
    return bool(report_of(message) == report_id)


def file_followups(seeded: Seeded) -> dict[str, str]:
    """A follow-up of each township's incident, filed by the township; report ids by key."""
    filed = {}
    for key, township in seeded.townships.items():
        response = seeded.stack.call(
            "POST", "/v1/reports", who=key, json=followup_body(township.incident)
        )
        assert response.status_code == 201, response.text
        filed[key] = response.json()["id"]
    seeded.stack.settle()
    return filed


def test_township_streams_carry_only_their_own_townships_events(seeded: Seeded) -> None:
    """`GET /v1/stream` as each township key and the duty office, with events of both townships.

    Markers make it deterministic: each township's marker is filed after every other event was
    stored and a second later, so by the time a stream sends its marker it has sent everything
    before it that it ever will.
    """
    stack = seeded.stack
    stack.settle()
    with live_server(stack.client.app) as server, ExitStack() as streams:
        readers = {
            who: streams.enter_context(open_stream(server, stack.keys[who]))
            for who in ("operator", *seeded.townships)
        }
        events = file_followups(seeded)
        stack.clock.advance(1)
        markers = file_followups(seeded)
        for key in seeded.townships:
            sent = json.dumps(messages_before(readers[key], partial(is_report, markers[key])))
            other = seeded.other(key)
            foreign = other.markers() | {events[other.key], markers[other.key]}
            assert sorted(m for m in foreign if m in sent) == [], f"{key} got {other.code}'s"
            assert events[key] in sent, f"{key} did not get its own follow-up"
        seen: set[Any] = set()

        def both_markers(message: dict[str, Any]) -> bool:
            seen.add(report_of(message))
            return set(markers.values()) <= seen

        sent = json.dumps(messages_before(readers["operator"], both_markers))
        assert all(report_id in sent for report_id in events.values())
    reopen(stack)

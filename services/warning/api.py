"""HTTP routes of the warning service: issue, approve, adjust, lift, CAP, feed, deliveries, acks."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from fastapi import APIRouter, Body, Header, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from libs.common.auth import Principal, Role
from libs.common.clock import UtcTime
from libs.common.errors import ApiError, not_found
from libs.common.idempotency import fingerprint, idempotency_scope, validate_key
from libs.common.jsontypes import JsonBool, JsonInt
from libs.common.openapi import Limit
from libs.common.service import ServiceContext
from libs.common.text import Text
from services.warning import domain
from services.warning.cap import (
    ATOM_MEDIA_TYPE,
    CAP_MEDIA_TYPE,
    FEED_PATH,
    office_name,
    render_atom,
    render_cap,
    sender_name,
    sent_of,
)
from services.warning.lastmile import api as lastmile_api
from services.warning.lastmile.domain import TARGET_VILLAGE, enterprises_in_order
from services.warning.repository import WarningFilter
from services.warning.usecases import WarningUseCases

TownshipCode = Field(pattern=r"^\d{9}$")
ALL = tuple(Role)
ISSUERS = (Role.OPERATOR, Role.LEADER, Role.DEPARTMENT)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WarningIn(_Body):
    """A new warning (预警发布)."""

    hazard: Text = Field(
        min_length=1, max_length=40, description="预警类别 hazard, e.g. rainstorm 暴雨, flood 洪水"
    )
    level: JsonInt = Field(
        ge=1, le=4, description="预警级别 level 1–4; 1 = 一级（红色）最高, 4 = 四级（蓝色）"
    )
    headline: Text = Field(min_length=1, max_length=140, description="标题 headline")
    description: Text = Field(min_length=1, max_length=1500, description="预警内容 description")
    instruction: Text = Field(
        min_length=1, max_length=1000, description="防御指南 instruction: what people should do"
    )
    areas: list[Text] = Field(
        min_length=1, max_length=200, description="预警区域 target townships (乡镇代码, 9 digits)"
    )
    effective: UtcTime | None = Field(
        default=None, description="生效时间 effective from (with offset); default now"
    )
    expires: UtcTime = Field(description="失效时间 expires at (with offset)")
    incident_ids: list[Text] = Field(
        default_factory=list, max_length=20, description="关联事件 linked incident ids"
    )
    exercise: JsonBool = Field(default=False, description="演练 drill: CAP status Exercise")


class AdjustIn(_Body):
    """A new version of an active warning (预警调整)."""

    level: JsonInt = Field(ge=1, le=4, description="调整后级别 new level 1–4 (1 = 红色)")
    reason: Text = Field(min_length=1, max_length=500, description="调整原因 reason")
    headline: Text | None = Field(
        default=None, min_length=1, max_length=140, description="标题 headline"
    )
    description: Text | None = Field(
        default=None, min_length=1, max_length=1500, description="预警内容 description"
    )
    instruction: Text | None = Field(
        default=None, min_length=1, max_length=1000, description="防御指南 instruction"
    )
    expires: UtcTime | None = Field(default=None, description="失效时间 new expiry time")


class LiftIn(_Body):
    """Lifting a warning (预警解除)."""

    reason: Text = Field(min_length=1, max_length=500, description="解除原因 reason")
    override_reason: Text | None = Field(
        default=None,
        min_length=1,
        max_length=500,
        description="强制解除理由 why to lift although linked incidents are still open",
    )


class ApproveIn(_Body):
    """A leader's approval (领导审批)."""

    # Its own title: another service has a model of the same name in one OpenAPI document.
    model_config = ConfigDict(title="WarningApproveIn")

    note: Text | None = Field(default=None, max_length=500, description="审批意见 note")
    version: JsonInt | None = Field(
        default=None,
        ge=1,
        description="待审批版本 the pending version seen (guards against a race)",
    )


class RejectIn(_Body):
    """A leader's rejection (审批不通过)."""

    reason: Text = Field(min_length=1, max_length=500, description="驳回理由 reason")
    version: JsonInt | None = Field(
        default=None, ge=1, description="待审批版本 the pending version seen"
    )


class AckIn(_Body):
    """A township's receipt (签收)."""

    version: JsonInt | None = Field(
        default=None, ge=1, description="签收版本 version received; default current"
    )
    note: Text | None = Field(default=None, max_length=500, description="签收备注 note")
    village_code: str | None = Field(
        default=None,
        pattern=r"^\d{12}$",
        description="代村签收 a village of the caller's township to acknowledge for (12 digits)",
    )


class AcceptIn(_Body):
    """Turning a suggestion into a warning (采纳预警建议); every field overrides the draft."""

    hazard: Text | None = Field(
        default=None, min_length=1, max_length=40, description="预警类别 hazard"
    )
    level: JsonInt | None = Field(default=None, ge=1, le=4, description="预警级别 level 1–4")
    headline: Text | None = Field(default=None, min_length=1, max_length=140, description="标题")
    description: Text | None = Field(
        default=None, min_length=1, max_length=1500, description="预警内容"
    )
    instruction: Text | None = Field(
        default=None, min_length=1, max_length=1000, description="防御指南"
    )
    areas: list[Text] | None = Field(
        default=None, min_length=1, max_length=200, description="预警区域 township codes"
    )
    effective: UtcTime | None = Field(default=None, description="生效时间 effective from")
    expires: UtcTime | None = Field(default=None, description="失效时间 expires at")
    exercise: JsonBool | None = Field(default=None, description="演练 drill")


class DismissIn(_Body):
    """Dismissing a suggestion (不采纳)."""

    reason: Text = Field(min_length=1, max_length=500, description="不采纳理由 reason")


class Views:
    """Turns documents into API bodies."""

    def __init__(self, service: WarningUseCases) -> None:
        self.service = service
        self.rules = service.rules
        self.county = service.county

    def area_names(self, codes: list[str]) -> list[dict[str, str]]:
        """Codes with names."""
        return [
            {"code": c, "name": (t.name if (t := self.county.township(c)) else c)} for c in codes
        ]

    def version(self, version: Mapping[str, Any]) -> dict[str, Any]:
        """One version as kept in the history."""
        keys = (
            "number",
            "msg_type",
            "identifier",
            "state",
            "hazard",
            "level",
            "color",
            "headline",
            "description",
            "instruction",
            "areas",
            "effective",
            "expires",
            "exercise",
            "incident_ids",
            "reason",
            "requested_by",
            "requested_at",
            "approved_by",
            "approved_at",
            "approval_note",
            "rejected_by",
            "rejected_at",
            "rejection_reason",
            "issued_at",
            "old_level",
            "override_reason",
            "open_incidents",
        )
        body = {k: version.get(k) for k in keys if k in version}
        body["level_label"] = self.rules.level(int(version["level"])).label
        return body

    def warnings(self, docs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """A page of warnings, without their version histories."""
        named = self.service.enterprises_named(docs)
        reached = self.service.reach_of_page(docs)
        return [
            self.warning(doc, False, reach=reached[doc["_id"]], enterprises=named[doc["_id"]])
            for doc in docs
        ]

    def warning(
        self,
        doc: Mapping[str, Any],
        detail: bool = True,
        reach: dict[str, Any] | None = None,
        enterprises: Sequence[Mapping[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """A warning: current fields, and its full version history when ``detail`` (``reach``
        and ``enterprises``: when already read for a whole page)."""
        level = int(doc["level"])
        body: dict[str, Any] = {
            "id": doc["_id"],
            "hazard": doc["hazard"],
            "hazard_name": self.rules.hazards[doc["hazard"]].name,
            "level": level,
            "color": doc["color"],
            "level_label": self.rules.level(level).label,
            "status": doc["status"],
            "version": doc["version"],
            "pending_version": doc.get("pending_version"),
            "headline": doc["headline"],
            "description": doc["description"],
            "instruction": doc["instruction"],
            "areas": doc["areas"],
            "area_names": self.area_names(doc["areas"]),
            "effective": doc["effective"],
            "expires": doc["expires"],
            "incident_ids": doc.get("incident_ids") or [],
            "exercise": doc["exercise"],
            "suggestion_id": doc.get("suggestion_id"),
            "created_by": doc["created_by"],
            "created_at": doc["created_at"],
            "updated_at": doc["updated_at"],
            "issued_at": doc.get("issued_at"),
            "lifted_at": doc.get("lifted_at"),
            "expired_at": doc.get("expired_at"),
            "lift_reason": doc.get("lift_reason"),
            "override_reason": doc.get("override_reason"),
            "rejection_reason": doc.get("rejection_reason"),
            "cap_url": f"/v1/warnings/{doc['_id']}/cap",
        }
        if reach is None:
            reach = self.service.reach_of(doc, with_villages=detail)
        if enterprises is None:
            enterprises = self.service.area_enterprises(doc, list(doc["areas"]))
        body["reach"] = reach
        body["enterprises"] = [
            {**e, "township_name": self.area_names([e["township_code"]])[0]["name"]}
            for e in enterprises_in_order(enterprises)
        ]
        if detail:
            body["versions"] = [self.version(v) for v in doc["versions"]]
        return body

    def suggestion(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """A suggestion."""
        keys = (
            "incident_id",
            "incident_title",
            "category",
            "grade",
            "hazard",
            "level",
            "color",
            "township_code",
            "areas",
            "exercise",
            "headline",
            "description",
            "instruction",
            "status",
            "created_at",
            "warning_id",
            "superseded_by",
            "accepted_by",
            "accepted_at",
            "dismissed_by",
            "dismissed_at",
            "dismiss_reason",
        )
        body = {"id": doc["_id"], **{k: doc.get(k) for k in keys}}
        body["level_label"] = self.rules.level(int(doc["level"])).label
        body["area_names"] = self.area_names(list(doc["areas"]))
        return body


def _visible_to(principal: Principal, doc: Mapping[str, Any]) -> None:
    """Township keys read only issued warnings addressed to them."""
    if principal.role != Role.TOWNSHIP:
        return
    if not domain.township_visible(doc["status"]):
        raise not_found("warning", str(doc["_id"]))
    if principal.township_code not in doc["areas"]:
        raise ApiError(
            403,
            "forbidden_township",
            f"预警 {doc['_id']} 未发往乡镇 {principal.township_code}",
            fields=[{"path": "township_code", "reason": "不在预警发布范围内"}],
        )


REPLAYED = {
    "description": "The warning this Idempotency-Key already created (a retry)",
    "content": {"application/json": {"schema": {"type": "object"}}},
}


def build_router(ctx: ServiceContext, service: WarningUseCases) -> APIRouter:
    """The warning router."""
    router = APIRouter(tags=["warning"])
    views = Views(service)
    lastmile_api.add_routes(router, ctx, service)
    # Static paths first: /v1/warnings/{warning_id} would otherwise swallow them.
    _feed_routes(router, ctx, service, views)
    _suggestion_routes(router, ctx, service, views)
    _issue_routes(router, ctx, service, views)
    _cap_routes(router, ctx, service)
    _approval_routes(router, ctx, service, views)
    _change_routes(router, ctx, service, views)
    _delivery_routes(router, ctx, service, views)
    return router


def _feed_item(service: WarningUseCases, views: Views, doc: Mapping[str, Any]) -> dict[str, Any]:
    """One public warning as listed in the feed."""
    current = service.find_version(doc, int(doc["version"])) or {}
    return {
        "id": doc["_id"],
        "identifier": current.get("identifier"),
        "version": doc["version"],
        "msg_type": current.get("msg_type"),
        "hazard": doc["hazard"],
        "event": f"{service.rules.hazards[doc['hazard']].name}预警",
        "level": doc["level"],
        "color": doc["color"],
        "level_label": service.rules.level(int(doc["level"])).label,
        "headline": doc["headline"],
        "description": doc["description"],
        "instruction": doc["instruction"],
        "areas": views.area_names(doc["areas"]),
        "effective": doc["effective"],
        "expires": doc["expires"],
        "sent": sent_of(current) if current else doc["issued_at"],
        "cap_path": f"{FEED_PATH}/{doc['_id']}/cap",
    }


def _feed_routes(
    router: APIRouter, ctx: ServiceContext, service: WarningUseCases, views: Views
) -> None:
    """The public feed and its CAP documents, readable without a key."""

    @router.get(
        "/v1/warnings/feed",
        summary="Public feed of active warnings (公开预警)",
        responses={200: {"content": {ATOM_MEDIA_TYPE: {"schema": {"type": "string"}}}}},
    )
    def feed(
        _: None = ctx.public(),
        format: Literal["json", "atom"] = Query(
            default="json", description="json, or atom (an Atom index of CAP documents)"
        ),
    ) -> Any:
        docs = service.public_warnings()
        items = [_feed_item(service, views, doc) for doc in docs]
        if format == "atom":
            authors = {doc["_id"]: sender_name(service.rules, service.county, doc) for doc in docs}
            xml = render_atom(
                f"{service.county.name}预警信息",
                f"urn:yingji:{service.county.code}:warnings",
                service.now(),
                [{**item, "author": authors[item["id"]]} for item in items],
                service.county.timezone,
                ctx.settings.public_base_url,
                office_name(service.rules, service.county),
            )
            return Response(xml, media_type=ATOM_MEDIA_TYPE)
        return {"items": items, "updated": service.now(), "next_cursor": None}

    @router.get(
        "/v1/warnings/feed/{warning_id}/cap",
        summary="Public CAP 1.2 document of a public warning's latest version",
        response_class=Response,
        responses={200: {"content": {CAP_MEDIA_TYPE: {"schema": {"type": "string"}}}}},
    )
    def feed_cap(warning_id: str, _: None = ctx.public()) -> Response:
        doc = service.warning(warning_id)
        if doc["exercise"] or not domain.township_visible(doc["status"]):
            raise not_found("warning", warning_id)
        version = service.find_version(doc, int(doc["version"]))
        assert version is not None
        return Response(
            render_cap(service.rules, service.county, doc, version), media_type=CAP_MEDIA_TYPE
        )


def _suggestion_routes(
    router: APIRouter, ctx: ServiceContext, service: WarningUseCases, views: Views
) -> None:
    """Warning suggestions drawn from incidents: list, read, accept, dismiss."""

    @router.get(
        "/v1/warnings/suggestions", summary="Warning suggestions drawn from incidents (预警建议)"
    )
    def list_suggestions(
        principal: Principal = ctx.allow(*ISSUERS, Role.ADMIN),
        status: Literal["pending", "accepted", "dismissed", "superseded"] | None = Query(
            default=None, description="状态 filter"
        ),
        incident_id: str | None = Query(default=None, description="事件 filter"),
        limit: Limit = 50,
        cursor: str | None = Query(default=None, description="next_cursor of the previous page"),
    ) -> dict[str, Any]:
        rows, next_cursor = service.suggestions_page(status, incident_id, limit, cursor)
        return {"items": [views.suggestion(r) for r in rows], "next_cursor": next_cursor}

    @router.get("/v1/warnings/suggestions/{suggestion_id}", summary="One suggestion")
    def get_suggestion(
        suggestion_id: str, principal: Principal = ctx.allow(*ISSUERS, Role.ADMIN)
    ) -> dict[str, Any]:
        return views.suggestion(service.suggestion(suggestion_id))

    @router.post(
        "/v1/warnings/suggestions/{suggestion_id}/accept",
        status_code=201,
        summary="Turn a suggestion into a warning (issue rules apply)",
        responses={200: REPLAYED},
    )
    def accept_suggestion(
        suggestion_id: str,
        response: Response,
        body: AcceptIn = Body(default_factory=AcceptIn),
        principal: Principal = ctx.allow(*ISSUERS),
        idempotency_key: str | None = Header(default=None),
    ) -> dict[str, Any]:
        key = validate_key(idempotency_key)
        scope = idempotency_scope(principal.key_id, key, f"{suggestion_id}:{uuid.uuid4().hex}")
        digest = fingerprint({"suggestion": suggestion_id, **body.model_dump(mode="json")})
        if key and (replay := service.replay_of_create(scope, digest)):
            response.status_code = 200
            return views.warning(replay)
        doc, created = service.accept_suggestion(
            principal, suggestion_id, body.model_dump(), scope, digest
        )
        if not created:
            response.status_code = 200
        return views.warning(doc)

    @router.post("/v1/warnings/suggestions/{suggestion_id}/dismiss", summary="Dismiss a suggestion")
    def dismiss_suggestion(
        suggestion_id: str, body: DismissIn, principal: Principal = ctx.allow(*ISSUERS)
    ) -> dict[str, Any]:
        return views.suggestion(service.dismiss_suggestion(principal, suggestion_id, body.reason))


def _issue_routes(
    router: APIRouter, ctx: ServiceContext, service: WarningUseCases, views: Views
) -> None:
    """Issuing a warning, listing warnings and reading one with its history."""

    @router.post(
        "/v1/warnings",
        status_code=201,
        summary="Issue a warning (预警发布)",
        responses={200: REPLAYED},
    )
    def create_warning(
        body: WarningIn,
        response: Response,
        principal: Principal = ctx.allow(*ISSUERS),
        idempotency_key: str | None = Header(default=None),
    ) -> dict[str, Any]:
        key = validate_key(idempotency_key)
        scope = idempotency_scope(principal.key_id, key, uuid.uuid4().hex)
        digest = fingerprint(body.model_dump(mode="json"))
        if key and (replay := service.replay_of_create(scope, digest)):
            response.status_code = 200
            return views.warning(replay)
        doc, created = service.create(principal, body.model_dump(), scope, digest)
        if not created:
            response.status_code = 200
        return views.warning(doc)

    @router.get("/v1/warnings", summary="List warnings")
    def list_warnings(
        principal: Principal = ctx.allow(*ALL),
        status: Literal["pending_approval", "active", "rejected", "lifted", "expired"] | None = (
            Query(default=None, description="状态 status filter")
        ),
        township_code: str | None = Query(
            default=None, pattern=r"^\d{9}$", description="乡镇代码 warnings addressed to it"
        ),
        level: int | None = Query(default=None, ge=1, le=4, description="预警级别 1–4"),
        hazard: str | None = Query(default=None, description="预警类别 hazard"),
        exercise: bool | None = Query(default=None, description="演练 drills only / none"),
        limit: Limit = 50,
        cursor: str | None = Query(default=None, description="next_cursor of the previous page"),
    ) -> dict[str, Any]:
        filters = _warning_filter(principal, status, township_code, level, hazard, exercise)
        if filters is None:
            return {"items": [], "next_cursor": None}
        rows, next_cursor = service.warnings_page(filters, limit, cursor)
        items = [_as_seen_by(principal, item) for item in views.warnings(rows)]
        return {"items": items, "next_cursor": next_cursor}

    @router.get("/v1/warnings/{warning_id}", summary="One warning with its full version history")
    def get_warning(warning_id: str, principal: Principal = ctx.allow(*ALL)) -> dict[str, Any]:
        doc = service.warning(warning_id)
        _visible_to(principal, doc)
        return _as_seen_by(principal, views.warning(doc))


def _warning_filter(
    principal: Principal,
    status: str | None,
    township_code: str | None,
    level: int | None,
    hazard: str | None,
    exercise: bool | None,
) -> WarningFilter | None:
    """What a caller's warning list is filtered by: a township key sees only the warnings issued
    to its own township; None when the asked status is one it never sees."""
    statuses: tuple[str, ...] | None = (status,) if status else None
    if principal.role == Role.TOWNSHIP:
        if township_code and township_code != principal.township_code:
            principal.ensure_township(township_code, "query.township_code")
        township_code = principal.township_code
        if status and not domain.township_visible(status):
            return None
        statuses = statuses or domain.ISSUED_STATUSES
    return WarningFilter(
        statuses=statuses,
        area=township_code or None,
        level=level,
        hazard=hazard or None,
        exercise=exercise,
    )


def _as_seen_by(principal: Principal, body: dict[str, Any]) -> dict[str, Any]:
    """A warning as ``principal`` reads it: a township sees the issued versions, whether it signed
    itself (not which other townships did), and its own villages and enterprises only (as the
    enterprise register shows a township key only its own)."""
    if principal.role != Role.TOWNSHIP:
        return body
    own = principal.township_code
    if "versions" in body:
        body["versions"] = [v for v in body["versions"] if v["state"] == domain.VERSION_ISSUED]
    reach = body["reach"]
    signed = reach["townships"]["acknowledged_codes"]
    reach["townships"]["acknowledged_codes"] = [code for code in signed if code == own]
    if "village_states" in reach:
        reach["village_states"] = [v for v in reach["village_states"] if v["township_code"] == own]
    body["enterprises"] = [e for e in body["enterprises"] if e["township_code"] == own]
    return body


def _cap_routes(router: APIRouter, ctx: ServiceContext, service: WarningUseCases) -> None:
    """The CAP 1.2 document of any version a caller may read."""

    @router.get(
        "/v1/warnings/{warning_id}/cap",
        summary="CAP 1.2 document of a version (default: the latest)",
        response_class=Response,
        responses={200: {"content": {CAP_MEDIA_TYPE: {"schema": {"type": "string"}}}}},
    )
    def get_cap(
        warning_id: str,
        principal: Principal = ctx.allow(*ALL),
        version: int | None = Query(default=None, ge=1, description="版本 version number"),
    ) -> Response:
        doc = service.warning(warning_id)
        _visible_to(principal, doc)
        number = version or int(doc["version"])
        chosen = service.find_version(doc, number)
        if chosen is None:
            raise ApiError(
                404,
                "not_found",
                f"预警 {warning_id} 没有第 {number} 版",
                fields=[{"path": "query.version", "reason": "没有该版本"}],
            )
        exportable = (domain.VERSION_ISSUED, domain.VERSION_PENDING)
        if chosen["state"] not in exportable or (
            principal.role == Role.TOWNSHIP and chosen["state"] != domain.VERSION_ISSUED
        ):
            raise ApiError(
                409,
                "version_not_exportable",
                f"第 {number} 版{domain.status_text(chosen['state'])}，从未发出",
                fields=[{"path": "query.version", "reason": domain.status_text(chosen["state"])}],
            )
        xml = render_cap(service.rules, service.county, doc, chosen)
        return Response(xml, media_type=CAP_MEDIA_TYPE)


def _once(
    views: Views,
    warning_id: str,
    action: str,
    body: BaseModel,
    principal: Principal,
    idempotency_key: str | None,
    response: Response,
    run: Callable[[dict[str, str] | None], dict[str, Any]],
) -> dict[str, Any]:
    """Run a command on a warning once per Idempotency-Key: a retry with the key and body
    gets the warning back (200, Idempotent-Replayed), another body 409, as the creates."""
    service = views.service
    key = validate_key(idempotency_key)
    if key is None:
        return views.warning(run(None))
    mark = {
        "scope": idempotency_scope(principal.key_id, key, warning_id),
        "hash": fingerprint({"action": action, **body.model_dump(mode="json")}),
    }
    if (replay := service.replay(warning_id, action, mark)) is not None:
        response.headers["Idempotent-Replayed"] = "true"
        return views.warning(replay)
    try:
        return views.warning(run(mark))
    except ApiError as exc:
        # Two tries with one key at once: the loser sees the winner's state change (409).
        if exc.status == 409 and (replay := service.replay(warning_id, action, mark)):
            response.headers["Idempotent-Replayed"] = "true"
            return views.warning(replay)
        raise


def _approval_routes(
    router: APIRouter, ctx: ServiceContext, service: WarningUseCases, views: Views
) -> None:
    """A leader's approval or rejection of the pending version, once per key."""

    @router.post(
        "/v1/warnings/{warning_id}/approve", summary="Approve the pending version (leader)"
    )
    def approve(
        warning_id: str,
        response: Response,
        body: ApproveIn = Body(default_factory=ApproveIn),
        principal: Principal = ctx.allow(Role.LEADER),
        idempotency_key: str | None = Header(default=None),
    ) -> dict[str, Any]:
        return _once(
            views,
            warning_id,
            "approve",
            body,
            principal,
            idempotency_key,
            response,
            lambda mark: service.approve(principal, warning_id, body.note, body.version, mark),
        )

    @router.post("/v1/warnings/{warning_id}/reject", summary="Reject the pending version (leader)")
    def reject(
        warning_id: str,
        body: RejectIn,
        response: Response,
        principal: Principal = ctx.allow(Role.LEADER),
        idempotency_key: str | None = Header(default=None),
    ) -> dict[str, Any]:
        return _once(
            views,
            warning_id,
            "reject",
            body,
            principal,
            idempotency_key,
            response,
            lambda mark: service.reject(principal, warning_id, body.reason, body.version, mark),
        )


def _change_routes(
    router: APIRouter, ctx: ServiceContext, service: WarningUseCases, views: Views
) -> None:
    """An issuer's adjustment (CAP Update) or lifting (CAP Cancel), once per key."""

    @router.post("/v1/warnings/{warning_id}/adjust", summary="Adjust: a new version (CAP Update)")
    def adjust(
        warning_id: str,
        body: AdjustIn,
        response: Response,
        principal: Principal = ctx.allow(*ISSUERS),
        idempotency_key: str | None = Header(default=None),
    ) -> dict[str, Any]:
        return _once(
            views,
            warning_id,
            "adjust",
            body,
            principal,
            idempotency_key,
            response,
            lambda mark: service.adjust(principal, warning_id, body.model_dump(), mark),
        )

    @router.post("/v1/warnings/{warning_id}/lift", summary="Lift a warning (CAP Cancel)")
    def lift(
        warning_id: str,
        body: LiftIn,
        response: Response,
        principal: Principal = ctx.allow(*ISSUERS),
        idempotency_key: str | None = Header(default=None),
    ) -> dict[str, Any]:
        return _once(
            views,
            warning_id,
            "lift",
            body,
            principal,
            idempotency_key,
            response,
            lambda mark: service.lift(
                principal, warning_id, body.reason, body.override_reason, mark
            ),
        )


def _delivery_routes(
    router: APIRouter, ctx: ServiceContext, service: WarningUseCases, views: Views
) -> None:
    """A township's receipt (签收), and deliveries and receipts per township."""

    @router.post("/v1/warnings/{warning_id}/ack", summary="A township acknowledges receipt (签收)")
    def ack(
        warning_id: str,
        body: AckIn = Body(default_factory=AckIn),
        principal: Principal = ctx.allow(Role.TOWNSHIP),
    ) -> dict[str, Any]:
        record = service.acknowledge(
            principal, warning_id, body.version, body.note, body.village_code
        )
        return _ack_view(record)

    @router.get(
        "/v1/warnings/{warning_id}/deliveries",
        summary="Deliveries and acknowledgements per township",
    )
    def deliveries(warning_id: str, principal: Principal = ctx.allow(*ALL)) -> dict[str, Any]:
        doc = service.warning(warning_id)
        _visible_to(principal, doc)
        codes = list(doc["areas"])
        if principal.role == Role.TOWNSHIP:
            codes = [principal.township_code or ""]
        return _dissemination_view(doc, service.dissemination(doc, codes), views)


def _dissemination_view(
    doc: Mapping[str, Any], reached: domain.Dissemination, views: Views
) -> dict[str, Any]:
    """Deliveries and receipts of a warning per township, with their counts."""
    return {
        "warning_id": doc["_id"],
        "version": int(doc["version"]),
        "status": doc["status"],
        "summary": {
            "deliveries": reached.delivery_counts,
            "acknowledgements": reached.receipt_counts,
        },
        "townships": [_township_dissemination_view(t, views) for t in reached.townships],
    }


def _township_dissemination_view(
    township: domain.TownshipDissemination, views: Views
) -> dict[str, Any]:
    current = township.current_receipt
    return {
        "township_code": township.township_code,
        "township_name": views.area_names([township.township_code])[0]["name"],
        "acknowledged": township.acknowledged,
        "acknowledgement": _ack_view(current) if current is not None else None,
        "acknowledgements": [_ack_view(r) for r in township.receipts],
        "deliveries": [_delivery_view(r) for r in township.deliveries],
        "village_deliveries": [_delivery_view(r) for r in township.village_deliveries],
    }


def _ack_view(record: Mapping[str, Any]) -> dict[str, Any]:
    keys = (
        "warning_id",
        "version",
        "township_code",
        "level",
        "state",
        "issued_at",
        "due_at",
        "acked_at",
        "acked_by",
        "late",
        "note",
        "overdue_at",
    )
    body = {k: record.get(k) for k in keys}
    body["acked_by"] = (record.get("acked_by") or {}).get("name")
    target = record.get("target") or {}
    if target.get("kind") == TARGET_VILLAGE:
        body.update(village_code=target["code"], village_name=record.get("village_name"))
        body["via"] = record.get("via")
    return body


def _delivery_view(row: Mapping[str, Any]) -> dict[str, Any]:
    keys = (
        "version",
        "msg_type",
        "channel",
        "channel_type",
        "state",
        "attempts",
        "last_error",
        "next_attempt_at",
        "delivered_at",
        "failed_at",
        "created_at",
    )
    return {
        "id": row["_id"],
        **{k: row.get(k) for k in keys},
        "target": row.get("target") or {"kind": "township", "code": row["township_code"]},
        "escalation_of": row.get("escalation_of"),
        "exercise_ack_url": row.get("exercise_ack_url"),
    }

"""Platform routes every process serves: the API index, API keys, townships, the caller,
dead-letter queues."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from libs.common import bus
from libs.common.auth import KeyStore, Principal, Role
from libs.common.county import village_views
from libs.common.errors import ApiError, not_found
from libs.common.hazards import HAZARDS
from libs.common.jsontypes import JsonInt
from libs.common.openapi import errors
from libs.common.service import ServiceContext
from libs.common.text import Text


def _visible(text: str) -> bool:
    """Whether ``text`` has a character one can see: not only spaces, tabs, line breaks or
    invisible format characters (zero-width space U+200B, BOM, joiners …)."""
    return any(not ch.isspace() and unicodedata.category(ch) not in ("Cf", "Zs") for ch in text)


class KeyRequest(BaseModel):
    """A new API key."""

    model_config = ConfigDict(extra="forbid")

    role: Role = Field(description="admin, leader, operator, department or township")
    name: Text = Field(
        min_length=1, max_length=100, description="who holds the key (not blank; 持有人)"
    )
    township_code: str | None = Field(
        default=None, pattern=r"^\d{9}$", description="required for township keys (乡镇代码)"
    )
    hazards: list[Text] = Field(
        default_factory=list,
        max_length=len(HAZARDS),
        description="hazard categories a department key may warn about (department keys only; "
        "each at most once)",
    )
    department_code: str | None = Field(
        default=None,
        pattern=r"^[a-z][a-z0-9_]{1,39}$",
        description="部门代码：部门密钥以该部门名义报送信息（县情文件 departments）",
    )

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: str) -> str:
        if not _visible(value):
            raise PydanticCustomError("blank", "不能为空白（不能只有空格、制表符或不可见字符）")
        return value


def _role_fields(body: KeyRequest) -> list[dict[str, str]]:
    """The fields that do not fit the key's role, each with its Chinese reason."""
    rows: list[dict[str, str]] = []
    if body.role == Role.TOWNSHIP and not body.township_code:
        rows.append({"path": "township_code", "reason": "乡镇密钥必须填写乡镇代码"})
    if body.role != Role.TOWNSHIP and body.township_code:
        rows.append({"path": "township_code", "reason": "只有乡镇密钥才能填写乡镇代码"})
    if body.role != Role.DEPARTMENT and body.department_code:
        rows.append({"path": "department_code", "reason": "只有部门密钥才能填写部门代码"})
    if body.role != Role.DEPARTMENT and body.hazards:
        rows.append({"path": "hazards", "reason": "只有部门密钥才能指定预警类别"})
    if body.role == Role.DEPARTMENT and not body.department_code and not body.hazards:
        reason = "部门密钥须填写部门代码（department_code）或预警类别（hazards），至少其一"
        rows += [
            {"path": "department_code", "reason": reason},
            {"path": "hazards", "reason": reason},
        ]
    first: dict[str, int] = {}
    for i, hazard in enumerate(body.hazards):
        if hazard in first:
            rows.append({"path": f"hazards.{i}", "reason": f"与第 {first[hazard] + 1} 项重复"})
        first.setdefault(hazard, i)
    return rows


class ReplayRequest(BaseModel):
    """Which dead-letter queue to move back to its queue."""

    model_config = ConfigDict(extra="forbid")

    queue: Text = Field(min_length=1, max_length=255)
    limit: JsonInt | None = Field(default=None, ge=1, le=100_000)


# Where a person or a client goes next: the documentation, the console and the probes. Paths,
# not URLs: the index never echoes the request's Host header.
PLATFORM_LINKS = {
    "docs": "/docs",
    "openapi": "/openapi.json",
    "console": "/console",
    "health": "/healthz",
    "ready": "/readyz",
    "metrics": "/metrics",
}


class ServiceEntry(BaseModel):
    """One service of this process and where its resources are."""

    name: str = Field(description="intake, warning, dispatch or reporting")
    links: list[str] = Field(description="its collection paths (GET, no path parameters)")


class ApiIndex(BaseModel):
    """What this process serves, and where."""

    title: str = Field(description="the platform's name")
    version: str = Field(description="API version")
    services: list[ServiceEntry] = Field(description="the services in this process")
    links: dict[str, str] = Field(description="documentation, console, health and metrics")


def build_index_router(
    ctx: ServiceContext,
    title: str,
    version: str,
    links_of: Callable[[], Mapping[str, Sequence[str]]],
) -> APIRouter:
    """``GET /v1/``: the services of this process and their links (public: it holds no data)."""
    router = APIRouter(tags=["platform"])

    @router.get(
        "/v1/",
        summary="The API index: services in this process and their links",
        response_model=ApiIndex,
    )
    def index(_: None = ctx.public()) -> ApiIndex:
        services = [
            ServiceEntry(name=name, links=list(paths)) for name, paths in links_of().items()
        ]
        return ApiIndex(title=title, version=version, services=services, links=PLATFORM_LINKS)

    return router


def _key_view(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": record["_id"],
        "name": record["name"],
        "role": record["role"],
        "township_code": record.get("township_code"),
        "hazards": record.get("hazards") or [],
        "department_code": record.get("department_code"),
        "created_at": record.get("created_at"),
        "revoked_at": record.get("revoked_at"),
    }


def build_platform_router(
    ctx: ServiceContext, keys: KeyStore, known_queues: list[str]
) -> APIRouter:
    """Routes for keys, townships, the caller and dead letters."""
    router = APIRouter(tags=["platform"])
    _key_routes(router, ctx, keys)
    _county_routes(router, ctx)
    _caller_routes(router, ctx)
    _dead_letter_routes(router, ctx, known_queues)
    return router


def _not_in_county_file(field: str, code: str, kind: str) -> ApiError:
    """422 for a township or department code the county file does not list."""
    return ApiError(
        422,
        f"unknown_{field.removesuffix('_code')}",
        f"{code} 不是本县的{kind}",
        fields=[{"path": field, "reason": f"县情文件中没有该{kind}"}],
    )


def _check_key_request(ctx: ServiceContext, body: KeyRequest) -> None:
    """422 unless the key's fields fit its role and its township, hazards and department are
    the county's own."""
    misfits = _role_fields(body)
    if misfits:
        raise ApiError(422, "validation_failed", "请求内容不合规", misfits)
    if body.township_code and ctx.county.township(body.township_code) is None:
        raise _not_in_county_file("township_code", body.township_code, "乡镇")
    unknown = [
        {
            "path": f"hazards.{i}",
            "reason": f"不是预警类别，可选：{'、'.join(HAZARDS)}",
        }
        for i, hazard in enumerate(body.hazards)
        if hazard not in HAZARDS
    ]
    if unknown:
        raise ApiError(422, "unknown_hazard", "预警类别不在列表中", unknown)
    if body.department_code and ctx.county.department(body.department_code) is None:
        raise _not_in_county_file("department_code", body.department_code, "部门")


def _key_routes(router: APIRouter, ctx: ServiceContext, keys: KeyStore) -> None:
    """API keys: create (the secret shown once), list, revoke."""
    admin = ctx.allow(Role.ADMIN)

    @router.post("/v1/admin/keys", status_code=201, summary="Create an API key (shown once)")
    def create_key(body: KeyRequest, principal: Principal = admin) -> dict[str, Any]:
        _check_key_request(ctx, body)
        record, secret = keys.create(
            body.role,
            body.name,
            body.township_code,
            tuple(body.hazards),
            department_code=body.department_code,
        )
        ctx.log.info(
            "api_key_created", key_id=record["_id"], role=str(body.role), by=principal.key_id
        )
        return {**_key_view(record), "key": secret}

    @router.get("/v1/admin/keys", summary="List API keys (without secrets)")
    def list_keys(principal: Principal = admin) -> dict[str, Any]:
        return {"items": [_key_view(r) for r in keys.list()], "next_cursor": None}

    @router.delete(
        "/v1/admin/keys/{key_id}",
        status_code=204,
        summary="Revoke an API key",
        description="Revokes the key at once (every replica within 5 s). The last active "
        "admin key is never revoked: 409 `last_admin_key` (最后一个管理员密钥不能吊销).",
        responses=errors(404, 409),
    )
    def revoke_key(key_id: str, principal: Principal = admin) -> Response:
        outcome = keys.revoke_keeping_an_admin(key_id)
        if outcome == "missing":
            raise not_found("key", key_id)
        if outcome == "last_admin":
            raise ApiError(
                409,
                "last_admin_key",
                f"{key_id} 是最后一个有效的管理员密钥，不能吊销：吊销后将无人能管理密钥；"
                "请先创建另一个管理员密钥",
            )
        ctx.log.info("api_key_revoked", key_id=key_id, by=principal.key_id)
        return Response(status_code=204)


def _county_routes(router: APIRouter, ctx: ServiceContext) -> None:
    """The county's townships and villages (行政村), from the county file."""

    @router.get("/v1/townships", summary="The county's townships")
    def townships(principal: Principal = ctx.allow(*Role)) -> dict[str, Any]:
        items = [
            {"code": t.code, "name": t.name, "lat": t.lat, "lon": t.lon}
            for t in ctx.county.townships
        ]
        return {
            "items": items,
            "next_cursor": None,
            "county": {
                "code": ctx.county.code,
                "name": ctx.county.name,
                "timezone": ctx.county.timezone,
            },
        }

    @router.get(
        "/v1/county/villages",
        summary="行政村（社区）及信息员",
        description="各乡镇的行政村（社区）：12 位代码、位置、人口和信息员（姓名、电话、"
        "送达方式）。乡镇账号只看到本乡镇的村。",
    )
    def villages(
        township_code: str | None = Query(default=None, pattern=r"^\d{9}$", description="乡镇代码"),
        principal: Principal = ctx.allow(Role.ADMIN, Role.LEADER, Role.OPERATOR, Role.TOWNSHIP),
    ) -> dict[str, Any]:
        if township_code is not None:
            principal.ensure_township(township_code, "query.township_code")
        code = principal.township_code if principal.role == Role.TOWNSHIP else township_code
        return {"items": village_views(ctx.county, code), "next_cursor": None}


def _caller_routes(router: APIRouter, ctx: ServiceContext) -> None:
    """Who the calling key belongs to."""

    @router.get("/v1/me", summary="Who the API key belongs to")
    def me(principal: Principal = ctx.allow(*Role)) -> dict[str, Any]:
        return {
            "id": principal.key_id,
            "name": principal.name,
            "role": str(principal.role),
            "township_code": principal.township_code,
            "hazards": list(principal.hazards),
            "department_code": principal.department_code,
        }


def _dead_letters_view(
    ctx: ServiceContext, known_queues: list[str], queue: str | None, limit: int
) -> dict[str, Any]:
    """Every known queue with its dead-letter queue, or the dead letters of one queue."""
    if queue is None:
        return {
            "items": [
                {"queue": q, "dead_letter_queue": bus.dead_letter_queue_name(q)}
                for q in known_queues
            ],
            "next_cursor": None,
        }
    if queue not in known_queues:
        raise not_found("queue", queue)
    letters = bus.list_dead_letters(ctx.settings, queue, limit=limit)
    return {
        "items": [
            {"queue": d.queue, "message_id": d.message_id, "headers": d.headers, "body": d.body}
            for d in letters
        ],
        "next_cursor": None,
    }


def _dead_letter_routes(router: APIRouter, ctx: ServiceContext, known_queues: list[str]) -> None:
    """Dead-letter queues: what they hold, and moving their messages back."""
    admin = ctx.allow(Role.ADMIN)

    @router.get(
        "/v1/admin/dlq", summary="Dead-letter queues and their messages", responses=errors(404)
    )
    def dead_letters(
        queue: str | None = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 20,
        principal: Principal = admin,
    ) -> dict[str, Any]:
        return _dead_letters_view(ctx, known_queues, queue, limit)

    @router.post(
        "/v1/admin/dlq/replay",
        summary="Move dead letters back to their queue",
        responses=errors(404),
    )
    def replay(body: ReplayRequest, principal: Principal = admin) -> dict[str, Any]:
        if body.queue not in known_queues:
            raise not_found("queue", body.queue)
        moved = bus.replay_dead_letters(ctx.settings, body.queue, body.limit)
        ctx.log.info("dead_letters_replayed", queue=body.queue, moved=moved, by=principal.key_id)
        return {"queue": body.queue, "moved": moved}

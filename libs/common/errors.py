"""The uniform error body and the handlers that make every failure a clear 4xx."""

from __future__ import annotations

import codecs
import functools
import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from libs.common import metrics


class ApiError(Exception):
    """An error with an HTTP status, a machine code, a message and the fields at fault."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: Sequence[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = list(fields or [])
        self.headers = headers


def error_body(code: str, message: str, fields: Sequence[dict[str, str]] = ()) -> dict[str, Any]:
    """The JSON body every error uses."""
    return {"error": {"code": code, "message": message, "fields": list(fields)}}


# What a 404 names, in the words of the console.
NOT_FOUND_LABELS = {
    "assignment": "交办事项",
    "dispatch": "调派单",
    "docs asset": "文档资源",
    "file": "文件",
    "incident": "事件",
    "key": "API 密钥",
    "plan": "应急预案",
    "queue": "队列",
    "stock line": "库存条目",
    "suggestion": "预警建议",
    "team": "救援队伍",
    "warning": "预警",
    "report": "报告",
    "deadline": "报送时限",
    "summary": "汇总材料",
    "zero report": "零报告",
}


def not_found(what: str, ident: str) -> ApiError:
    """404 for an id that does not exist (or is not visible to the caller)."""
    return ApiError(404, "not_found", f"未找到{NOT_FOUND_LABELS.get(what, what)} {ident}")


def field_error(path: str, reason: str, status: int = 422, code: str = "invalid") -> ApiError:
    """An error about one field."""
    return ApiError(status, code, f"{path}: {reason}", fields=[{"path": path, "reason": reason}])


def _path(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header"}:
        head, rest = parts[0], parts[1:]
        if head == "body":
            return ".".join(rest) or "body"
        return ".".join([head, *rest])
    return ".".join(parts)


# pydantic's own messages are English: the common error types in Chinese, keyed by the type
# (the ``ctx`` values fill the braces). A type not listed keeps pydantic's message; our own
# validators already raise Chinese messages.
PYDANTIC_REASONS: dict[str, str] = {
    "missing": "必填",
    "extra_forbidden": "不允许的字段",
    "string_type": "须为字符串",
    "string_too_short": "至少 {min_length} 个字符",
    "string_too_long": "最多 {max_length} 个字符",
    "string_pattern_mismatch": "格式不符（须匹配 {pattern}）",
    "too_short": "至少 {min_length} 项",
    "too_long": "最多 {max_length} 项",
    "greater_than": "须大于 {gt}",
    "greater_than_equal": "须大于或等于 {ge}",
    "less_than": "须小于 {lt}",
    "less_than_equal": "须小于或等于 {le}",
    "multiple_of": "须为 {multiple_of} 的倍数",
    "int_type": "须为整数",
    "int_parsing": "须为整数",
    "int_from_float": "须为整数（不能有小数）",
    "float_type": "须为数字",
    "float_parsing": "须为数字",
    "finite_number": "须为有限的数字",
    "bool_type": "须为布尔值（true 或 false）",
    "bool_parsing": "须为布尔值（true 或 false）",
    "enum": "须为以下之一：{expected}",
    "literal_error": "须为以下之一：{expected}",
    "list_type": "须为列表",
    "dict_type": "须为对象",
    "model_type": "须为对象",
    "model_attributes_type": "须为对象",
    "date_type": "须为日期",
    "date_parsing": "不是有效的日期（YYYY-MM-DD）",
    "date_from_datetime_parsing": "不是有效的日期（YYYY-MM-DD）",
    "date_from_datetime_inexact": "须为日期，不能带时刻",
    "datetime_type": "须为时间",
    "datetime_parsing": "不是有效的时间（ISO 8601，含时区）",
    "datetime_from_date_parsing": "不是有效的时间（ISO 8601，含时区）",
    "datetime_object_invalid": "不是有效的时间",
    "timezone_aware": "须带时区",
    "timezone_naive": "不能带时区",
    "time_parsing": "不是有效的时刻（HH:MM）",
    "uuid_parsing": "不是有效的 UUID",
    "url_parsing": "不是有效的网址",
    "url_scheme": "网址协议须为 {expected_schemes}",
    "json_invalid": "JSON 格式错误",
    "json_type": "须为 JSON 文本",
    "string_unicode": "须为有效的 Unicode 字符串",
    "union_tag_invalid": "类型标记无效",
    "none_required": "须为空",
}


def chinese_reason(error: Mapping[str, Any]) -> str:
    """The Chinese reason of one pydantic error entry, by its type."""
    kind = str(error.get("type", ""))
    message = str(error.get("msg", "无效"))
    template = PYDANTIC_REASONS.get(kind)
    if template is None:
        # A validator's own message (value_error, custom types): drop pydantic's prefix.
        return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    ctx = {k: str(v) for k, v in (error.get("ctx") or {}).items()}
    try:
        return template.format_map(ctx)
    except KeyError:
        return template.split("{")[0].removesuffix("：").strip() or message


def validation_fields(errors: Sequence[Any]) -> list[dict[str, str]]:
    """Turn pydantic error entries into ``{path, reason, type}`` rows, the reason in Chinese and
    ``type`` the pydantic error type (a stable code for clients)."""
    rows = []
    for error in errors:
        reason = chinese_reason(error)
        if error.get("type") == "json_invalid":
            detail = (error.get("ctx") or {}).get("error")
            reason = f"JSON 格式错误：{detail}" if detail else reason
        rows.append(
            {
                "path": _path(error.get("loc", ())),
                "reason": reason,
                "type": str(error.get("type", "invalid")),
            }
        )
    return rows


def install_error_handlers(
    app: FastAPI, service: str, route_owner: Mapping[str, str] | None = None
) -> None:
    """Register handlers so that no error leaves as anything but the uniform body.

    Rejections are counted for the service that owns the route (``route_owner`` maps route
    templates to services), or for ``service`` when the request matched no route.
    """
    log = structlog.get_logger().bind(service=service)
    owners = route_owner if route_owner is not None else {}
    _install_rejection_handlers(app, functools.partial(_route_owner, owners, service))
    _install_fallback_handlers(app, log)


def _route_owner(owners: Mapping[str, str], service: str, request: Request) -> str:
    """The service that owns the request's route, or ``service`` when it matched none."""
    route = request.scope.get("route")
    return owners.get(getattr(route, "path", ""), service)


def _install_rejection_handlers(app: FastAPI, owner: Callable[[Request], str]) -> None:
    """Refused and invalid requests, each counted for the service that owns the route."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        if exc.status in (401, 403, 429):
            metrics.HTTP_REJECTIONS.labels(owner(request), exc.code).inc()
        return JSONResponse(
            error_body(exc.code, exc.message, exc.fields),
            status_code=exc.status,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def request_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = validation_fields(exc.errors())
        malformed = any(e.get("type") == "json_invalid" for e in exc.errors())
        metrics.HTTP_REJECTIONS.labels(
            owner(request), "malformed_json" if malformed else "validation"
        ).inc()
        if malformed:
            return JSONResponse(
                error_body("malformed_json", "请求体不是有效的 JSON", fields),
                status_code=400,
            )
        return JSONResponse(
            error_body("validation_failed", "请求内容不合规", fields), status_code=422
        )


# The framework's own refusals carry English details ("Not Found", "Method Not Allowed",
# "There was an error parsing the body"): in Chinese, by status.
HTTP_MESSAGES = {
    400: "请求体无法解析：须为有效的 JSON（嵌套不能过深）",
    404: "未找到该路径",
    405: "该路径不支持此请求方法",
    413: "请求体过大",
    415: "请求体须为 UTF-8 编码的 application/json",
}


def _chinese_detail(exc: StarletteHTTPException) -> str:
    """The detail of an HTTP error when it is ours (Chinese), else the Chinese one of its status."""
    detail = str(exc.detail)
    if any("\u4e00" <= ch <= "\u9fff" for ch in detail):
        return detail
    return HTTP_MESSAGES.get(exc.status_code, f"请求无法处理（HTTP {exc.status_code}）")


# SQLite's result codes for a store that cannot be used now but may be soon: busy, locked, read
# only, an I/O error, full, cannot open (a missing mount). None of them says the data is wrong.
SQLITE_FULL = 13
SQLITE_PASSING = frozenset({5, 6, 8, 10, SQLITE_FULL, 14})
PASSING_TEXTS = ("database or disk is full", "database is locked", "disk I/O error")
# When a client should try again: a full disk waits for an operator, the rest pass sooner.
STORE_FULL_RETRY_SECONDS = 60
STORE_OUTAGE_RETRY_SECONDS = 5


def _in_causes(exc: BaseException, found: Callable[[BaseException], bool]) -> bool:
    """Whether ``exc`` or one of the errors that caused it (a few levels deep) is ``found``."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if found(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _sqlite_code(exc: BaseException) -> int | None:
    if not isinstance(exc, sqlite3.OperationalError):
        return None
    return (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


def store_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is SQLite's "database or disk is full"."""
    return _in_causes(
        exc,
        lambda e: (
            _sqlite_code(e) == SQLITE_FULL
            or (_sqlite_code(e) is not None and "database or disk is full" in str(e))
        ),
    )


def store_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the store is out of reach for a while (SQLite
    busy, full, read only or failing I/O; MongoDB unreachable), not that the work is poison."""

    def passing(e: BaseException) -> bool:
        code = _sqlite_code(e)
        if code is not None:
            return code in SQLITE_PASSING or any(text in str(e) for text in PASSING_TEXTS)
        return _mongo_unreachable(e)

    return _in_causes(exc, passing)


def _mongo_unreachable(exc: BaseException) -> bool:
    try:
        from pymongo.errors import ConnectionFailure
    except ImportError:  # pragma: no cover - pymongo is a dependency
        return False
    return isinstance(exc, ConnectionFailure)


def _install_fallback_handlers(app: FastAPI, log: Any) -> None:
    """The framework's own HTTP errors, and anything unexpected (logged, answered 500)."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {
            400: "malformed_json",
            404: "not_found",
            405: "method_not_allowed",
            413: "body_too_large",
            415: "unsupported_media_type",
        }
        return JSONResponse(
            error_body(codes.get(exc.status_code, "http_error"), _chinese_detail(exc)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        if store_unavailable(exc):
            # The request was not taken (nothing committed): the client may send it again.
            full = store_full(exc)
            log.error("store_unavailable", path=request.url.path, full=full, error=repr(exc))
            message = "存储空间已满，暂时无法写入" if full else "存储暂时不可用"
            wait = STORE_FULL_RETRY_SECONDS if full else STORE_OUTAGE_RETRY_SECONDS
            return JSONResponse(
                error_body("store_unavailable", message + "，请稍后重试"),
                status_code=503,
                headers={"Retry-After": str(wait)},
            )
        log.error("unhandled_error", path=request.url.path, error=repr(exc), exc_info=exc)
        return JSONResponse(
            error_body("internal_error", "服务内部错误，已记录日志"),
            status_code=500,
        )


class BodyLimitMiddleware:
    """Refuses bodies over the limit (413) and non-JSON bodies on JSON routes (415).

    Pure ASGI so it can count bytes as they stream in, without trusting Content-Length.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, service: str) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send, 413, "body_too_large", f"请求体超过 {self.max_bytes} 字节")
            return
        content_type = headers.get("content-type", "")
        if declared not in (None, "0") and not is_utf8_json(content_type):
            # A body without a type is not read as JSON on a guess.
            received_as = content_type.split(";")[0].strip()[:80] or "未声明 Content-Type"
            await self._refuse(
                send,
                415,
                "unsupported_media_type",
                f"请求体须为 UTF-8 编码的 application/json（收到的是 {received_as}）",
            )
            return
        received = 0
        decoder = codecs.getincrementaldecoder("utf-8")()

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                received += len(chunk)
                if received > self.max_bytes:
                    raise _BodyTooLarge()
                # json.loads reads UTF-16 and UTF-32 too (guessing from NUL bytes): refuse them.
                try:
                    decoder.decode(chunk, final=not message.get("more_body", False))
                except UnicodeDecodeError:
                    raise _NotUtf8() from None
                if b"\x00" in chunk:
                    raise _NotUtf8()
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await self._refuse(send, 413, "body_too_large", f"请求体超过 {self.max_bytes} 字节")
        except _NotUtf8:
            await self._refuse(send, 400, "malformed_json", _NotUtf8.MESSAGE)

    async def _refuse(self, send: Send, status: int, code: str, message: str) -> None:
        metrics.HTTP_REJECTIONS.labels(self.service, code).inc()
        body = json.dumps(error_body(code, message)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def is_utf8_json(content_type: str) -> bool:
    """Whether a Content-Type is application/json (in UTF-8, the only charset JSON has)."""
    media_type, *params = (part.strip().lower() for part in content_type.split(";"))
    charsets = [p.partition("=")[2].strip('"') for p in params if p.startswith("charset=")]
    return media_type == "application/json" and all(c in ("utf-8", "utf8") for c in charsets)


class _NotUtf8(StarletteHTTPException):
    """Raised from ``receive`` for a body that is not UTF-8 (a 400 through the error handler)."""

    MESSAGE = "请求体不是 UTF-8 编码的 JSON（不接受 UTF-16 和 UTF-32）"

    def __init__(self) -> None:
        super().__init__(400, self.MESSAGE)


class _BodyTooLarge(StarletteHTTPException):
    """Raised from ``receive``; an HTTPException so the framework passes it through as 413."""

    def __init__(self) -> None:
        super().__init__(413, "请求体过大")

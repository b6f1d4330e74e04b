"""The uniform error body and the handlers that make every failure a clear 4xx."""

from __future__ import annotations

import codecs
import json
from collections.abc import Mapping, Sequence
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


def not_found(what: str, ident: str) -> ApiError:
    """404 for an id that does not exist (or is not visible to the caller)."""
    return ApiError(404, "not_found", f"{what} {ident} not found")


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


def validation_fields(errors: Sequence[Any]) -> list[dict[str, str]]:
    """Turn pydantic error entries into ``{path, reason}`` rows."""
    rows = []
    for error in errors:
        reason = str(error.get("msg", "invalid"))
        if error.get("type") == "json_invalid":
            reason = "malformed JSON: " + str(error.get("ctx", {}).get("error", reason))
        rows.append({"path": _path(error.get("loc", ())), "reason": reason})
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

    def owner(request: Request) -> str:
        route = request.scope.get("route")
        return owners.get(getattr(route, "path", ""), service)

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
                error_body("malformed_json", "the request body is not valid JSON", fields),
                status_code=400,
            )
        return JSONResponse(
            error_body("validation_failed", "the request is not valid", fields), status_code=422
        )

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
            error_body(codes.get(exc.status_code, "http_error"), str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled_error", path=request.url.path, error=repr(exc), exc_info=exc)
        return JSONResponse(
            error_body("internal_error", "an unexpected error occurred; it has been logged"),
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
            await self._refuse(
                send, 413, "body_too_large", f"request body exceeds {self.max_bytes} bytes"
            )
            return
        content_type = headers.get("content-type", "")
        if declared not in (None, "0") and content_type and not is_utf8_json(content_type):
            await self._refuse(
                send,
                415,
                "unsupported_media_type",
                "request bodies must be application/json in UTF-8 "
                f"(not {content_type.split(';')[0].strip()[:80]})",
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
            await self._refuse(
                send, 413, "body_too_large", f"request body exceeds {self.max_bytes} bytes"
            )
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

    MESSAGE = "the request body is not UTF-8 JSON (UTF-16 and UTF-32 are not accepted)"

    def __init__(self) -> None:
        super().__init__(400, self.MESSAGE)


class _BodyTooLarge(StarletteHTTPException):
    """Raised from ``receive``; an HTTPException so the framework passes it through as 413."""

    def __init__(self) -> None:
        super().__init__(413, "request body too large")

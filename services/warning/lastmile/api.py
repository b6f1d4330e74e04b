"""The routes of a village's link: GET shows the warning and a confirm button, POST
acknowledges the one receipt the link's delivery awaits. No key: the token is the credential."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Path
from fastapi.responses import HTMLResponse

from libs.common.errors import ApiError
from libs.common.service import ServiceContext
from services.warning.lastmile import pages
from services.warning.lastmile.domain import ACK_PATH
from services.warning.usecases import WarningUseCases

TOKEN = Path(description="链接令牌 the token of the link (a wrong one answers 404)")
HTML: dict[str, Any] = {"content": {"text/html": {"schema": {"type": "string"}}}}
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: HTML,
    404: {**HTML, "description": "链接无效"},
    410: {**HTML, "description": "链接已失效"},
}


# The page loads nothing from anywhere, posts only to itself, is never framed and never cached
# (the platform's headers already keep its URL, the token, from going on as a referrer).
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}


def _answer(run: Callable[[], str]) -> HTMLResponse:
    """The page, or the refusal page with its status (never JSON: a phone's browser reads it)."""
    try:
        return HTMLResponse(run(), headers=PAGE_HEADERS)
    except ApiError as exc:
        if exc.status not in (404, 410):
            raise
        return HTMLResponse(
            pages.refusal_page(exc.status, exc.message),
            status_code=exc.status,
            headers=PAGE_HEADERS,
        )


def add_routes(router: APIRouter, ctx: ServiceContext, service: WarningUseCases) -> None:
    """The link routes, on the warning router (public: rate-limited per client address as
    every route is)."""

    @router.get(
        ACK_PATH + "{token}",
        summary="村信息员确认页 (the link in a village's message; GET never acknowledges)",
        response_class=HTMLResponse,
        responses=RESPONSES,
    )
    def show(token: str = TOKEN, _: None = ctx.public()) -> Any:
        return _answer(
            lambda: pages.confirm_page(
                service.token_view(token), ACK_PATH + token, service.county.timezone
            )
        )

    @router.post(
        ACK_PATH + "{token}",
        summary="村信息员确认收到 (acknowledges only this link's delivery; idempotent)",
        response_class=HTMLResponse,
        responses=RESPONSES,
    )
    def confirm(token: str = TOKEN, _: None = ctx.public()) -> Any:
        return _answer(
            lambda: pages.done_page(service.ack_by_token(token), service.county.timezone)
        )

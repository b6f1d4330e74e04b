"""HTTP routes of the warning service."""

from __future__ import annotations

from fastapi import APIRouter

from libs.common.service import ServiceContext


def build_router(ctx: ServiceContext) -> APIRouter:
    """The warning router."""
    return APIRouter(tags=["warning"])

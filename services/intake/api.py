"""HTTP routes of the intake service."""

from __future__ import annotations

from fastapi import APIRouter

from libs.common.service import ServiceContext


def build_router(ctx: ServiceContext) -> APIRouter:
    """The intake router."""
    return APIRouter(tags=["intake"])

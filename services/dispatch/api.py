"""HTTP routes of the dispatch service."""

from __future__ import annotations

from fastapi import APIRouter

from libs.common.service import ServiceContext


def build_router(ctx: ServiceContext) -> APIRouter:
    """The dispatch router."""
    return APIRouter(tags=["dispatch"])

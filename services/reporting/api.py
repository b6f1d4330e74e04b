"""HTTP routes of the reporting service."""

from __future__ import annotations

from fastapi import APIRouter

from libs.common.service import ServiceContext


def build_router(ctx: ServiceContext) -> APIRouter:
    """The reporting router."""
    return APIRouter(tags=["reporting"])

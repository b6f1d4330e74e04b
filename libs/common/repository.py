"""Opening a service's repository: on its SQLite file unless the database URL is ``mongodb://``,
once per context, closed with it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from libs.common.service import ServiceContext
from libs.common.sqlite import SqliteDatabase
from libs.common.store import sqlite_file


def open_service_repository(
    ctx: ServiceContext,
    name: str,
    on_sqlite: Callable[[SqliteDatabase], Any],
    on_mongo: Callable[[Any], Any],
) -> Any:
    """The service's repository (``ctx.resources["repository"]``), opened on first use with
    ``on_sqlite`` or ``on_mongo`` (each engine's class), its schema in place."""
    repo = ctx.resources.get("repository")
    if repo is None:
        path = sqlite_file(ctx.settings, name)
        repo = on_mongo(ctx.db) if path is None else on_sqlite(SqliteDatabase(path))
        repo.ensure_schema()
        ctx.resources["repository"] = repo
        ctx.closers.append(repo.close)
    return repo

"""Opening a service's repository, or the repository of one of its parts: on its SQLite file
unless the database URL is ``mongodb://``, once per context, closed with it."""

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
    key: str = "repository",
) -> Any:
    """The repository kept as ``ctx.resources[key]``, opened on first use with ``on_sqlite`` (on
    the SQLite file ``name``) or ``on_mongo`` (on the context's database), its schema in place.

    A part of a service (the duty office, the enterprise register) passes its own file name and
    key: its own SQLite file and outbox beside the service's, or the service's MongoDB database.
    """
    return ctx.resource(key, lambda: _open(ctx, name, on_sqlite, on_mongo))


def _open(
    ctx: ServiceContext,
    name: str,
    on_sqlite: Callable[[SqliteDatabase], Any],
    on_mongo: Callable[[Any], Any],
) -> Any:
    """A new repository on the engine the settings choose, its schema in place, closed with
    ``ctx``."""
    path = sqlite_file(ctx.settings, name)
    repo = on_mongo(ctx.db) if path is None else on_sqlite(SqliteDatabase(path))
    repo.ensure_schema()
    ctx.closers.append(repo.close)
    return repo

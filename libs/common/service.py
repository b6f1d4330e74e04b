"""What a service hands the runtime (its spec) and what the runtime hands it back (its context)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Request

from libs.common.auth import Principal, Role, require_role
from libs.common.bus import Subscription
from libs.common.clock import Clock
from libs.common.county import County
from libs.common.events import EventEnvelope
from libs.common.settings import Settings

T = TypeVar("T")


@dataclass
class ServiceContext:
    """Everything a service's router, handlers and timers need; built once per process."""

    name: str
    settings: Settings
    clock: Clock
    db: Any
    county: County
    authenticate: Callable[..., Any]
    wake_relay: Callable[[], None] = lambda: None
    log: Any = None
    # What service.py assembled once for this context (its repository), and how to release it.
    resources: dict[str, Any] = field(default_factory=dict)
    closers: list[Callable[[], None]] = field(default_factory=list)
    # Looks an API key up in the database, bypassing the cache (long-lived streams re-check).
    verify_key: Callable[[str], Principal | None] = lambda key: None

    def resource(self, key: str, build: Callable[[], T]) -> T:
        """``resources[key]``, built by ``build`` the first time it is asked for."""
        if key not in self.resources:
            self.resources[key] = build()
        found: T = self.resources[key]
        return found

    def allow(self, *roles: Role) -> Any:
        """A FastAPI dependency: authenticate, then 403 unless the caller has one of ``roles``.

        The roles are kept on the dependency so the route table can be audited (every route
        declares who may call it).
        """
        authenticate = self.authenticate

        # One coroutine that calls the authenticator itself: a plain function would cost a
        # worker-thread hop per request, and a nested dependency another round of resolution.
        async def dependency(request: Request) -> Principal:
            return require_role(await authenticate(request), *roles)

        dependency.allowed_roles = tuple(roles)  # type: ignore[attr-defined]
        return Depends(dependency)

    def public(self) -> Any:
        """Marks a route as deliberately open (no key needed), for the route audit."""

        async def dependency() -> None:
            return None

        dependency.allowed_roles = ("public",)  # type: ignore[attr-defined]
        return Depends(dependency)


@dataclass(frozen=True)
class RelayParts:
    """Where a service's relay finds pending events, and where it journals what it sent."""

    sources: Sequence[Any]
    journal: Any | None = None


@dataclass(frozen=True)
class Timer:
    """A periodic job (deadline scans, expiry) run on the service's timer thread."""

    name: str
    interval_seconds: float
    run: Callable[[], Any]


@dataclass
class ServiceSpec:
    """A service as the runtime sees it."""

    name: str
    build_router: Callable[[ServiceContext], APIRouter]
    # Where the relay finds the service's pending events and journals what it sent (its
    # repository's outbox).
    relay_parts: Callable[[ServiceContext], RelayParts]
    setup: Callable[[ServiceContext], None] = lambda ctx: None
    subscriptions: Callable[[ServiceContext], Sequence[Subscription]] = lambda ctx: ()
    timers: Callable[[ServiceContext], Sequence[Timer]] = lambda ctx: ()
    extra_routers: Callable[[ServiceContext], Sequence[APIRouter]] = lambda ctx: ()
    # What request fields are checked against beyond their types, for the OpenAPI document:
    # {schema component: {field: JSON Schema keywords}} (see libs.common.openapi.constrain).
    contract: Callable[[ServiceContext], Mapping[str, Mapping[str, Mapping[str, Any]]]] = (
        lambda ctx: {}
    )


def subscribe(
    source: str, event_type: str, name: str, handler: Callable[[EventEnvelope], bool | None]
) -> Subscription:
    """Shorthand for a Subscription."""
    return Subscription(source=source, event_type=event_type, handler=handler, name=name)

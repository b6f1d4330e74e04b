"""API-key authentication: five roles, township scoping, keys stored hashed.

A key reads ``yj_<id>_<secret>``; only SHA-256 of the whole key is stored (keys are random and
long, so a slow password hash buys nothing) and it is compared in constant time. Keys live in the
platform's key repository (libs/common/keys/) that every service reads; a verified key is cached
for a few seconds, which is also how long a revoked key keeps working.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import structlog
from fastapi import Request
from starlette.concurrency import run_in_threadpool

from libs.common import metrics
from libs.common.clock import Clock
from libs.common.errors import ApiError
from libs.common.keys import KeyExistsError, KeyRepository

BOOTSTRAP_KEY_ID = "bootstrap"
BOOTSTRAP_KEY_FILE = "bootstrap-admin.key"
CACHE_SECONDS = 5.0


class Role(StrEnum):
    """Who a caller is; see the actors table in the domain brief."""

    ADMIN = "admin"
    LEADER = "leader"
    OPERATOR = "operator"
    DEPARTMENT = "department"
    TOWNSHIP = "township"


# Roles as the console names them (users read refusals in Chinese).
ROLE_LABELS = {
    "admin": "管理员",
    "leader": "值班领导",
    "operator": "值班员",
    "department": "部门",
    "township": "乡镇",
}


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    key_id: str
    name: str
    role: Role
    township_code: str | None = None
    hazards: tuple[str, ...] = ()
    department_code: str | None = None

    def may_act_for(self, township_code: str) -> bool:
        """A township key acts only for its own code; every other role for any."""
        return self.role != Role.TOWNSHIP or self.township_code == township_code

    def ensure_township(self, township_code: str, path: str = "township_code") -> None:
        """403 unless the caller may act for ``township_code``."""
        if not self.may_act_for(township_code):
            raise ApiError(
                403,
                "forbidden_township",
                f"乡镇密钥（{self.township_code}）不能代其他乡镇（{township_code}）操作",
                fields=[{"path": path, "reason": "不属于调用方所在乡镇"}],
            )


def hash_key(key: str) -> str:
    """SHA-256 hex digest of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key(key_id: str) -> str:
    """A fresh key for ``key_id`` with 256 bits of randomness."""
    return f"yj_{key_id}_{secrets.token_urlsafe(32)}"


def key_id_of(key: str) -> str:
    """The id part of a key; keys in another format can only be the bootstrap key."""
    parts = key.split("_", 2)
    if len(parts) == 3 and parts[0] == "yj" and parts[1]:
        return parts[1]
    return BOOTSTRAP_KEY_ID


class _FailureWindow:
    """The recent failures of each name in one scope (client addresses, or key ids)."""

    def __init__(self, limit: int, window_seconds: float, max_names: int) -> None:
        self.limit = limit
        self.window = window_seconds
        self.max_names = max_names
        # Only the newest ``limit`` failures of a name matter: a bounded deque per name.
        self._failures: dict[str, deque[float]] = {}

    def record(self, name: str, now: float) -> float:
        """Record a failure; the seconds until ``name`` is under budget again (0 when it is)."""
        entries = self._failures.get(name)
        if entries is None:
            self._make_room(now)
            entries = self._failures[name] = deque(maxlen=max(1, self.limit))
        while entries and entries[0] <= now - self.window:
            entries.popleft()
        over = len(entries) >= self.limit
        wait = self.window - (now - entries[0]) if over else 0.0
        entries.append(now)
        return wait

    def _make_room(self, now: float) -> None:
        if len(self._failures) < self.max_names:
            return
        # Forget names whose failures have all expired; if every name is recent, forget the half
        # that failed longest ago (memory stays bounded when someone sprays addresses or key ids).
        for name in [n for n, e in self._failures.items() if not e or e[-1] <= now - self.window]:
            del self._failures[name]
        if len(self._failures) >= self.max_names:
            by_age = sorted(self._failures, key=lambda n: self._failures[n][-1])
            for name in by_age[: len(by_age) // 2 + 1]:
                del self._failures[name]


class FailureThrottle:
    """Throttles failed authentications per client address and per presented key id.

    Only failures are counted, and a key is always checked before the throttle is asked: a valid
    key passes however many failures its address or its key id have seen (behind a proxy or a
    shared office NAT those are other people's failures). A wrong key over either budget is
    answered 429 with ``Retry-After`` instead of 401.
    """

    MAX_NAMES = 10_000
    MAX_KEY_ID_CHARS = 64

    def __init__(self, limit: int, window_seconds: float) -> None:
        self.limit = limit
        self.window = window_seconds
        self._scopes = {
            "address": _FailureWindow(limit, window_seconds, self.MAX_NAMES),
            "key_id": _FailureWindow(limit, window_seconds, self.MAX_NAMES),
        }
        self._lock = threading.Lock()

    def failed(self, address: str, key_id: str) -> None:
        """Record a failed attempt; 429 when its address or its key id is over the budget."""
        now = time.monotonic()
        names = {"address": address, "key_id": key_id[: self.MAX_KEY_ID_CHARS]}
        with self._lock:
            waits = {scope: self._scopes[scope].record(names[scope], now) for scope in names}
        over = {scope: wait for scope, wait in waits.items() if wait > 0}
        if not over:
            return
        for scope in over:
            metrics.AUTH_THROTTLED.labels(scope).inc()
        raise ApiError(
            429,
            "throttled",
            "认证失败次数过多，请稍后再试",
            headers={"Retry-After": str(max(1, math.ceil(max(over.values()))))},
        )


class KeyStore:
    """API keys: creation, revocation, verification with a short cache, the bootstrap admin.

    The records live behind a ``KeyRepository`` (libs/common/keys/).
    """

    def __init__(self, repo: KeyRepository, clock: Clock) -> None:
        self.repo = repo
        self.clock = clock
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()

    def create(
        self,
        role: Role,
        name: str,
        township_code: str | None = None,
        hazards: tuple[str, ...] = (),
        key_id: str | None = None,
        key: str | None = None,
        department_code: str | None = None,
    ) -> tuple[dict[str, Any], str]:
        """Create a key; returns its record and the key itself (shown once, never stored)."""
        ident = key_id or secrets.token_hex(8)
        secret = key or new_key(ident)
        record = self._record(ident, name, role, township_code, hazards, secret)
        record["department_code"] = department_code
        self.repo.add_key(record)
        return record, secret

    def _record(
        self,
        ident: str,
        name: str,
        role: Role,
        township_code: str | None,
        hazards: tuple[str, ...],
        secret: str,
    ) -> dict[str, Any]:
        return {
            "_id": ident,
            "name": name,
            "role": str(role),
            "township_code": township_code,
            "hazards": list(hazards),
            "hash": hash_key(secret),
            "created_at": self.clock.now(),
            "revoked_at": None,
        }

    def revoke(self, key_id: str) -> bool:
        """Revoke a key; False if there is no such active key."""
        revoked = self.repo.revoke_key(key_id, self.clock.now())
        with self._lock:
            self._cache.clear()
        return revoked

    def revoke_keeping_an_admin(self, key_id: str) -> str:
        """Revoke a key unless it is the last active admin key: ``"revoked"``, ``"missing"``
        or ``"last_admin"`` (refused: nobody could manage keys any more)."""
        outcome = self.repo.revoke_key_keeping_an_admin(key_id, self.clock.now())
        with self._lock:
            self._cache.clear()
        return outcome

    def list(self) -> list[dict[str, Any]]:
        """Every key record, without hashes."""
        return self.repo.keys_by_creation()

    def cached(self, key: str) -> tuple[bool, Principal | None]:
        """(True, the principal or None) when the key was verified in the last few seconds;
        (False, None) when only the database can tell."""
        digest = hash_key(key)
        with self._lock:
            cached = self._cache.get(digest)
        if cached and time.monotonic() - cached[0] < CACHE_SECONDS:
            return True, cached[1]
        return False, None

    def verify(self, key: str, *, fresh: bool = False) -> Principal | None:
        """The principal a key belongs to, or None; ``fresh`` reads the database, not the cache."""
        if not fresh:
            hit, principal = self.cached(key)
            if hit:
                return principal
        digest = hash_key(key)
        now = time.monotonic()
        record = self.repo.key_by_id(key_id_of(key))
        principal = None
        if (
            record is not None
            and record.get("revoked_at") is None
            and hmac.compare_digest(record["hash"], digest)
        ):
            principal = Principal(
                key_id=record["_id"],
                name=record["name"],
                role=Role(record["role"]),
                township_code=record.get("township_code"),
                hazards=tuple(record.get("hazards") or ()),
                department_code=record.get("department_code"),
            )
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now, principal)
        return principal

    def bootstrap(self, configured_key: str, data_dir: Path) -> str | None:
        """Make sure an admin key exists; returns a newly generated key to print once, or None."""
        log = structlog.get_logger().bind(service="platform")
        if configured_key:
            existing = self.repo.key_by_id(BOOTSTRAP_KEY_ID)
            if existing is None or existing["hash"] != hash_key(configured_key):
                # Services starting together may race to write it; the repository lets the
                # last writer win without an error.
                self.repo.put_key(
                    self._record(
                        BOOTSTRAP_KEY_ID, "bootstrap admin", Role.ADMIN, None, (), configured_key
                    )
                )
            return None
        if self.repo.active_admin_exists():
            return None
        try:
            _, secret = self.create(Role.ADMIN, "bootstrap admin", key_id=BOOTSTRAP_KEY_ID)
        except KeyExistsError:
            return None
        data_dir.mkdir(parents=True, exist_ok=True)
        path = data_dir / BOOTSTRAP_KEY_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secret + "\n")
        os.chmod(path, 0o600)
        log.info("bootstrap_admin_key_written", path=str(path))
        return secret


def client_address(request: Request) -> str:
    """The caller's address, for throttling.

    Behind a trusted proxy this is the forwarded client address: the app rewrites the peer from
    ``X-Forwarded-For`` only when the peer is in ``YINGJI_FORWARDED_ALLOW_IPS``.
    """
    return request.client.host if request.client else "unknown"


def make_authenticator(
    keys: KeyStore, throttle: FailureThrottle
) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency that returns the caller or raises 401/429.

    It runs on the event loop: a key verified in the last few seconds is answered from the
    cache there, and only a database read goes to a worker thread (a plain function dependency
    would take a thread hop on every request).
    """

    async def authenticate(request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            # Only wrong keys count towards throttling: a missing one guesses nothing.
            raise ApiError(
                401,
                "unauthenticated",
                "请在请求头中提供 Authorization: Bearer <API 密钥>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        hit, principal = keys.cached(token.strip())
        if not hit:
            principal = await run_in_threadpool(keys.verify, token.strip())
        if principal is None:
            throttle.failed(client_address(request), key_id_of(token.strip()))
            raise ApiError(
                401,
                "unauthenticated",
                "API 密钥无效",
                headers={"WWW-Authenticate": "Bearer"},
            )
        request.state.principal = principal
        return principal

    return authenticate


def require_role(principal: Principal, *roles: Role) -> Principal:
    """403 unless the principal has one of ``roles``."""
    if principal.role not in roles:
        allowed = "、".join(sorted(ROLE_LABELS.get(str(r), str(r)) for r in roles))
        mine = ROLE_LABELS.get(str(principal.role), str(principal.role))
        raise ApiError(403, "forbidden_role", f"{mine}无权执行此操作（需要：{allowed}）")
    return principal

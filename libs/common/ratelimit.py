"""Request rate limits: a token bucket per API key (per client address without one).

Each caller gets ``burst`` tokens that refill at ``rate`` per second; a request takes one. A caller
out of tokens gets 429 with ``Retry-After`` and the uniform error body (code ``rate_limited``),
before authentication or any work. Probes and metrics are never limited. The limit is per process
(each replica counts on its own); a rate of 0 switches it off.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from libs.common import metrics
from libs.common.errors import error_body

EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class TokenBucketLimiter:
    """Token buckets by caller; thread-safe; memory bounded by ``max_callers``."""

    def __init__(
        self,
        rate: float,
        burst: float,
        clock: Callable[[], float] = time.monotonic,
        max_callers: int = 10_000,
    ) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self.clock = clock
        self.max_callers = max_callers
        self._buckets: dict[str, tuple[float, float]] = {}  # caller -> (tokens, updated)
        self._lock = threading.Lock()

    def take(self, caller: str) -> float:
        """Take a token: 0 when allowed, else the seconds until one is available."""
        now = self.clock()
        with self._lock:
            tokens, updated = self._buckets.get(caller, (self.burst, now))
            tokens = min(self.burst, tokens + (now - updated) * self.rate)
            if tokens >= 1.0:
                self._store(caller, tokens - 1.0, now)
                return 0.0
            self._store(caller, tokens, now)
            return (1.0 - tokens) / self.rate

    def _store(self, caller: str, tokens: float, now: float) -> None:
        if caller not in self._buckets and len(self._buckets) >= self.max_callers:
            # Forget callers whose buckets are full again (they lose nothing), oldest first.
            full_after = self.burst / self.rate
            for name, (_, updated) in list(self._buckets.items()):
                if now - updated >= full_after:
                    del self._buckets[name]
            if len(self._buckets) >= self.max_callers:
                self._buckets.pop(next(iter(self._buckets)))
        self._buckets[caller] = (tokens, now)


def caller_of(scope: Scope) -> str:
    """The API key (as a digest, never the key itself) or, without one, the client address."""
    for name, value in scope.get("headers") or []:
        if name == b"authorization":
            return "key:" + hashlib.sha256(value).hexdigest()[:32]
    client = scope.get("client")
    return "addr:" + (client[0] if client else "unknown")


class RateLimitMiddleware:
    """Refuses callers over their rate with 429, ``Retry-After`` and the uniform body."""

    def __init__(self, app: ASGIApp, limiter: TokenBucketLimiter, service: str) -> None:
        self.app = app
        self.limiter = limiter
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        wait = self.limiter.take(caller_of(scope))
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        metrics.HTTP_REJECTIONS.labels(self.service, "rate_limited").inc()
        body = json.dumps(error_body("rate_limited", "请求过于频繁，请稍后再试")).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(max(1, math.ceil(wait))).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

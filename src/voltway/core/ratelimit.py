"""Rate limits per API key, per user or per IP, declared per route; shared through Redis when it is set.

Built on the `limits` library (moving-window strategy: exact, atomic Lua on Redis). When Redis fails the
limiter falls back to per-process memory counters for `RETRY_AFTER` seconds, then tries Redis again.

    @router.post("/auth/token", dependencies=[Depends(rate_limit("10/minute", scope="ip", name="login"))])
    await check_rate("5/minute", key=f"login:{username}")      # imperative form, raises TooManyRequests
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Literal

import jwt
from fastapi import Request, Response
from limits import RateLimitItem, parse_many
from limits.errors import StorageError
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from voltway.core.errors import TooManyRequests

log = logging.getLogger(__name__)

Scope = Literal["ip", "key", "user", "auto"]
RETRY_AFTER = 3.0


class RateLimiter:
    """The process-wide limiter: Redis storage when configured, memory otherwise (and while Redis is away)."""

    def __init__(self) -> None:
        self.memory = MovingWindowRateLimiter(MemoryStorage())
        self.shared: MovingWindowRateLimiter | None = None
        self._storage: Storage | None = None
        self._down_until = 0.0

    def configure(self, *, redis_url: str | None, prefix: str = "voltway") -> None:
        self.memory = MovingWindowRateLimiter(MemoryStorage())
        self._down_until = 0.0
        self._storage = (
            RedisStorage(
                "async+" + redis_url, implementation="redispy", key_prefix=f"{prefix}:rl", wrap_exceptions=True,
                socket_timeout=0.5, socket_connect_timeout=0.5,
            )
            if redis_url
            else None
        )
        self.shared = MovingWindowRateLimiter(self._storage) if self._storage else None

    async def hit(self, items: list[RateLimitItem], *identity: str) -> dict[str, str]:
        """Count one request against every item; raise TooManyRequests when one is exceeded.

        Returns the RateLimit-* headers of the tightest item.
        """
        limiter = self.memory
        if self.shared is not None and time.monotonic() >= self._down_until:
            limiter = self.shared
        try:
            return await _hit(limiter, items, identity)
        except StorageError as exc:
            log.warning("redis rate-limit storage unavailable, memory only for %.0fs: %s", RETRY_AFTER, exc)
            self._down_until = time.monotonic() + RETRY_AFTER
            return await _hit(self.memory, items, identity)


async def _hit(limiter: MovingWindowRateLimiter, items: list[RateLimitItem], identity: tuple[str, ...]) -> dict[str, str]:
    tightest: dict[str, str] = {}
    tightest_remaining = math.inf
    for item in items:
        allowed = await limiter.hit(item, *identity)
        stats = await limiter.get_window_stats(item, *identity)
        reset = max(0, math.ceil(stats.reset_time - time.time()))
        headers = {
            "RateLimit-Limit": str(item.amount),
            "RateLimit-Remaining": str(stats.remaining),
            "RateLimit-Reset": str(reset),
        }
        if not allowed:
            raise TooManyRequests(
                f"rate limit exceeded: {item.amount} per {item.get_expiry()} s; retry in {max(1, reset)} s",
                details={"limit": str(item), "retry_after": max(1, reset)},
                headers={**headers, "Retry-After": str(max(1, reset))},
            )
        if stats.remaining < tightest_remaining:
            tightest, tightest_remaining = headers, stats.remaining
    return tightest


limiter = RateLimiter()


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:24]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _user_subject(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if not auth.lower().startswith("bearer "):
        return None
    try:
        claims = jwt.decode(
            auth[7:].strip(), request.app.state.settings.resolved_secret_key(), algorithms=["HS256"],
            options={"verify_aud": False},
        )
    except jwt.PyJWTError:
        return None
    subject = claims.get("sub")
    return str(subject) if subject is not None else None


def identify(request: Request, scope: Scope) -> str:
    """The counter identity for a request: `key:<hash>`, `user:<id>` or `ip:<addr>`."""
    if scope in ("key", "auto"):
        api_key = request.headers.get("x-api-key")
        if api_key:
            return "key:" + _digest(api_key)
    if scope in ("user", "auto"):
        subject = _user_subject(request)
        if subject is not None:
            return "user:" + subject
    return "ip:" + client_ip(request)


def rate_limit(limit: str, *, scope: Scope = "auto", name: str | None = None) -> Callable[..., Awaitable[None]]:
    """A route dependency enforcing `limit` (e.g. `"60/minute"`, `"10/second;500/hour"`) per `scope`.

    Keys and users without credentials fall back to the client IP. `name` groups routes under one counter
    (default: the route's path template).
    """
    items = parse_many(limit)

    async def dependency(request: Request, response: Response) -> None:
        route = request.scope.get("route")
        group = name or getattr(route, "path", request.url.path)
        headers = await limiter.hit(items, group, identify(request, scope))
        response.headers.update(headers)

    return dependency


async def check_rate(limit: str, *, key: str) -> dict[str, str]:
    """Count one attempt under an arbitrary `key` (e.g. `login:alice`); raises TooManyRequests when over."""
    return await limiter.hit(parse_many(limit), "custom", key)

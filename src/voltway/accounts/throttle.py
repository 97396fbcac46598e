"""Failed sign-in throttling: failures counted per email and per client address in a moving window.
Every password check goes through it: signing in, and the current password of a password change.

Built on the platform rate limiter (`core/ratelimit.py`): counters live in Redis when `REDIS_URL` is set, so
every worker process shares them, and in process memory otherwise. Only failures count; a successful
sign-in forgets the email's failures. The limits can be changed by name in `RATE_LIMITS`
(`{"login.email": "5/15 minutes", "login.address": "20/15 minutes"}` are the defaults).
"""

import hashlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

from voltway.core.ratelimit import check_rate, clear_rate, limiter, peek_rate

T = TypeVar("T")

DEFAULT_LIMITS = {"login.email": "5/15 minutes", "login.address": "20/15 minutes"}


def _limit(name: str) -> str:
    return limiter.overrides.get(name, DEFAULT_LIMITS[name])


def _keys(email: str, address: str) -> tuple[tuple[str, str], tuple[str, str]]:
    # Emails are hashed: counter keys (in Redis, in logs of its own) carry no personal data.
    digest = hashlib.sha256(email.encode()).hexdigest()[:24]
    return (f"login.email:{digest}", _limit("login.email")), (f"login.address:{address}", _limit("login.address"))


async def throttled(check: Callable[[], Awaitable[T]], *, email: str, address: str) -> T:
    """Run a password check under the throttle: TooManyRequests (with Retry-After) while the email or the
    address has used up its failures; a falsy answer counts as a failure, a truthy one forgets the email's."""
    pairs = _keys(email, address)
    for key, limit in pairs:
        await peek_rate(key, limit)
    result = await check()
    if result:
        await clear_rate(*pairs[0])
    else:
        for key, limit in pairs:
            await check_rate(key, limit)
    return result

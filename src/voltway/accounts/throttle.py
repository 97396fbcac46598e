"""Failed sign-in throttling: failures counted per email and per client address in a moving window.

Built on the platform rate limiter (`core/ratelimit.py`): counters live in Redis when `REDIS_URL` is set, so
every worker process shares them, and in process memory otherwise. Only failures count; a successful
sign-in forgets the email's failures. The limits can be changed by name in `RATE_LIMITS`
(`{"login.email": "5/15 minutes", "login.address": "20/15 minutes"}` are the defaults).
"""

import hashlib

from voltway.core.ratelimit import check_rate, clear_rate, limiter, peek_rate

DEFAULT_LIMITS = {"login.email": "5/15 minutes", "login.address": "20/15 minutes"}


def _limit(name: str) -> str:
    return limiter.overrides.get(name, DEFAULT_LIMITS[name])


def _keys(email: str, address: str) -> tuple[tuple[str, str], tuple[str, str]]:
    # Emails are hashed: counter keys (in Redis, in logs of its own) carry no personal data.
    digest = hashlib.sha256(email.encode()).hexdigest()[:24]
    return (f"login.email:{digest}", _limit("login.email")), (f"login.address:{address}", _limit("login.address"))


async def check_sign_in(*, email: str, address: str) -> None:
    """Raise TooManyRequests (with Retry-After) when the email or the address has used up its failures."""
    for key, limit in _keys(email, address):
        await peek_rate(key, limit)


async def sign_in_failed(*, email: str, address: str) -> None:
    for key, limit in _keys(email, address):
        await check_rate(key, limit)


async def sign_in_succeeded(*, email: str) -> None:
    key, limit = _keys(email, "")[0]
    await clear_rate(key, limit)

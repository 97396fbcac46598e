"""Driver credentials: argon2id password hashes and signed bearer tokens (JWT, HS256, with expiry and the
driver's token generation `ver`, see `User.token_version`).

Hashing runs on a small pool of its own (argon2 is deliberately slow and takes 64 MiB per hash: two at a time
bound the memory and leave the default thread pool to others); verifying a password for an unknown email
still checks a dummy hash, so the answer takes as long as for a known one.
"""

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import lru_cache
from typing import NamedTuple

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from voltway.core.db import utcnow
from voltway.settings import Settings

TOKEN_ALGORITHM = "HS256"
TOKEN_AUDIENCE = "voltway:driver"

_hasher = PasswordHasher()  # argon2id, 64 MiB, t=3, p=4 (RFC 9106 second recommendation)
_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="argon2")


async def _off_loop(work: Callable[[], str | bool]) -> str | bool:
    return await asyncio.get_running_loop().run_in_executor(_pool, work)


async def hash_password(password: str) -> str:
    return str(await _off_loop(lambda: _hasher.hash(password)))


@lru_cache
def _dummy_hash() -> str:
    return _hasher.hash("not a password anyone has")


async def verify_password(password: str, password_hash: str | None) -> bool:
    """True when `password` matches; with no hash (unknown user) a dummy hash is checked and False returned."""

    def check() -> bool:
        try:
            return _hasher.verify(password_hash or _dummy_hash(), password) and password_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    return bool(await _off_loop(check))


def create_access_token(settings: Settings, *, user_id: int, version: int) -> tuple[str, int]:
    """A signed token for the driver's token generation `version`, and its lifetime in seconds."""
    now = utcnow()
    ttl = timedelta(minutes=settings.token_ttl_minutes)
    claims = {"sub": str(user_id), "ver": version, "aud": TOKEN_AUDIENCE, "iat": now, "exp": now + ttl}
    return jwt.encode(claims, settings.resolved_secret_key(), algorithm=TOKEN_ALGORITHM), int(ttl.total_seconds())


class TokenSubject(NamedTuple):
    user_id: int
    version: int


def token_subject(settings: Settings, token: str) -> TokenSubject | None:
    """The driver id and token generation of a valid, unexpired token; None for anything else.

    A token without `ver` was issued before generations existed, that is in generation 0."""
    try:
        claims = jwt.decode(
            token,
            settings.resolved_secret_key(),
            algorithms=[TOKEN_ALGORITHM],
            audience=TOKEN_AUDIENCE,
            options={"require": ["sub", "exp", "aud"]},
        )
        return TokenSubject(int(claims["sub"]), int(claims.get("ver", 0)))
    except (jwt.InvalidTokenError, ValueError, TypeError):
        return None

"""Creating and checking API keys. The secret is shown once; only its hash is stored."""

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from voltway.accounts.models import ApiKey
from voltway.accounts.roles import Role
from voltway.core.db import utcnow
from voltway.core.pagination import as_utc

KEY_PREFIX = "vw_"
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_key(session: AsyncSession, *, role: Role, name: str | None = None) -> tuple[ApiKey, str]:
    """Store a new key and return it with its secret (the only time the secret exists in clear)."""
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(prefix=secret[: len(KEY_PREFIX) + 8], key_hash=hash_key(secret), role=role.value, name=name)
    session.add(key)
    await session.flush()
    return key, secret


async def find_active_key(session: AsyncSession, secret: str) -> ApiKey | None:
    """The key with this secret unless revoked. `last_used_at` is refreshed (with the request's transaction)
    at most once per LAST_USED_RESOLUTION, so that reads with a key do not each write to the database."""
    key = await session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(secret)))
    if key is None or key.revoked_at is not None:
        return None
    now = utcnow()
    if key.last_used_at is None or as_utc(key.last_used_at) < now - LAST_USED_RESOLUTION:
        key.last_used_at = now
    return key


async def list_keys(session: AsyncSession) -> list[ApiKey]:
    return list((await session.scalars(select(ApiKey).order_by(ApiKey.id))).all())


async def find_key(session: AsyncSession, *, ref: str) -> ApiKey | None:
    """A key by its id or its (unique enough) visible prefix; None when nothing or several match."""
    if ref.isdigit():
        return await session.get(ApiKey, int(ref))
    matches = (await session.scalars(select(ApiKey).where(ApiKey.prefix == ref))).all()
    return matches[0] if len(matches) == 1 else None


def revoke_key(key: ApiKey) -> ApiKey:
    """Idempotent: a revoked key keeps the time it was first revoked."""
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    return key

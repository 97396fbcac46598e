"""Role checks as FastAPI dependencies, used by every protected route.

Two kinds of credentials: API keys (`X-API-Key`, roles admin/operator/readonly) for integrations and
operators, and driver bearer tokens (`Authorization: Bearer ...` from `POST /api/v1/auth/token`).
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer

from voltway.accounts.keys import find_active_key
from voltway.accounts.models import ApiKey, User
from voltway.accounts.roles import Role
from voltway.accounts.security import token_subject
from voltway.core.db_dependencies import Session
from voltway.core.errors import Forbidden, Unauthorized
from voltway.core.logging import bind_log_context
from voltway.settings import Settings

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key (`voltway keys create`)")
bearer_token = OAuth2PasswordBearer(
    tokenUrl="/api/v1/auth/token", auto_error=False, description="A driver's token from /api/v1/auth/token"
)
BEARER_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


AppSettings = Annotated[Settings, Depends(get_app_settings)]


async def _key_with_role(session: Session, secret: str, allowed: set[str]) -> ApiKey:
    key = await find_active_key(session, secret)
    if key is None:
        raise Unauthorized("invalid or revoked API key")
    bind_log_context(key_id=key.id)
    if key.role not in allowed:
        raise Forbidden(f"this action needs one of the roles: {', '.join(sorted(allowed))}")
    return key


def require_roles(*roles: Role) -> Callable[..., Awaitable[ApiKey]]:
    allowed = {r.value for r in roles}

    async def dependency(session: Session, secret: Annotated[str | None, Security(api_key_header)]) -> ApiKey:
        if not secret:
            raise Unauthorized("an API key is required in the X-API-Key header")
        return await _key_with_role(session, secret, allowed)

    return dependency


OperatorKey = Annotated[ApiKey, Depends(require_roles(Role.operator, Role.admin))]
AdminKey = Annotated[ApiKey, Depends(require_roles(Role.admin))]
AnyKey = Annotated[ApiKey, Depends(require_roles(Role.readonly, Role.operator, Role.admin))]


async def _driver(session: Session, settings: Settings, token: str) -> User:
    """The token's driver, unless the token is invalid, expired or of an earlier generation (revoked)."""
    subject = token_subject(settings, token)
    user = await session.get(User, subject.user_id) if subject is not None else None
    if subject is None or user is None or user.token_version != subject.version:
        raise Unauthorized("invalid, expired or revoked token", headers=BEARER_CHALLENGE)
    bind_log_context(user_id=user.id)
    return user


async def current_driver(
    session: Session, settings: AppSettings, token: Annotated[str | None, Security(bearer_token)]
) -> User:
    if not token:
        raise Unauthorized("a driver's bearer token is required", headers=BEARER_CHALLENGE)
    return await _driver(session, settings, token)


CurrentDriver = Annotated[User, Depends(current_driver)]


@dataclass(frozen=True)
class Actor:
    """Who acts: a driver, or an operator/admin API key (exactly one is set)."""

    user: User | None = None
    key: ApiKey | None = None


async def driver_or_operator(
    session: Session,
    settings: AppSettings,
    token: Annotated[str | None, Security(bearer_token)],
    secret: Annotated[str | None, Security(api_key_header)],
) -> Actor:
    """An API key, when one is sent, must be operator or admin; otherwise a driver's token is needed."""
    if secret:
        return Actor(key=await _key_with_role(session, secret, {Role.operator.value, Role.admin.value}))
    if token:
        return Actor(user=await _driver(session, settings, token))
    raise Unauthorized("a driver's bearer token or an operator API key is required", headers=BEARER_CHALLENGE)


DriverOrOperator = Annotated[Actor, Depends(driver_or_operator)]

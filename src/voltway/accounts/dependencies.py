"""Role checks as FastAPI dependencies, used by every protected route."""

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Security
from fastapi.security import APIKeyHeader

from voltway.accounts.keys import find_active_key
from voltway.accounts.models import ApiKey, Role
from voltway.core.db import Session
from voltway.core.errors import Forbidden, Unauthorized

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key (`voltway keys create`)")


def require_roles(*roles: Role) -> Callable[..., Awaitable[ApiKey]]:
    allowed = {r.value for r in roles}

    async def dependency(session: Session, secret: Annotated[str | None, Security(api_key_header)]) -> ApiKey:
        if not secret:
            raise Unauthorized("an API key is required in the X-API-Key header")
        key = await find_active_key(session, secret)
        if key is None:
            raise Unauthorized("invalid or revoked API key")
        if key.role not in allowed:
            raise Forbidden(f"this action needs one of the roles: {', '.join(sorted(allowed))}")
        return key

    return dependency


OperatorKey = Annotated[ApiKey, Depends(require_roles(Role.operator, Role.admin))]
AdminKey = Annotated[ApiKey, Depends(require_roles(Role.admin))]
AnyKey = Annotated[ApiKey, Depends(require_roles(Role.readonly, Role.operator, Role.admin))]

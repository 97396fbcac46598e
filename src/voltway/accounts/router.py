"""Driver accounts (register, token, sign-out, password, profile, favorites) and the administrators' API key
endpoints."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from voltway.accounts import service
from voltway.accounts.dependencies import BEARER_CHALLENGE, AdminKey, AppSettings, CurrentDriver
from voltway.accounts.keys import create_key, find_key, list_keys, revoke_key
from voltway.accounts.schemas import (
    KeyIn,
    KeyOut,
    NewKeyOut,
    PasswordChangeIn,
    ProfilePatch,
    RegisterIn,
    TokenOut,
    UserOut,
)
from voltway.accounts.security import create_access_token, verify_password
from voltway.accounts.throttle import throttled
from voltway.core.db_dependencies import Session
from voltway.core.errors import ErrorResponse, NotFound, Unauthorized, error_responses
from voltway.core.pagination import Limit, Page
from voltway.core.ratelimit import client_ip, rate_limit
from voltway.settings import Settings
from voltway.stations.dependencies import StationId, ValidStation
from voltway.stations.schemas import StationOut

router = APIRouter(tags=["accounts"])


@router.post(
    "/auth/register",
    status_code=status.HTTP_201_CREATED,
    summary="Register a driver",
    description="Creates a driver account. The email is case-insensitive and must be new (else 409); "
    "the password needs 8-128 characters and is stored only as an argon2id hash. Limited per client "
    "address (`auth.register`, 20 per hour; 429 with `Retry-After` beyond).",
    responses=error_responses(409, 422, 429),
    dependencies=[Depends(rate_limit("auth.register", "20/hour", scope="ip"))],
)
async def register(data: RegisterIn, session: Session) -> UserOut:
    return UserOut.model_validate(await service.register(session, data=data))


@router.post(
    "/auth/token",
    summary="Sign in (OAuth2 password flow)",
    description="Form fields `username` (the email) and `password`; answers a signed bearer token with its "
    "lifetime. Failed attempts are throttled per email (5) and per client address (20) in a moving "
    "15-minute window (shared by all workers through Redis when configured): beyond that the answer is 429 "
    "with `Retry-After`; a successful sign-in forgets the email's failures.",
    responses=error_responses(401, 422, 429),
)
async def token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    request: Request,
    session: Session,
    settings: AppSettings,
) -> TokenOut:
    email = form.username.strip().lower()
    user = await throttled(
        lambda: service.authenticate(session, email=email, password=form.password),
        email=email,
        address=client_ip(request),
    )
    if user is None:
        raise Unauthorized("wrong email or password", headers=BEARER_CHALLENGE)
    return _token_for(settings, user_id=user.id, version=user.token_version)


def _token_for(settings: Settings, *, user_id: int, version: int) -> TokenOut:
    access_token, expires_in = create_access_token(settings, user_id=user_id, version=version)
    return TokenOut(access_token=access_token, expires_in=expires_in)


@router.post(
    "/auth/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Sign out everywhere",
    description="Revokes every token of the driver, on every device, this one included: from now on they are "
    "all answered 401. Signing in again gives a new token.",
    responses=error_responses(401),
)
async def logout(user: CurrentDriver, session: Session) -> None:
    await service.sign_out_everywhere(session, user=user)


@router.get(
    "/me",
    summary="The signed-in driver",
    description="The driver's profile, including the connector codes of their car.",
    responses=error_responses(401),
)
async def me(user: CurrentDriver) -> UserOut:
    return UserOut.model_validate(user)


@router.patch(
    "/me",
    summary="Update the driver's profile",
    description="Changes `display_name` and/or `car_connectors` (connector codes, used by recommendations).",
    responses=error_responses(401, 422),
)
async def update_me(patch: ProfilePatch, user: CurrentDriver, session: Session) -> UserOut:
    return UserOut.model_validate(await service.update_profile(session, user=user, patch=patch))


WRONG_PASSWORD_EXAMPLE: dict[str, Any] = {
    "code": service.WrongPassword.code,
    "message": service.WrongPassword.message_text,
    "details": {"field": service.WrongPassword.field},
}


@router.post(
    "/me/password",
    summary="Change the driver's password",
    description="Checks `current_password`, stores `new_password` (8-128 characters) as an argon2id hash and "
    "revokes every token of the driver, on every device; answers a new token so this client stays signed in. "
    "A wrong current password is 403 `wrong_password` and counts as a failed sign-in for the driver's email and "
    "the client address (the limits of `POST /auth/token`): beyond them the answer is 429 with `Retry-After`.",
    responses={
        **error_responses(401, 422, 429),
        403: {
            "model": ErrorResponse,
            "description": "`wrong_password`: the current password is not the driver's",
            "content": {"application/json": {"example": {"error": WRONG_PASSWORD_EXAMPLE}}},
        },
    },
)
async def change_password(
    data: PasswordChangeIn, user: CurrentDriver, request: Request, session: Session, settings: AppSettings
) -> TokenOut:
    if not await throttled(
        lambda: verify_password(data.current_password, user.password_hash),
        email=user.email,
        address=client_ip(request),
    ):
        raise service.WrongPassword()
    version = await service.change_password(session, user=user, new_password=data.new_password)
    return _token_for(settings, user_id=user.id, version=version)


# --------------------------------------------------------------------------------------- favorites
@router.get(
    "/me/favorites",
    summary="The driver's favorite stations",
    description="Saved stations as Station objects, most recently added station id first, paginated.",
    responses=error_responses(401, 422),
)
async def favorites(
    user: CurrentDriver, session: Session, cursor: str | None = None, limit: Annotated[Limit, Query()] = 50
) -> Page[StationOut]:
    items, next_cursor = await service.list_favorites(session, user=user, cursor=cursor, limit=limit)
    return Page[StationOut].model_validate({"items": items, "next_cursor": next_cursor})


@router.put(
    "/me/favorites/{station_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Save a station",
    description="Idempotent: saving a saved station again changes nothing.",
    responses=error_responses(401, 404),
)
async def add_favorite(user: CurrentDriver, station: ValidStation, session: Session) -> None:
    await service.add_favorite(session, user=user, station=station)


@router.delete(
    "/me/favorites/{station_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Forget a station",
    description="Idempotent: removing a station that is not saved changes nothing.",
    responses=error_responses(401),
)
async def remove_favorite(station_id: StationId, user: CurrentDriver, session: Session) -> None:
    await service.remove_favorite(session, user=user, station_id=station_id)


# ---------------------------------------------------------------------------------------- API keys
@router.get(
    "/admin/keys",
    summary="List API keys",
    description="Every key with its prefix, role and last use; never a secret. Admin only.",
    responses=error_responses(401, 403),
)
async def keys(_admin: AdminKey, session: Session) -> list[KeyOut]:
    return [KeyOut.model_validate(k) for k in await list_keys(session)]


@router.post(
    "/admin/keys",
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key",
    description="Answers the new key with its secret in `key`: shown this once, only its hash is stored. "
    "Admin only.",
    responses=error_responses(401, 403, 422),
)
async def new_key(data: KeyIn, _admin: AdminKey, session: Session) -> NewKeyOut:
    key, secret = await create_key(session, role=data.role, name=data.name)
    return NewKeyOut.model_validate({**KeyOut.model_validate(key).model_dump(), "key": secret})


@router.delete(
    "/admin/keys/{key_id}",
    summary="Revoke an API key",
    description="The key stops working at once; revoking a revoked key changes nothing. Admin only.",
    responses=error_responses(401, 403, 404),
)
async def revoke(key_id: int, _admin: AdminKey, session: Session) -> KeyOut:
    key = await find_key(session, ref=str(key_id))
    if key is None:
        raise NotFound(f"API key {key_id} does not exist")
    revoke_key(key)
    await session.flush()
    return KeyOut.model_validate(key)


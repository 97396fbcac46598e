"""Drivers (registration, sign-in, password, token generations, profile) and their favorite stations."""

from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from voltway.accounts.models import Favorite, User
from voltway.accounts.schemas import ProfilePatch, RegisterIn
from voltway.accounts.security import hash_password, verify_password
from voltway.core.db import utcnow
from voltway.core.errors import Conflict, Forbidden
from voltway.core.pagination import decode_cursor, page_of
from voltway.core.upsert import insert_ignore
from voltway.stations.models import Station
from voltway.stations.service import STATION_COLUMNS, stored_station_dicts


class EmailTaken(Conflict):
    code = "email_taken"


class WrongPassword(Forbidden):
    code = "wrong_password"
    message_text = "the current password is wrong"
    field = "current_password"

    def __init__(self) -> None:
        super().__init__(self.message_text, details={"field": self.field})


async def register(session: AsyncSession, *, data: RegisterIn) -> User:
    taken = EmailTaken("an account with this email already exists", details={"field": "email"})
    if await session.scalar(select(func.count()).select_from(User).where(User.email == data.email)):
        raise taken
    user = User(
        email=data.email,
        password_hash=await hash_password(data.password),
        display_name=data.display_name,
        car_connectors=[c.value for c in data.car_connectors],
        is_demo=False,
        created_at=utcnow(),
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError:  # registered concurrently; the request's transaction is rolled back
        raise taken from None
    return user


async def authenticate(session: AsyncSession, *, email: str, password: str) -> User | None:
    """The driver with these credentials, else None (in constant time whether the email exists or not)."""
    user = await session.scalar(select(User).where(User.email == email.strip().lower()))
    ok = await verify_password(password, user.password_hash if user else None)
    return user if ok else None


async def _next_token_generation(session: AsyncSession, *, user: User, **changes: Any) -> int | None:
    """Bump the driver's token generation (revoking every token issued so far), with other column `changes`, in
    one atomic UPDATE, so concurrent bumps each count; answers the new generation.

    With a new `password_hash` the row must still hold the hash the caller verified (`user.password_hash`):
    of two concurrent changes with the same current password only the first succeeds (None for the other)."""
    statement = update(User).where(User.id == user.id)
    if "password_hash" in changes:
        statement = statement.where(User.password_hash == user.password_hash)
    result = await session.execute(
        statement.values(token_version=User.token_version + 1, **changes).returning(User.token_version),
        execution_options={"synchronize_session": "fetch"},
    )
    return result.scalar_one_or_none()


async def change_password(session: AsyncSession, *, user: User, new_password: str) -> int:
    """Store the new password's hash and revoke every token; answers the new token generation. WrongPassword
    when the password changed since the caller verified it."""
    version = await _next_token_generation(session, user=user, password_hash=await hash_password(new_password))
    if version is None:
        raise WrongPassword()
    return version


async def sign_out_everywhere(session: AsyncSession, *, user: User) -> None:
    """Revoke every token of the driver."""
    await _next_token_generation(session, user=user)


async def update_profile(session: AsyncSession, *, user: User, patch: ProfilePatch) -> User:
    changes = patch.model_dump(mode="json", exclude_unset=True)
    if changes.get("car_connectors") is None:
        changes.pop("car_connectors", None)  # not nullable: an explicit null leaves the list as it is
    for field, value in changes.items():
        setattr(user, field, value)
    await session.flush()
    return user


# --------------------------------------------------------------------------------------- favorites
async def add_favorite(session: AsyncSession, *, user: User, station: Station) -> None:
    """Idempotent: saving a saved station changes nothing."""
    await insert_ignore(session, Favorite, {"user_id": user.id, "station_id": station.id, "created_at": utcnow()})


async def remove_favorite(session: AsyncSession, *, user: User, station_id: int) -> None:
    """Idempotent: removing a station that is not saved changes nothing."""
    await session.execute(delete(Favorite).where(Favorite.user_id == user.id, Favorite.station_id == station_id))


async def list_favorites(
    session: AsyncSession, *, user: User, cursor: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """The driver's saved stations as Station dicts, highest station id first."""
    params: dict[str, Any] = {"user_id": user.id, "limit": limit + 1}
    after = ""
    if cursor is not None:
        params["after"] = decode_cursor(cursor)
        after = "AND s.id < :after"
    rows = (
        await session.execute(
            text(
                f"SELECT {STATION_COLUMNS} FROM favorites f JOIN stations s ON s.id = f.station_id "
                f"WHERE f.user_id = :user_id {after} ORDER BY s.id DESC LIMIT :limit"
            ),
            params,
        )
    ).all()
    rows, next_cursor = page_of(rows, limit=limit, id_of=lambda row: row[0])
    return stored_station_dicts(rows), next_cursor

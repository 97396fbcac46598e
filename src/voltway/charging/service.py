"""Reservations and charging sessions.

Reservations: a window of at most `MAX_RESERVATION` on one connector, starting no earlier than
`START_GRACE` ago and no later than `MAX_AHEAD` from now. Two active reservations of a connector never
overlap: the connector row is locked (`core/locking.py`: FOR UPDATE on PostgreSQL, BEGIN IMMEDIATE on SQLite)
before the overlap check, and on PostgreSQL the exclusion constraint `ex_reservations_no_overlap` backs it.

Sessions: one running session per connector (locked the same way, backed by a partial unique index); the
connector is `occupied` while it runs. Cost when it stops, from the station's price:
per_kwh * energy + per_minute * minutes + per_session (minutes exact, not rounded up), rounded half-up to
cents;
0 when the price says free; null when the station has no readable price.
"""

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from voltway.accounts.dependencies import Actor
from voltway.accounts.models import User
from voltway.charging.models import ChargingSession, Reservation, ReservationStatus, SessionStatus
from voltway.charging.schemas import ReservationIn, SessionIn
from voltway.charging.status import record_status_change
from voltway.core.db import utcnow
from voltway.core.errors import Conflict, InvalidInput, NotFound
from voltway.core.locking import lock_row
from voltway.core.pagination import as_utc, keyset, page_of
from voltway.stations.models import Connector, Station
from voltway.stations.schemas import StationStatus
from voltway.stations.service import get_station

MAX_RESERVATION = timedelta(hours=4)
START_GRACE = timedelta(minutes=5)
MAX_AHEAD = timedelta(days=90)
CENT = Decimal("0.01")
UNUSABLE = {StationStatus.out_of_service.value, StationStatus.removed.value, StationStatus.planned.value}


def _bad(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", details=[{"field": field, "in": "body", "message": message}])


async def _usable_connector(session: AsyncSession, *, station_id: int, connector_id: int) -> Station:
    """The station, after checking the connector is one of its connectors and that both can be used;
    then the connector row is locked until the transaction ends."""
    station = await get_station(session, station_id=station_id)
    connector = next((c for c in station.connectors if c.id == connector_id), None)
    if connector is None:
        raise _bad("connector_id", f"not a connector of station {station_id}")
    await lock_row(session, Connector.__table__, connector_id)
    if station.status in UNUSABLE:
        raise Conflict(f"station {station_id} is {station.status}", details={"status": station.status})
    return station


def _window(value: datetime) -> str:
    return as_utc(value).isoformat()


# ------------------------------------------------------------------------------------- reservations
async def reserve(session: AsyncSession, *, user: User, data: ReservationIn) -> Reservation:
    starts_at, ends_at = data.starts_at.astimezone(UTC), data.ends_at.astimezone(UTC)
    now = utcnow()
    if ends_at <= starts_at:
        raise _bad("ends_at", "must be after starts_at")
    if ends_at - starts_at > MAX_RESERVATION:
        raise _bad("ends_at", f"a reservation lasts at most {MAX_RESERVATION.total_seconds() / 3600:g} hours")
    if starts_at < now - START_GRACE:
        raise _bad("starts_at", "is in the past")
    if starts_at > now + MAX_AHEAD:
        raise _bad("starts_at", f"is more than {MAX_AHEAD.days} days ahead")
    await _usable_connector(session, station_id=data.station_id, connector_id=data.connector_id)
    clash = await session.scalar(
        select(Reservation)
        .where(
            Reservation.connector_id == data.connector_id,
            Reservation.status == ReservationStatus.active.value,
            Reservation.starts_at < ends_at,
            Reservation.ends_at > starts_at,
        )
        .limit(1)
    )
    if clash is not None:
        raise Conflict(
            "the connector is already reserved in this window",
            details={"conflicting": {"starts_at": _window(clash.starts_at), "ends_at": _window(clash.ends_at)}},
        )
    reservation = Reservation(
        user_id=user.id,
        station_id=data.station_id,
        connector_id=data.connector_id,
        starts_at=starts_at,
        ends_at=ends_at,
        status=ReservationStatus.active.value,
        created_at=now,
    )
    session.add(reservation)
    try:
        await session.flush()
    except IntegrityError as exc:  # the exclusion constraint: only if a writer bypassed the lock
        raise Conflict("the connector is already reserved in this window") from exc
    return reservation


async def own_reservation(session: AsyncSession, *, user: User, reservation_id: int) -> Reservation:
    """The driver's reservation; another driver's is reported as missing."""
    reservation = await session.get(Reservation, reservation_id)
    if reservation is None or reservation.user_id != user.id:
        raise NotFound(f"reservation {reservation_id} does not exist")
    return reservation


async def cancel_reservation(session: AsyncSession, *, user: User, reservation_id: int) -> Reservation:
    """Idempotent: cancelling a cancelled reservation changes nothing."""
    reservation = await own_reservation(session, user=user, reservation_id=reservation_id)
    reservation.status = ReservationStatus.cancelled.value
    await session.flush()
    return reservation


async def list_reservations(
    session: AsyncSession, *, user: User, cursor: str | None, limit: int
) -> tuple[list[Reservation], str | None]:
    """Newest first."""
    query = select(Reservation).where(Reservation.user_id == user.id)
    rows = (await session.scalars(keyset(query, Reservation.id, cursor=cursor, limit=limit))).all()
    return page_of(rows, limit=limit, id_of=lambda r: r.id)


# ----------------------------------------------------------------------------------------- sessions
async def start_session(session: AsyncSession, *, actor: Actor, data: SessionIn) -> ChargingSession:
    await _usable_connector(session, station_id=data.station_id, connector_id=data.connector_id)
    running = await session.scalar(
        select(ChargingSession.id).where(
            ChargingSession.connector_id == data.connector_id, ChargingSession.status == SessionStatus.active.value
        )
    )
    if running is not None:
        raise Conflict("a session is already running on this connector", details={"connector_id": data.connector_id})
    now = utcnow()
    if actor.user is not None:
        # A driver cannot take a connector someone else has reserved for now; operators can (they run it).
        held = await session.scalar(
            select(Reservation).where(
                Reservation.connector_id == data.connector_id,
                Reservation.status == ReservationStatus.active.value,
                Reservation.starts_at <= now,
                Reservation.ends_at > now,
                Reservation.user_id != actor.user.id,
            )
        )
        if held is not None:
            raise Conflict(
                "the connector is reserved by another driver",
                details={"conflicting": {"starts_at": _window(held.starts_at), "ends_at": _window(held.ends_at)}},
            )
    charge = ChargingSession(
        user_id=actor.user.id if actor.user else None,
        api_key_id=actor.key.id if actor.key else None,
        station_id=data.station_id,
        connector_id=data.connector_id,
        started_at=now,
        status=SessionStatus.active.value,
    )
    session.add(charge)
    try:
        await session.flush()
    except IntegrityError as exc:  # the partial unique index: only if a writer bypassed the lock
        raise Conflict("a session is already running on this connector") from exc
    await record_status_change(
        session, station_id=data.station_id, connector_id=data.connector_id, status="occupied", source="session"
    )
    return charge


def session_cost(price: dict[str, Any] | None, *, energy_kwh: float, minutes: float) -> tuple[float | None, str | None]:
    """The cost and currency of a charge at `price` (the station's price dict)."""
    if not price:
        return None, None
    currency = price.get("currency")
    if price.get("free"):
        return 0.0, currency
    parts = (price.get("per_kwh"), price.get("per_minute"), price.get("per_session"))
    if all(p is None for p in parts):
        return None, None
    # Decimal arithmetic on the decimal values as written, rounded half-up to cents like a till would.
    per_kwh, per_minute, per_session = (Decimal(str(p or 0)) for p in parts)
    cost = per_kwh * Decimal(str(energy_kwh)) + per_minute * Decimal(str(minutes)) + per_session
    return float(cost.quantize(CENT, rounding=ROUND_HALF_UP)), currency


def _visible(query: Select[Any], actor: Actor) -> Select[Any]:
    """Drivers see their own sessions; operator and admin keys see all."""
    return query.where(ChargingSession.user_id == actor.user.id) if actor.user is not None else query


async def get_session(session: AsyncSession, *, actor: Actor, session_id: int, lock: bool = False) -> ChargingSession:
    if lock:
        await lock_row(session, ChargingSession.__table__, session_id)
    query = _visible(select(ChargingSession).where(ChargingSession.id == session_id), actor)
    charge = await session.scalar(query.execution_options(populate_existing=True))
    if charge is None:
        raise NotFound(f"session {session_id} does not exist")
    return charge


async def stop_session(session: AsyncSession, *, actor: Actor, session_id: int, energy_kwh: float) -> ChargingSession:
    charge = await get_session(session, actor=actor, session_id=session_id, lock=True)
    if charge.status != SessionStatus.active.value:
        raise Conflict(f"session {session_id} has already stopped")
    now = utcnow()
    station = await get_station(session, station_id=charge.station_id)
    minutes = (now - as_utc(charge.started_at)).total_seconds() / 60
    charge.cost, charge.currency = session_cost(station.price, energy_kwh=energy_kwh, minutes=minutes)
    charge.energy_kwh, charge.ended_at, charge.status = energy_kwh, now, SessionStatus.completed.value
    await session.flush()
    if charge.connector_id is not None:
        connector = await session.get(Connector, charge.connector_id, populate_existing=True)
        if connector is not None and connector.status == StationStatus.occupied.value:
            # Only undo our own mark: an operator may have set the connector out of service meanwhile.
            await record_status_change(
                session, station_id=charge.station_id, connector_id=charge.connector_id, status="available",
                source="session",
            )
    return charge


async def list_sessions(
    session: AsyncSession, *, actor: Actor, station_id: int | None, cursor: str | None, limit: int
) -> tuple[list[ChargingSession], str | None]:
    """Newest first; optionally of one station."""
    query = _visible(select(ChargingSession), actor)
    if station_id is not None:
        query = query.where(ChargingSession.station_id == station_id)
    rows = (await session.scalars(keyset(query, ChargingSession.id, cursor=cursor, limit=limit))).all()
    return page_of(rows, limit=limit, id_of=lambda s: s.id)

"""Reservations (drivers) and charging sessions (drivers, or operator/admin keys)."""

from typing import Annotated

from fastapi import APIRouter, Query, status

from voltway.accounts.dependencies import CurrentDriver, DriverOrOperator
from voltway.charging import service
from voltway.charging.schemas import ReservationIn, ReservationOut, SessionIn, SessionOut, SessionStop
from voltway.core.cache import invalidate_after_commit
from voltway.core.db_dependencies import Session
from voltway.core.errors import error_responses
from voltway.core.pagination import Limit, Page

router = APIRouter(tags=["charging"])
STATIONS_CACHE = "stations"  # the cache namespace of station answers (stations/router.py)

WHO = "A driver's bearer token, or an operator/admin API key"


@router.post(
    "/reservations",
    status_code=status.HTTP_201_CREATED,
    summary="Reserve a connector",
    description="Holds a connector of a station for a window given in ISO 8601 with an offset. The window "
    "must end after it starts, last at most 4 hours, start no more than 5 minutes ago and at most 90 days "
    "ahead (else 422). Overlapping an active reservation of the same connector is 409, with the conflicting "
    "window in `details.conflicting`. Driver only.",
    responses=error_responses(401, 404, 409, 422),
)
async def reserve(data: ReservationIn, user: CurrentDriver, session: Session) -> ReservationOut:
    return ReservationOut.model_validate(await service.reserve(session, user=user, data=data))


@router.get(
    "/reservations",
    summary="My reservations",
    description="The driver's reservations (active and cancelled), newest first, paginated.",
    responses=error_responses(401, 422),
)
async def reservations(
    user: CurrentDriver, session: Session, cursor: str | None = None, limit: Annotated[Limit, Query()] = 50
) -> Page[ReservationOut]:
    items, next_cursor = await service.list_reservations(session, user=user, cursor=cursor, limit=limit)
    return Page[ReservationOut](items=[ReservationOut.model_validate(r) for r in items], next_cursor=next_cursor)


@router.get(
    "/reservations/{reservation_id}",
    summary="One of my reservations",
    description="Another driver's reservation is 404.",
    responses=error_responses(401, 404),
)
async def reservation(reservation_id: int, user: CurrentDriver, session: Session) -> ReservationOut:
    return ReservationOut.model_validate(
        await service.own_reservation(session, user=user, reservation_id=reservation_id)
    )


@router.post(
    "/reservations/{reservation_id}/cancel",
    summary="Cancel a reservation",
    description="Frees the window; cancelling again changes nothing. Another driver's reservation is 404.",
    responses=error_responses(401, 404),
)
async def cancel(reservation_id: int, user: CurrentDriver, session: Session) -> ReservationOut:
    return ReservationOut.model_validate(
        await service.cancel_reservation(session, user=user, reservation_id=reservation_id)
    )


@router.post(
    "/sessions",
    status_code=status.HTTP_201_CREATED,
    summary="Start charging",
    description=f"Starts a session on a connector, which becomes `occupied`. {WHO}. One running session per "
    "connector (409); a connector reserved by another driver for now is 409 for drivers; a station that is "
    "out of service, planned or removed is 409.",
    responses=error_responses(401, 403, 404, 409, 422),
)
async def start(data: SessionIn, actor: DriverOrOperator, session: Session) -> SessionOut:
    charge = SessionOut.model_validate(await service.start_session(session, actor=actor, data=data))
    await invalidate_after_commit(session, STATIONS_CACHE)  # cached station answers carry connector status
    return charge


@router.post(
    "/sessions/{session_id}/stop",
    summary="Stop charging",
    description="Ends the session with the energy delivered; the cost follows from the station's price "
    "(per kWh, per minute, per session; 0 when free; null when unknown) and the connector is `available` "
    f"again. {WHO}; drivers can stop only their own sessions (else 404). Stopping twice is 409.",
    responses=error_responses(401, 403, 404, 409, 422),
)
async def stop(session_id: int, data: SessionStop, actor: DriverOrOperator, session: Session) -> SessionOut:
    charge = SessionOut.model_validate(
        await service.stop_session(session, actor=actor, session_id=session_id, energy_kwh=data.energy_kwh)
    )
    await invalidate_after_commit(session, STATIONS_CACHE)
    return charge


@router.get(
    "/sessions",
    summary="Charging sessions",
    description=f"Newest first, paginated, optionally of one station. {WHO}: drivers see their own sessions, "
    "operator and admin keys all of them.",
    responses=error_responses(401, 403, 422),
)
async def sessions(
    actor: DriverOrOperator,
    session: Session,
    station_id: int | None = None,
    cursor: str | None = None,
    limit: Annotated[Limit, Query()] = 50,
) -> Page[SessionOut]:
    items, next_cursor = await service.list_sessions(
        session, actor=actor, station_id=station_id, cursor=cursor, limit=limit
    )
    return Page[SessionOut](items=[SessionOut.model_validate(s) for s in items], next_cursor=next_cursor)


@router.get(
    "/sessions/{session_id}",
    summary="One charging session",
    description=f"{WHO}; another driver's session is 404 for a driver.",
    responses=error_responses(401, 403, 404),
)
async def one_session(session_id: int, actor: DriverOrOperator, session: Session) -> SessionOut:
    return SessionOut.model_validate(await service.get_session(session, actor=actor, session_id=session_id))

"""Operator analytics endpoints (operator/admin API keys). Every figure is aggregated in the database."""

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query as Q, Security

from voltway.accounts.dependencies import AppSettings, OperatorKey, bearer_token, current_driver
from voltway.accounts.models import User
from voltway.analytics import queries
from voltway.analytics.recommendations import recommend
from voltway.analytics.facts import Scope
from voltway.analytics.queries import Query
from voltway.analytics.schemas import (
    PeakDaysOut,
    PeakHoursOut,
    PopularOut,
    RatingsOut,
    RecommendationsOut,
    RevenueOut,
    TrendsOut,
    UtilizationOut,
)
from voltway.analytics.window import MAX_DAYS, resolve_window
from voltway.core.db import utcnow
from voltway.core.db_dependencies import DB, Session
from voltway.core.errors import InvalidInput, error_responses

router = APIRouter(prefix="/analytics", tags=["analytics"])
me_router = APIRouter(prefix="/me", tags=["recommendations"])

ERRORS = error_responses(401, 403, 422)


def parse_bbox(value: str | None) -> tuple[float, float, float, float] | None:
    if value is None:
        return None
    try:
        min_lon, min_lat, max_lon, max_lat = (float(v) for v in value.split(","))
    except ValueError:
        min_lon = min_lat = max_lon = max_lat = float("nan")
    valid = (
        -180 <= min_lon <= max_lon <= 180 and -90 <= min_lat <= max_lat <= 90  # also False for NaN
    )
    if not valid:
        raise InvalidInput(
            "bbox must be minLon,minLat,maxLon,maxLat with min <= max",
            details=[{"field": "bbox", "in": "query", "message": "invalid bounding box"}],
        )
    return min_lon, min_lat, max_lon, max_lat


class Filters:
    """The filters every analytics endpoint takes."""

    def __init__(
        self,
        from_: Annotated[datetime | None, Q(alias="from", description="Window start (ISO 8601; naive = UTC)")] = None,
        to: Annotated[datetime | None, Q(description="Window end (ISO 8601), default now")] = None,
        days: Annotated[int | None, Q(ge=1, le=MAX_DAYS, description="The last N days up to `to` (default 30)")] = None,
        station_id: Annotated[int | None, Q(ge=1)] = None,
        operator: Annotated[str | None, Q(min_length=1, max_length=255)] = None,
        country: Annotated[str | None, Q(min_length=2, max_length=2, pattern="^[A-Za-z]{2}$")] = None,
        bbox: Annotated[str | None, Q(description="minLon,minLat,maxLon,maxLat")] = None,
        tz: Annotated[str, Q(max_length=64, description="IANA time zone for hour/day buckets")] = "UTC",
        rollups: Annotated[
            bool, Q(description="Read the hourly rollups for closed hours (false: raw sessions only)")
        ] = True,
    ) -> None:
        self.from_, self.to, self.days, self.tz, self.rollups = from_, to, days, tz, rollups
        self.scope = Scope(
            station_id=station_id,
            operator=operator,
            country=country.upper() if country else None,
            bbox=parse_bbox(bbox),
        )
        self.explicit_window = from_ is not None or to is not None or days is not None

    def query(self) -> Query:
        window = resolve_window(from_=self.from_, to=self.to, days=self.days, tz=self.tz, now=utcnow())
        return Query(self.scope, window, self.rollups)


FiltersDep = Annotated[Filters, Depends()]
Limit = Annotated[int, Q(ge=1, le=500)]


@router.get(
    "/popular",
    response_model=PopularOut,
    summary="Most used stations",
    description="The top stations by sessions, energy (kWh) or revenue (in `currency`) over the window.",
    responses=ERRORS,
)
async def popular(
    _key: OperatorKey,
    session: Session,
    filters: FiltersDep,
    by: Literal["sessions", "energy", "revenue"] = "sessions",
    currency: Annotated[str, Q(min_length=3, max_length=3, description="Currency ranked by for by=revenue")] = "EUR",
    limit: Limit = 10,
) -> dict[str, Any]:
    return await queries.popular(session, q=filters.query(), by=by, currency=currency.upper(), limit=limit)


@router.get(
    "/peak-hours",
    response_model=PeakHoursOut,
    summary="Activity by hour of day",
    description="24 local-hour buckets: sessions started, and mean sessions in progress / occupancy.",
    responses=ERRORS,
)
async def peak_hours(_key: OperatorKey, session: Session, filters: FiltersDep) -> dict[str, Any]:
    return await queries.peak_hours(session, q=filters.query())


@router.get(
    "/peak-days",
    response_model=PeakDaysOut,
    summary="Activity by day of week",
    description="7 local weekday buckets (0 = Monday): sessions started, and mean sessions in progress / occupancy.",
    responses=ERRORS,
)
async def peak_days(_key: OperatorKey, session: Session, filters: FiltersDep) -> dict[str, Any]:
    return await queries.peak_days(session, q=filters.query())


@router.get(
    "/trends",
    response_model=TrendsOut,
    summary="Daily or weekly trends",
    description="Sessions, energy, revenue and unique drivers per local day or week, with the totals compared "
    "to the previous period of the same length.",
    responses=ERRORS,
)
async def trends(
    _key: OperatorKey, session: Session, filters: FiltersDep, interval: Literal["day", "week"] = "day"
) -> dict[str, Any]:
    return await queries.trends(session, q=filters.query(), interval=interval)


@router.get(
    "/revenue",
    response_model=RevenueOut,
    summary="Revenue",
    description="Revenue (per currency), sessions and energy grouped by local day, station or operator.",
    responses=ERRORS,
)
async def revenue(
    _key: OperatorKey,
    session: Session,
    filters: FiltersDep,
    group_by: Literal["day", "station", "operator"] = "day",
    limit: Limit = 100,
) -> dict[str, Any]:
    return await queries.revenue(session, q=filters.query(), group_by=group_by, limit=limit)


@router.get(
    "/utilization",
    response_model=UtilizationOut,
    summary="Station utilization",
    description="Occupied time / available time per station (available: connectors x window, less the time the "
    "status history shows out of service, removed or planned), highest first.",
    responses=ERRORS,
)
async def utilization(_key: OperatorKey, session: Session, filters: FiltersDep, limit: Limit = 50) -> dict[str, Any]:
    return await queries.utilization(session, q=filters.query(), limit=limit)


@router.get(
    "/ratings",
    response_model=RatingsOut,
    summary="Rating statistics",
    description="Average, count and 1-5 distribution of reviews per station and per operator; all reviews, or "
    "those updated in the window when `from`/`to`/`days` is given.",
    responses=ERRORS,
)
async def ratings(_key: OperatorKey, session: Session, filters: FiltersDep, limit: Limit = 50) -> dict[str, Any]:
    return await queries.ratings(session, q=filters.query(), windowed=filters.explicit_window, limit=limit)


async def optional_driver(
    session: Session, settings: AppSettings, token: Annotated[str | None, Security(bearer_token)]
) -> User | None:
    """The driver of a bearer token when one is sent (an invalid one is 401), else None (anonymous)."""
    return await current_driver(session, settings, token) if token else None


@me_router.get(
    "/recommendations",
    response_model=RecommendationsOut,
    summary="Recommended stations nearby",
    description="Nearby stations ranked for the driver of the bearer token (car connectors, favorites, history) "
    "or, without a token, for anyone; each with its score and reasons. The scoring is documented in "
    "`analytics/recommendations.py` and the README.",
    responses=error_responses(401, 422),
)
async def recommendations(
    session: Session,
    db: DB,
    user: Annotated[User | None, Depends(optional_driver)],
    lat: Annotated[float, Q(ge=-90, le=90)],
    lon: Annotated[float, Q(ge=-180, le=180)],
    limit: Annotated[int, Q(ge=1, le=50)] = 10,
) -> dict[str, Any]:
    return await recommend(session, db, lat=lat, lon=lon, limit=limit, user=user)

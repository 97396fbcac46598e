"""Reviews (with the station's exact rating) and check-ins (with the reliability score).

Rating consistency: every review write first locks the station row (`core/locking.py`), then recomputes
`rating_average` and `rating_count` from the reviews table in one UPDATE in the same transaction, so
concurrent reviews of one station queue up and each recomputation sees all earlier commits.

Reliability: drivers trust recent experience more than old stars. The score is the share of successful
check-ins weighted by age, w = 0.5 ** (age_days / 30) (half-life 30 days), over the last 365 days.
"Could not charge" and "broken" reports count as failures until an operator resolves them; resolved reports
no longer count. `reliability_of` computes it for many stations in one statement (the recommendations use it
for all their candidates); the single-station `reliability` is that function with one id.
"""

from datetime import timedelta
from typing import NamedTuple

from sqlalchemy import Float, cast, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from voltway.accounts.models import ApiKey, User
from voltway.core.db import Database, stored_time, utcnow
from voltway.core.errors import Conflict, InvalidInput, NotFound
from voltway.core.locking import lock_row
from voltway.core.pagination import keyset, page_of
from voltway.reviews.models import Checkin, CheckinOutcome, Review
from voltway.reviews.schemas import CheckinIn, CheckinOut, Reliability, ReviewIn, ReviewOut
from voltway.stations.models import Station
from voltway.stations.service import StationNotFound

HALF_LIFE_DAYS = 30.0
RELIABILITY_WINDOW_DAYS = 365
RECENT_CHECKINS = 10


async def _lock_station(session: AsyncSession, station_id: int) -> None:
    if not await lock_row(session, Station.__table__, station_id):  # deleted since the request looked it up
        raise StationNotFound(f"station {station_id} does not exist", details={"station_id": station_id})


async def _recompute_rating(session: AsyncSession, station_id: int) -> None:
    of_station = Review.station_id == station_id
    await session.execute(
        update(Station)
        .where(Station.id == station_id)
        .values(
            # SUM / COUNT in floating point: exactly the average a client computes from the ratings.
            rating_average=select(cast(func.sum(Review.rating), Float) / func.count()).where(of_station)
            .scalar_subquery(),
            rating_count=select(func.count()).where(of_station).scalar_subquery(),
        )
        .execution_options(synchronize_session=False)
    )


def _review_out(review: Review, author: str | None) -> ReviewOut:
    return ReviewOut(
        id=review.id,
        station_id=review.station_id,
        user_id=review.user_id,
        author=author,
        rating=review.rating,
        comment=review.comment,
        created_at=review.created_at,
        updated_at=review.updated_at,
    )


async def post_review(
    session: AsyncSession, *, user: User, station: Station, data: ReviewIn
) -> tuple[ReviewOut, bool]:
    """Create the driver's review of the station, or update it if there is one; True when created."""
    station_id = station.id
    await _lock_station(session, station_id)
    review = await session.scalar(select(Review).where(Review.user_id == user.id, Review.station_id == station_id))
    now = utcnow()
    created = review is None
    if review is None:
        review = Review(user_id=user.id, station_id=station_id, created_at=now)
        session.add(review)
    review.rating, review.comment, review.updated_at = data.rating, data.comment, now
    await session.flush()
    await _recompute_rating(session, station_id)
    return _review_out(review, user.display_name), created


async def delete_own_review(session: AsyncSession, *, user: User, station: Station) -> None:
    station_id = station.id
    await _lock_station(session, station_id)
    result = await session.execute(delete(Review).where(Review.user_id == user.id, Review.station_id == station_id))
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFound("you have not reviewed this station", details={"station_id": station_id})
    await _recompute_rating(session, station_id)


async def list_reviews(
    session: AsyncSession, *, station: Station, cursor: str | None, limit: int
) -> tuple[list[ReviewOut], str | None]:
    """Newest first."""
    query = select(Review, User.display_name).join(User, User.id == Review.user_id).where(
        Review.station_id == station.id
    )
    rows = (await session.execute(keyset(query, Review.id, cursor=cursor, limit=limit))).all()
    items, next_cursor = page_of(rows, limit=limit, id_of=lambda row: row[0].id)
    return [_review_out(review, author) for review, author in items], next_cursor


# ---------------------------------------------------------------------------------------- check-ins
async def create_checkin(session: AsyncSession, *, user: User, station: Station, data: CheckinIn) -> Checkin:
    if data.connector_id is not None and data.connector_id not in {c.id for c in station.connectors}:
        raise InvalidInput(
            f"connector {data.connector_id} is not a connector of station {station.id}",
            details=[{"field": "connector_id", "in": "body", "message": "not a connector of this station"}],
        )
    checkin = Checkin(
        user_id=user.id,
        station_id=station.id,
        connector_id=data.connector_id,
        outcome=data.outcome.value,
        comment=data.comment,
        created_at=utcnow(),
    )
    session.add(checkin)
    await session.flush()
    return checkin


async def list_checkins(
    session: AsyncSession, *, station: Station, cursor: str | None, limit: int
) -> tuple[list[Checkin], str | None]:
    """Newest first."""
    query = keyset(select(Checkin).where(Checkin.station_id == station.id), Checkin.id, cursor=cursor, limit=limit)
    rows = (await session.scalars(query)).all()
    return page_of(rows, limit=limit, id_of=lambda c: c.id)


async def resolve_checkin(session: AsyncSession, *, checkin_id: int, key: ApiKey) -> Checkin:
    """Mark a failure report as dealt with; resolving it again keeps the first resolution."""
    checkin = await session.get(Checkin, checkin_id)
    if checkin is None:
        raise NotFound(f"check-in {checkin_id} does not exist")
    if checkin.outcome == CheckinOutcome.charged_fine:
        raise Conflict("only failure reports (could_not_charge, broken) can be resolved")
    if checkin.resolved_at is None:
        checkin.resolved_at = utcnow()
        checkin.resolved_by_key_id = key.id
        await session.flush()
    return checkin


# SQLite keeps UTC timestamps as text in SQLAlchemy's format (core.db.stored_time); julianday() reads them as days.
_AGE_DAYS = {
    "sqlite": "(julianday(:now) - julianday(created_at))",
    # Double precision: EXTRACT answers numeric, and POWER over numeric is many times slower.
    "postgresql": "(CAST(EXTRACT(EPOCH FROM CAST(:now AS TIMESTAMPTZ) - created_at) AS DOUBLE PRECISION) / 86400)",
}


class ReliabilityTotals(NamedTuple):
    score: float
    weight: float
    count: int


async def reliability_of(db: Database, station_ids: list[int]) -> dict[int, ReliabilityTotals]:
    """The reliability of many stations in one statement (the ids are a single array parameter); stations
    without a counted check-in are left out (their score is unknown)."""
    if not station_ids:
        return {}
    now = utcnow()
    moments = {
        name: stored_time(moment, sqlite=db.is_sqlite)
        for name, moment in (("now", now), ("since", now - timedelta(days=RELIABILITY_WINDOW_DAYS)))
    }
    among, params = db.one_of("station_id", station_ids)
    weight = f"POWER(0.5, {_AGE_DAYS[db.dialect]} / {HALF_LIFE_DAYS})"
    # The weights of successes and of failures apart: each row's weight is computed once, not twice.
    rows = await db.fetch(
        f"SELECT station_id, SUM(CASE WHEN outcome = :fine THEN {weight} ELSE 0.0 END), "
        f"SUM(CASE WHEN outcome = :fine THEN 0.0 ELSE {weight} END), COUNT(*) "
        f"FROM checkins WHERE {among} AND created_at >= :since AND (outcome = :fine OR resolved_at IS NULL) "
        "GROUP BY station_id",
        {**params, **moments, "fine": CheckinOutcome.charged_fine.value},
    )
    return {
        station_id: ReliabilityTotals(good / (good + bad), good + bad, count)
        for station_id, good, bad, count in rows
    }


async def reliability(session: AsyncSession, db: Database, *, station: Station) -> Reliability:
    station_id = station.id
    totals = (await reliability_of(db, [station_id])).get(station_id)
    recent = (
        await session.scalars(
            select(Checkin).where(Checkin.station_id == station_id).order_by(Checkin.id.desc()).limit(RECENT_CHECKINS)
        )
    ).all()
    return Reliability(
        station_id=station_id,
        score=totals.score if totals else None,
        weight=totals.weight if totals else 0.0,
        count=totals.count if totals else 0,
        half_life_days=HALF_LIFE_DAYS,
        recent=[CheckinOut.model_validate(c) for c in recent],
    )

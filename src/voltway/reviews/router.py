"""Station reviews, check-ins and reliability."""

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from voltway.accounts.dependencies import CurrentDriver, OperatorKey
from voltway.core.cache import invalidate_after_commit
from voltway.core.db_dependencies import DB, Session
from voltway.core.errors import error_responses
from voltway.core.pagination import Limit, Page
from voltway.reviews import service
from voltway.reviews.schemas import CheckinIn, CheckinOut, Reliability, ReviewIn, ReviewOut
from voltway.stations.dependencies import ValidStation

router = APIRouter(tags=["reviews"])
STATIONS_CACHE = "stations"  # the cache namespace of station answers (stations/router.py)


@router.post(
    "/stations/{station_id}/reviews",
    status_code=status.HTTP_201_CREATED,
    summary="Review a station",
    description="Rating 1-5 and an optional comment. One review per driver and station: posting again "
    "updates it (200 instead of 201). The station's `rating` is recomputed in the same transaction.",
    responses={200: {"description": "The driver's existing review was updated", "model": ReviewOut},
               **error_responses(401, 404, 422)},
)
async def post_review(
    user: CurrentDriver, station: ValidStation, data: ReviewIn, session: Session, response: Response
) -> ReviewOut:
    review, created = await service.post_review(session, user=user, station=station, data=data)
    await invalidate_after_commit(session, STATIONS_CACHE)  # cached station answers carry the rating
    if not created:
        response.status_code = status.HTTP_200_OK
    return review


@router.get(
    "/stations/{station_id}/reviews",
    summary="A station's reviews",
    description="Newest first, paginated with `cursor`. Public.",
    responses=error_responses(404, 422),
)
async def reviews(
    station: ValidStation, session: Session, cursor: str | None = None, limit: Annotated[Limit, Query()] = 50
) -> Page[ReviewOut]:
    items, next_cursor = await service.list_reviews(session, station=station, cursor=cursor, limit=limit)
    return Page[ReviewOut](items=items, next_cursor=next_cursor)


@router.delete(
    "/stations/{station_id}/reviews/me",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete my review of a station",
    description="Removes the driver's own review; the station's rating is recomputed.",
    responses=error_responses(401, 404),
)
async def delete_my_review(user: CurrentDriver, station: ValidStation, session: Session) -> None:
    await service.delete_own_review(session, user=user, station=station)
    await invalidate_after_commit(session, STATIONS_CACHE)


@router.post(
    "/stations/{station_id}/checkins",
    status_code=status.HTTP_201_CREATED,
    summary="Check in at a station",
    description="Report how charging went: `charged_fine`, `could_not_charge` or `broken`, optionally for "
    "one connector and with a comment. Recent check-ins drive the station's reliability score.",
    responses=error_responses(401, 404, 422),
)
async def checkin(user: CurrentDriver, station: ValidStation, data: CheckinIn, session: Session) -> CheckinOut:
    return CheckinOut.model_validate(await service.create_checkin(session, user=user, station=station, data=data))


@router.get(
    "/stations/{station_id}/checkins",
    summary="A station's check-ins",
    description="Newest first, paginated with `cursor`. Public.",
    responses=error_responses(404, 422),
)
async def checkins(
    station: ValidStation, session: Session, cursor: str | None = None, limit: Annotated[Limit, Query()] = 50
) -> Page[CheckinOut]:
    items, next_cursor = await service.list_checkins(session, station=station, cursor=cursor, limit=limit)
    return Page[CheckinOut](items=[CheckinOut.model_validate(c) for c in items], next_cursor=next_cursor)


@router.get(
    "/stations/{station_id}/reliability",
    summary="A station's reliability",
    description="The share of successful check-ins, each weighted by 0.5^(age in days / 30) over the last "
    "365 days; open failure reports count against the station, resolved ones no longer do. With the 10 most "
    "recent check-ins. Public.",
    responses=error_responses(404),
)
async def reliability(station: ValidStation, session: Session, db: DB) -> Reliability:
    return await service.reliability(session, db, station=station)


@router.post(
    "/checkins/{checkin_id}/resolve",
    summary="Resolve a failure report",
    description="Marks a `could_not_charge` or `broken` check-in as dealt with (it stops counting against "
    "the station). Operator or admin key.",
    responses=error_responses(401, 403, 404, 409),
)
async def resolve(checkin_id: int, key: OperatorKey, session: Session) -> CheckinOut:
    return CheckinOut.model_validate(await service.resolve_checkin(session, checkin_id=checkin_id, key=key))

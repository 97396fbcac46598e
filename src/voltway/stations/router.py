"""Station endpoints: search, nearest, detail and the operator writes.

Reads return `FastJSONResponse` bodies built by the service (no ORM, no response-model validation on the hot
path); `response_model` documents the shape in OpenAPI. Search and nearest are hot routes (`HOT_ENDPOINTS`,
`core/hot_routes.py`): their endpoints take the request alone and validate its query with a `QueryModel`.
"""

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request, Response, status

from voltway.accounts.dependencies import OperatorKey
from voltway.core.cache import cached_response, invalidate_after_commit
from voltway.core.db_dependencies import DB, Session, get_database
from voltway.core.errors import error_responses
from voltway.core.query_model import QueryModel
from voltway.core.responses import FastJSONResponse, json_bytes
from voltway.stations import service
from voltway.stations.dependencies import NearestParams, SearchParams, StationId, ValidStation
from voltway.stations.schemas import StationIn, StationOut, StationPage, StationPatch
from voltway.stations.search import nearest_stations, search_stations

router = APIRouter(prefix="/stations", tags=["stations"])
SEARCH_QUERY, NEAREST_QUERY = QueryModel(SearchParams), QueryModel(NearestParams)
CACHED = "Answers are cached (ETag, `Cache-Control: public, max-age=30`, 304 on `If-None-Match`); every write makes them stale."


async def _cached(request: Request, page: Callable[[], Awaitable[Any]]) -> Response:
    """The answer's bytes from the "stations" cache namespace; `page()` runs only on a miss."""

    async def render() -> bytes:
        return json_bytes(await page())

    return await cached_response(request, render, namespace="stations")


@router.get(
    "",
    response_model=StationPage,
    summary="Search stations",
    description=(
        "Radius (`lat`, `lon`, `radius_km`; exact great-circle distance), bounding box "
        "(`bbox=minLon,minLat,maxLon,maxLat`; minLon > maxLon crosses the antimeridian) and filters, all "
        "combinable. Sorted by distance when `lat`/`lon` are given (each item then has `distance_km`), else by "
        "id; `sort=power|rating` sorts by highest power or rating. Pass `next_cursor` back as `cursor` for the "
        "next page. `removed` stations are left out unless `status=removed`; listings linked to another "
        "station as duplicates are left out. " + CACHED
    ),
    responses=error_responses(422),
    openapi_extra=SEARCH_QUERY.openapi,
)
async def search(request: Request) -> Response:
    params = await SEARCH_QUERY(request)
    query = params.query(sort=params.sort, limit=params.limit, cursor=params.cursor)
    db = await get_database(request)
    return await _cached(request, lambda: search_stations(db, query=query, embed=True))


@router.get(
    "/nearest",
    response_model=StationPage,
    summary="The k nearest stations",
    description="The `k` stations nearest to `lat`/`lon` at any distance, nearest first, with the search filters. "
    + CACHED,
    responses=error_responses(422),
    openapi_extra=NEAREST_QUERY.openapi,
)
async def nearest(request: Request) -> Response:
    params = await NEAREST_QUERY(request)
    db = await get_database(request)
    return await _cached(
        request,
        lambda: nearest_stations(db, lat=params.lat, lon=params.lon, k=params.k, filters=params.filters(), embed=True),
    )


HOT_ENDPOINTS = (search, nearest)


@router.get(
    "/{station_id}",
    response_model=StationOut,
    summary="One station",
    description="A station by id, with its connectors and rating (linked duplicate listings included). " + CACHED,
    responses=error_responses(404, 422),
)
async def detail(db: DB, request: Request, station_id: StationId) -> Any:
    return await _cached(request, lambda: service.get_station_dict(db, station_id=station_id))


@router.post(
    "",
    response_model=StationOut,
    status_code=status.HTTP_201_CREATED,
    summary="Create a station",
    description="Creates a station with its connectors (operator or admin key). 409 when (source, external_id) exists.",
    responses=error_responses(401, 403, 409, 422),
)
async def create(_key: OperatorKey, session: Session, data: StationIn) -> Any:
    body = await service.create_station(session, data=data)
    await invalidate_after_commit(session, "stations")
    return FastJSONResponse(body, status_code=status.HTTP_201_CREATED)


@router.patch(
    "/{station_id}",
    response_model=StationOut,
    summary="Update a station",
    description="Changes the fields given (operator or admin key); `connectors`, when given, replaces them all.",
    responses=error_responses(401, 403, 404, 409, 422),
)
async def update(_key: OperatorKey, session: Session, station: ValidStation, patch: StationPatch) -> Any:
    body = await service.update_station(session, station=station, patch=patch)
    await invalidate_after_commit(session, "stations")
    return FastJSONResponse(body)


@router.delete(
    "/{station_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a station",
    description="Deletes a station and its connectors (operator or admin key).",
    responses=error_responses(401, 403, 404, 422),
)
async def remove(_key: OperatorKey, session: Session, station: ValidStation) -> Response:
    await service.delete_station(session, station=station)
    await invalidate_after_commit(session, "stations")
    return Response(status_code=status.HTTP_204_NO_CONTENT)

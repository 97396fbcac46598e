"""Lookup and query-parameter dependencies for station routes (reusable by any route with a station id)."""

from typing import Annotated

from fastapi import Depends, Path, Query

from voltway.core.db import Session
from voltway.stations.models import Station
from voltway.stations.schemas import ConnectorType, CountryCode, StationStatus
from voltway.stations.search import StationFilters
from voltway.stations.service import get_station

StationId = Annotated[int, Path(ge=1, description="The station's id")]


async def valid_station(station_id: StationId, session: Session) -> Station:
    """The station named by the `station_id` path parameter; 404 (`station_not_found`) when there is none."""
    return await get_station(session, station_id=station_id)


ValidStation = Annotated[Station, Depends(valid_station)]


def station_filters(
    connector: Annotated[
        list[ConnectorType] | None,
        Query(description="Connector codes (repeatable); a station matches when one connector has one of them"),
    ] = None,
    min_power_kw: Annotated[
        float | None,
        Query(ge=0, allow_inf_nan=False, description="Minimum power of a connector (of a listed type, if given)"),
    ] = None,
    status: Annotated[
        StationStatus | None, Query(description="Only this status; `removed` stations appear only when asked for")
    ] = None,
    operator: Annotated[
        str | None, Query(min_length=1, max_length=255, description="Operator name (case-insensitive)")
    ] = None,
    country: Annotated[CountryCode | None, Query(description="ISO 3166 alpha-2 country code")] = None,
    q: Annotated[
        str | None,
        Query(min_length=1, max_length=200, description="Text in the name, address, town or operator"),
    ] = None,
) -> StationFilters:
    return StationFilters(
        connectors=tuple(dict.fromkeys(c.value for c in connector or ())),
        min_power_kw=min_power_kw,
        status=status.value if status else None,
        operator=operator,
        country=country.upper() if country else None,
        text=q,
    )


Filters = Annotated[StationFilters, Depends(station_filters)]

"""Lookup and query-parameter dependencies for station routes (reusable by any route with a station id).

Query parameters are declared as Pydantic models: one model validation per request, several times cheaper
than a dozen separately declared parameters. The hot routes (search, nearest, clusters) validate them with
`core.query_model`, which skips FastAPI's per-field inspection as well; other routes use
`Annotated[Model, Query()]`.
"""

from typing import Annotated, Any

from fastapi import Depends, Path
from pydantic import BaseModel, ConfigDict, Field

from voltway.core.db_dependencies import Session
from voltway.stations.models import Station
from voltway.stations.schemas import ConnectorType, CountryCode, Latitude, Longitude, StationStatus
from voltway.stations.search import SortKey, StationFilters, StationQuery, invalid_query, parse_bbox
from voltway.stations.service import get_station

StationId = Annotated[int, Path(ge=1, description="The station's id")]


async def valid_station(station_id: StationId, session: Session) -> Station:
    """The station named by the `station_id` path parameter; 404 (`station_not_found`) when there is none."""
    return await get_station(session, station_id=station_id)


ValidStation = Annotated[Station, Depends(valid_station)]


class FilterParams(BaseModel):
    """The filters every station listing takes."""

    model_config = ConfigDict(extra="ignore")

    connector: list[ConnectorType] | None = Field(
        None, description="Connector codes (repeatable); a station matches when one connector has one of them"
    )
    min_power_kw: float | None = Field(
        None, ge=0, allow_inf_nan=False, description="Minimum power of a connector (of a listed type, if given)"
    )
    status: StationStatus | None = Field(
        None, description="Only this status; `removed` stations appear only when asked for"
    )
    operator: str | None = Field(None, min_length=1, max_length=255, description="Operator name (case-insensitive)")
    country: CountryCode | None = Field(None, description="ISO 3166 alpha-2 country code")
    q: str | None = Field(None, min_length=1, max_length=200, description="Text in the name, address, town or operator")

    def filters(self) -> StationFilters:
        return StationFilters(
            connectors=tuple(dict.fromkeys(c.value for c in self.connector or ())),
            min_power_kw=self.min_power_kw,
            status=self.status.value if self.status else None,
            operator=self.operator,
            country=self.country.upper() if self.country else None,
            text=self.q,
        )


class AreaParams(FilterParams):
    """The filters plus the area: a point (sorted by distance), a radius around it, a bounding box."""

    lat: Latitude | None = Field(None, description="Latitude of the search point")
    lon: Longitude | None = Field(None, description="Longitude of the search point")
    radius_km: float | None = Field(None, ge=0, allow_inf_nan=False, description="Radius in km (needs lat and lon)")
    bbox: str | None = Field(None, description="minLon,minLat,maxLon,maxLat", examples=["13.2,52.4,13.6,52.6"])

    def query(self, **paging: Any) -> StationQuery:
        """The search these parameters ask for; a 422 naming the field when lat/lon/radius_km do not fit."""
        if (self.lat is None) != (self.lon is None):
            raise invalid_query("lon" if self.lon is None else "lat", "lat and lon go together")
        if self.radius_km is not None and self.lat is None:
            raise invalid_query("radius_km", "radius_km needs lat and lon")
        return StationQuery(
            origin=(self.lat, self.lon) if self.lat is not None and self.lon is not None else None,
            radius_km=self.radius_km,
            box=parse_bbox(self.bbox) if self.bbox is not None else None,
            filters=self.filters(),
            **paging,
        )


class SearchParams(AreaParams):
    sort: SortKey | None = Field(None, description="distance (default with lat/lon), id, power, rating")
    limit: int = Field(50, ge=1, le=500, description="Page size")
    cursor: str | None = Field(None, max_length=512, description="`next_cursor` of the previous page")


class NearestParams(FilterParams):
    lat: Latitude = Field(description="Latitude of the search point")
    lon: Longitude = Field(description="Longitude of the search point")
    k: int = Field(10, ge=1, le=500, description="How many stations")

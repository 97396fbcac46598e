"""Map clusters: stations in a bounding box grouped on a zoom-dependent grid, aggregated in the database.

The grid is global and made of square cells of `360 / 2**k` degrees, so a cell at one zoom splits into four
at the next and clusters stay put while the map pans. `k` is `zoom + 1` (a cell is about 128 screen pixels
on a 256-pixel-tile map, so cluster markers rarely overlap), lowered when the box is large for its zoom so
that the answer holds at most a few hundred features whatever the client asks. A cell with one station is
that station's point.
"""

import math
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from voltway.core.db import DB, Database
from voltway.core.errors import error_responses
from voltway.core.geo import GeoBox
from voltway.stations.dependencies import station_filters
from voltway.stations.schemas import StationStatus
from voltway.stations.search import StationFilters, _Sql, parse_bbox

# Bounds on the grid: cells >= sqrt(area / MAX_CELLS) and >= longest side / MAX_SIDE. The features in a box
# then number at most MAX_CELLS + 4 * MAX_SIDE + 4 (cells partly inside count on every side).
MAX_CELLS = 256
MAX_SIDE = 32
MAX_ZOOM = 22


def cell_size(box: GeoBox, zoom: int) -> float:
    """The grid cell (degrees) for a box at a zoom: a power-of-two fraction of 360 (see module docstring)."""
    width = sum(east - west for west, east in box.lon_ranges)
    height = box.max_lat - box.min_lat
    k = zoom + 1
    bound = max(math.sqrt(width * height / MAX_CELLS), max(width, height) / MAX_SIDE)
    if bound > 0:
        k = min(k, math.floor(math.log2(360.0 / bound)))
    return 360.0 / 2.0**k


class PointGeometry(BaseModel):
    type: Literal["Point"] = "Point"
    coordinates: tuple[float, float] = Field(description="[longitude, latitude]")


class ClusterProperties(BaseModel):
    cluster: Literal[True] = True
    count: int = Field(description="Stations in the cluster")
    available: int = Field(description="Of them, stations with status `available`")
    max_power_kw: float | None = Field(description="The most powerful connector in the cluster")
    bbox: tuple[float, float, float, float] = Field(description="Bounds of its stations: minLon,minLat,maxLon,maxLat")


class StationPointProperties(BaseModel):
    cluster: Literal[False] = False
    id: int
    name: str
    status: StationStatus
    operator: str | None
    max_power_kw: float | None


class ClusterFeature(BaseModel):
    type: Literal["Feature"] = "Feature"
    geometry: PointGeometry
    properties: ClusterProperties | StationPointProperties


class ClusterCollection(BaseModel):
    """A GeoJSON FeatureCollection of clusters (`cluster: true`) and single stations (`cluster: false`)."""

    type: Literal["FeatureCollection"] = "FeatureCollection"
    zoom: int
    cell_deg: float = Field(description="Grid cell size in degrees used for this answer")
    features: list[ClusterFeature]


async def clusters(*, db: Database, box: GeoBox, zoom: int, filters: StationFilters) -> ClusterCollection:
    cell = cell_size(box, zoom)
    where = _Sql(db.dialect)
    where.narrow(box, exact=True)
    where.filters(filters)
    cell_param = where.param(cell)
    sql = f"""
        SELECT count(*), min(g.id), min(g.name), min(g.status), min(g.operator), max(g.max_power_kw),
               avg(g.latitude), avg(g.longitude), min(g.latitude), min(g.longitude), max(g.latitude),
               max(g.longitude), sum(CASE WHEN g.status = 'available' THEN 1 ELSE 0 END)
        FROM (
            SELECT s.id, s.name, s.status, s.operator, s.max_power_kw, s.latitude, s.longitude,
                   floor(s.latitude / {cell_param}) AS gy, floor(s.longitude / {cell_param}) AS gx
            FROM stations s WHERE {" AND ".join(where.where)}
        ) g
        GROUP BY g.gy, g.gx
        ORDER BY g.gy, g.gx
    """
    features = []
    for count, sid, name, status, operator, power, avg_lat, avg_lon, lat0, lon0, lat1, lon1, available in (
        await db.fetch(sql, where.params)
    ):
        if count == 1:
            geometry = PointGeometry(coordinates=(lon0, lat0))
            props: ClusterProperties | StationPointProperties = StationPointProperties(
                id=sid, name=name, status=status, operator=operator, max_power_kw=power
            )
        else:
            geometry = PointGeometry(coordinates=(avg_lon, avg_lat))
            props = ClusterProperties(
                count=count, available=available, max_power_kw=power, bbox=(lon0, lat0, lon1, lat1)
            )
        features.append(ClusterFeature(geometry=geometry, properties=props))
    return ClusterCollection(zoom=zoom, cell_deg=cell, features=features)


router = APIRouter(prefix="/stations", tags=["stations"])


@router.get(
    "/clusters",
    response_model=ClusterCollection,
    summary="Clusters and stations for a map view",
    description=(
        "Stations inside `bbox` (minLon,minLat,maxLon,maxLat; minLon > maxLon crosses the antimeridian) grouped"
        " on a grid that depends on `zoom`: a cell with several stations is a cluster point at their mean"
        " position, a cell with one is that station. Takes the station search's filters. The answer holds at"
        " most a few hundred features."
    ),
    responses=error_responses(422),
)
async def get_clusters(
    db: DB,
    bbox: Annotated[str, Query(description="minLon,minLat,maxLon,maxLat", examples=["5.8,47.2,15.1,55.1"])],
    zoom: Annotated[int, Query(ge=0, le=MAX_ZOOM, description="Map zoom level")],
    filters: Annotated[StationFilters, Depends(station_filters)],
) -> ClusterCollection:
    return await clusters(db=db, box=parse_bbox(bbox), zoom=zoom, filters=filters)

"""Map clusters: stations in a bounding box grouped on a zoom-dependent grid, aggregated in the database.

The grid is global and made of square cells of `360 / 2**k` degrees, so a cell at one zoom splits into four
at the next and clusters stay put while the map pans. `k` is `zoom + 2` (a cell is about 64 screen pixels
on a 256-pixel-tile map), lowered when the box is large for its zoom so that the answer holds at most a few
hundred features whatever the client asks. A cell with one station is that station's point.
"""

import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from voltway.core.db import DB, Database
from voltway.core.errors import InvalidInput, error_responses
from voltway.stations.schemas import ConnectorType, StationStatus

# Bounds on the grid: cells >= sqrt(area / MAX_CELLS) and >= longest side / MAX_SIDE. The features in a box
# then number at most MAX_CELLS + 4 * MAX_SIDE + 4 (cells partly inside count on every side).
MAX_CELLS = 256
MAX_SIDE = 32
MAX_ZOOM = 22


@dataclass(frozen=True)
class BBox:
    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float

    @property
    def crosses_antimeridian(self) -> bool:
        return self.min_lon > self.max_lon

    def contains(self, lat: float, lon: float) -> bool:
        if not self.min_lat <= lat <= self.max_lat:
            return False
        if self.crosses_antimeridian:
            return lon >= self.min_lon or lon <= self.max_lon
        return self.min_lon <= lon <= self.max_lon

    @property
    def width(self) -> float:
        return self.max_lon - self.min_lon + (360.0 if self.crosses_antimeridian else 0.0)

    @property
    def height(self) -> float:
        return self.max_lat - self.min_lat


def parse_bbox(text: str, *, field: str = "bbox") -> BBox:
    """`minLon,minLat,maxLon,maxLat`; minLon > maxLon is a box across the antimeridian."""
    parts = text.split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise InvalidInput(f"{field} must be four numbers: minLon,minLat,maxLon,maxLat", details={"field": field})
    box = BBox(*values)
    if not (-180 <= box.min_lon <= 180 and -180 <= box.max_lon <= 180):
        raise InvalidInput(f"{field}: longitudes must be within -180..180", details={"field": field})
    if not (-90 <= box.min_lat <= box.max_lat <= 90):
        raise InvalidInput(f"{field}: latitudes must be within -90..90 with minLat <= maxLat", details={"field": field})
    return box


def cell_size(box: BBox, zoom: int) -> float:
    """The grid cell (degrees) for a box at a zoom: a power-of-two fraction of 360 (see module docstring)."""
    k = zoom + 2
    bound = max(math.sqrt(box.width * box.height / MAX_CELLS), max(box.width, box.height) / MAX_SIDE)
    if bound > 0:
        k = min(k, math.floor(math.log2(360.0 / bound)))
    return 360.0 / 2.0**k


@dataclass(frozen=True)
class ClusterFilters:
    """The station search's filters; connector and power apply to the same connector."""

    connector: tuple[str, ...] = ()
    min_power_kw: float | None = None
    status: str | None = None
    operator: str | None = None
    country: str | None = None


def _where(box: BBox, filters: ClusterFilters, *, sqlite: bool) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {
        "min_lat": box.min_lat,
        "max_lat": box.max_lat,
        "min_lon": box.min_lon,
        "max_lon": box.max_lon,
    }
    lon_join = "OR" if box.crosses_antimeridian else "AND"
    clauses = [
        "s.latitude >= :min_lat AND s.latitude <= :max_lat",
        f"(s.longitude >= :min_lon {lon_join} s.longitude <= :max_lon)",
    ]
    if sqlite:
        # The R*Tree narrows (its float32 boxes are rounded outwards, so it finds a superset);
        # the exact test above decides. A box across the antimeridian is two R*Tree ranges.
        ranges = [(":min_lon", "180.0"), ("-180.0", ":max_lon")] if box.crosses_antimeridian else [
            (":min_lon", ":max_lon")
        ]
        rtree = " UNION ALL ".join(
            "SELECT id FROM station_rtree WHERE max_lat >= :min_lat AND min_lat <= :max_lat"
            f" AND max_lon >= {lo} AND min_lon <= {hi}"
            for lo, hi in ranges
        )
        clauses.append(f"s.id IN ({rtree})")
    if filters.status:
        clauses.append("s.status = :status")
        params["status"] = filters.status
    else:
        clauses.append("s.status <> 'removed'")
    if filters.operator:
        clauses.append("lower(s.operator) = lower(:operator)")
        params["operator"] = filters.operator
    if filters.country:
        clauses.append("s.country = :country")
        params["country"] = filters.country.upper()
    connector_clauses = []
    if filters.connector:
        names = [f":connector_{i}" for i in range(len(filters.connector))]
        connector_clauses.append(f"c.type IN ({', '.join(names)})")
        params.update({name[1:]: code for name, code in zip(names, filters.connector, strict=True)})
    if filters.min_power_kw is not None:
        connector_clauses.append("c.power_kw >= :min_power_kw")
        params["min_power_kw"] = filters.min_power_kw
    if connector_clauses:
        clauses.append(
            "EXISTS (SELECT 1 FROM connectors c WHERE c.station_id = s.id AND " + " AND ".join(connector_clauses) + ")"
        )
    return " AND ".join(clauses), params


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


async def clusters(*, db: Database, box: BBox, zoom: int, filters: ClusterFilters) -> ClusterCollection:
    cell = cell_size(box, zoom)
    where, params = _where(box, filters, sqlite=db.is_sqlite)
    params["cell"] = cell
    sql = f"""
        SELECT count(*), min(g.id), min(g.name), min(g.status), min(g.operator), max(g.max_power_kw),
               avg(g.latitude), avg(g.longitude), min(g.latitude), min(g.longitude), max(g.latitude),
               max(g.longitude), sum(CASE WHEN g.status = 'available' THEN 1 ELSE 0 END)
        FROM (
            SELECT s.id, s.name, s.status, s.operator, s.max_power_kw, s.latitude, s.longitude,
                   floor(s.latitude / :cell) AS gy, floor(s.longitude / :cell) AS gx
            FROM stations s WHERE {where}
        ) g
        GROUP BY g.gy, g.gx
        ORDER BY g.gy, g.gx
    """
    features = []
    for count, sid, name, status, operator, power, avg_lat, avg_lon, lat0, lon0, lat1, lon1, available in (
        await db.fetch(sql, params)
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
    connector: Annotated[list[ConnectorType] | None, Query(description="Connector codes (any of)")] = None,
    min_power_kw: Annotated[float | None, Query(ge=0, description="On a connector of a requested type")] = None,
    status: Annotated[StationStatus | None, Query()] = None,
    operator: Annotated[str | None, Query(max_length=255)] = None,
    country: Annotated[str | None, Query(pattern="^[A-Za-z]{2}$")] = None,
) -> ClusterCollection:
    filters = ClusterFilters(
        connector=tuple(c.value for c in connector or ()),
        min_power_kw=min_power_kw,
        status=status.value if status else None,
        operator=operator,
        country=country,
    )
    return await clusters(db=db, box=parse_bbox(bbox), zoom=zoom, filters=filters)

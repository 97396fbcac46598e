"""Map clusters: stations grouped on a zoom-dependent grid, aggregated in the database.

The grid is global and made of square cells of `360 / 2**k` degrees, so a cell at one zoom splits into four
at the next. `k` is `zoom + 1` (a cell is about 128 screen pixels on a 256-pixel-tile map, so cluster markers
rarely overlap), lowered when the box is large for its zoom so that the answer holds at most a few hundred
features whatever the client asks. The answer covers every cell the box touches, whole: a cluster keeps its
count and position while the map pans, and answers for nearby views are the same cached answer. A cell with
one station is that station's point. Where cells meet, the markers of neighbouring cells can fall on each
other: groups closer than half a cell on the map are merged (`merge_close`, a few hundred groups at most).
A view without filters (or with a status alone), at a level up to `map_cells.LEAF_LEVEL`, reads its cells
pre-aggregated (`map_cells.py`).
"""

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from voltway.core.cache import cached
from voltway.core.db import Database
from voltway.core.db_dependencies import get_database
from voltway.core.errors import error_responses
from voltway.core.geo import BOX_MARGIN_DEG, GeoBox
from voltway.core.metrics import MAP_VIEWS
from voltway.core.query_model import QueryModel
from voltway.core.responses import json_bytes
from voltway.stations.dependencies import FilterParams
from voltway.stations.map_cells import LEAF_LEVEL, cell_size, view_cells
from voltway.stations.schemas import StationStatus
from voltway.stations.search import StationFilters, StationWhere, parse_bbox

# Bounds on the grid: cells >= sqrt(area / MAX_CELLS) and >= longest side / MAX_SIDE. The features in a box
# then number at most MAX_CELLS + 4 * MAX_SIDE + 4 (cells partly inside count on every side).
MAX_CELLS = 256
MAX_SIDE = 32
MAX_ZOOM = 22
# Groups closer than this fraction of a cell (about 64 pixels) are merged into one marker.
MERGE_FRACTION = 0.5
MERCATOR_MAX_LAT = 85.05112878
# Cached answers are dropped when stations change (namespace "stations"); this bounds staleness regardless.
CACHE_SECONDS = 60


def grid_level(box: GeoBox, zoom: int) -> int:
    """The grid level (cells of 360 / 2**level degrees) for a box at a zoom (see module docstring)."""
    width = sum(east - west for west, east in box.lon_ranges)
    height = box.max_lat - box.min_lat
    level = zoom + 1
    bound = max(math.sqrt(width * height / MAX_CELLS), max(width, height) / MAX_SIDE)
    if bound > 0:
        level = min(level, math.floor(math.log2(360.0 / bound)))
    return level


@dataclass(frozen=True, slots=True)
class Grid:
    """The cells a box touches: rows and column ranges (two across the antimeridian) of the level's cells."""

    level: int
    rows: tuple[int, int]
    cols: tuple[tuple[int, int], ...]

    @property
    def cell(self) -> float:
        return cell_size(self.level)

    @classmethod
    def covering(cls, box: GeoBox, zoom: int) -> "Grid":
        level = grid_level(box, zoom)
        cell = cell_size(level)
        return cls(
            level,
            (math.floor(box.min_lat / cell), math.floor(box.max_lat / cell)),
            tuple((math.floor(west / cell), math.floor(east / cell)) for west, east in box.lon_ranges),
        )

    def extent(self) -> GeoBox:
        """A box holding every point of the cells (a little more: the cell test in SQL decides)."""
        c, m = self.cell, BOX_MARGIN_DEG
        return GeoBox(
            max(-90.0, self.rows[0] * c - m),
            min(90.0, (self.rows[1] + 1) * c + m),
            tuple((max(-180.0, first * c - m), min(180.0, (last + 1) * c + m)) for first, last in self.cols),
        )


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


@cached("stations", ttl=CACHE_SECONDS)
async def grid_features(*, db: Database, grid: Grid, filters: StationFilters) -> bytes:
    """The clusters and single stations of the grid's cells (close ones merged), in cell order, as the JSON
    array of their features: cached rendered, so that a view answered from the cache costs no model.

    Without filters but a status (not `removed`), down to LEAF_LEVEL, the cells come from `map_cells`;
    otherwise (or when those are being brought up to date) from grouping the stations. The names and operators
    of the cells holding one station are looked up afterwards, by id."""
    cells = None
    if grid.level <= LEAF_LEVEL and filters == StationFilters(status=filters.status) and filters.status != "removed":
        cells = await view_cells(db, grid.level, grid.rows, grid.cols, status=filters.status)
    MAP_VIEWS.labels(source="stations" if cells is None else "cells").inc()
    if cells is None:
        cells = await _grouped_stations(db, grid, filters)
    names = await _names(db, [sid for _gy, _gx, count, _available, sid, *_ in cells if count == 1])
    groups = [
        Group(
            count, sum_lat / count, sum_lon / count, available, power, (lon0, lat0, lon1, lat1),
            (sid, *names.get(sid, NO_NAME), status),
        )
        for _gy, _gx, count, available, sid, status, power, sum_lat, sum_lon, lat0, lon0, lat1, lon1 in cells
    ]
    merged = merge_close(groups, grid.cell * MERGE_FRACTION)
    return json_bytes([group.feature().model_dump(mode="json") for group in merged])


async def _grouped_stations(db: Database, grid: Grid, filters: StationFilters) -> Sequence[Sequence[Any]]:
    """The grid's cells grouped from the stations that pass `filters`, in the row shape of `view_cells`.

    The grouping reads only what `ix_stations_map` covers (position, status, power; migration 0010), so over a
    continent the database scans that index rather than every station's row."""
    where = StationWhere(db.dialect)
    where.where.append(where.exact_box(grid.extent()))
    where.filters(filters)
    cell = where.param(grid.cell)
    cols = " OR ".join(f"g.gx BETWEEN {where.param(float(a))} AND {where.param(float(b))}" for a, b in grid.cols)
    sql = f"""
        SELECT g.gy, g.gx, count(*), sum(CASE WHEN g.status = 'available' THEN 1 ELSE 0 END), min(g.id),
               min(g.status), max(g.max_power_kw), sum(g.latitude), sum(g.longitude), min(g.latitude),
               min(g.longitude), max(g.latitude), max(g.longitude)
        FROM (
            SELECT s.id, s.status, s.max_power_kw, s.latitude, s.longitude,
                   floor(s.latitude / {cell}) AS gy, floor(s.longitude / {cell}) AS gx
            FROM stations s WHERE {" AND ".join(where.where)}
        ) g
        WHERE g.gy BETWEEN {where.param(float(grid.rows[0]))} AND {where.param(float(grid.rows[1]))} AND ({cols})
        GROUP BY g.gy, g.gx
        ORDER BY g.gy, g.gx
    """
    return await db.fetch(sql, where.params, slow=True)  # a continent's stations: a few hundred ms


NO_NAME = ("", None)  # only clusters (count > 1) lack one; their name is never shown


async def _names(db: Database, ids: list[int]) -> dict[int, tuple[str, str | None]]:
    """(name, operator) of stations by id."""
    if not ids:
        return {}
    condition, params = db.one_of("id", ids)
    rows = await db.fetch(f"SELECT id, name, operator FROM stations WHERE {condition}", params)
    return {sid: (name, operator) for sid, name, operator in rows}


@dataclass(slots=True)
class Group:
    """Stations counted together: one grid cell's, or several close cells' after merging."""

    count: int
    latitude: float  # mean position
    longitude: float
    available: int
    max_power_kw: float | None
    bbox: tuple[float, float, float, float]
    station: tuple[int, str, str | None, str]  # (id, name, operator, status) when count is 1

    def feature(self) -> ClusterFeature:
        if self.count == 1:
            sid, name, operator, status = self.station
            return ClusterFeature(
                geometry=PointGeometry(coordinates=(self.longitude, self.latitude)),
                properties=StationPointProperties(
                    id=sid, name=name, status=status, operator=operator, max_power_kw=self.max_power_kw
                ),
            )
        return ClusterFeature(
            geometry=PointGeometry(coordinates=(self.longitude, self.latitude)),
            properties=ClusterProperties(
                count=self.count, available=self.available, max_power_kw=self.max_power_kw, bbox=self.bbox
            ),
        )


def mercator_y(lat: float) -> float:
    """Web Mercator's vertical position in degree units (same scale as longitude on the map)."""
    lat = max(-MERCATOR_MAX_LAT, min(MERCATOR_MAX_LAT, lat))
    return math.degrees(math.log(math.tan(math.pi / 4 + math.radians(lat) / 2)))


def merge_close(groups: list[Group], radius: float) -> list[Group]:
    """Merge groups whose map positions (longitude, Mercator y) are closer than `radius`, so that markers of
    neighbouring cells do not pile up where cells meet. Greedy: the largest group (first in cell order on a
    tie) takes every group within `radius` of it, then the next largest left, and so on. The result keeps
    the cell order of the groups that took the others."""
    position = [(g.longitude, mercator_y(g.latitude)) for g in groups]
    buckets: dict[tuple[int, int], list[int]] = defaultdict(list)
    for index, (x, y) in enumerate(position):
        buckets[(math.floor(x / radius), math.floor(y / radius))].append(index)
    taken = [False] * len(groups)
    merged: list[tuple[int, Group]] = []
    for seed in sorted(range(len(groups)), key=lambda i: -groups[i].count):
        if taken[seed]:
            continue
        taken[seed] = True
        x, y = position[seed]
        bx, by = math.floor(x / radius), math.floor(y / radius)
        members = [groups[seed]]
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for other in buckets.get((bx + dx, by + dy), ()):
                    ox, oy = position[other]
                    if not taken[other] and math.hypot(ox - x, oy - y) < radius:
                        taken[other] = True
                        members.append(groups[other])
        merged.append((seed, combine(members)))
    return [group for _, group in sorted(merged, key=lambda item: item[0])]


def combine(members: list[Group]) -> Group:
    if len(members) == 1:
        return members[0]
    count = sum(g.count for g in members)
    powers = [g.max_power_kw for g in members if g.max_power_kw is not None]
    return Group(
        count=count,
        latitude=sum(g.latitude * g.count for g in members) / count,
        longitude=sum(g.longitude * g.count for g in members) / count,
        available=sum(g.available for g in members),
        max_power_kw=max(powers) if powers else None,
        bbox=(
            min(g.bbox[0] for g in members),
            min(g.bbox[1] for g in members),
            max(g.bbox[2] for g in members),
            max(g.bbox[3] for g in members),
        ),
        station=members[0].station,
    )


class ClusterParams(FilterParams):
    bbox: str = Field(description="minLon,minLat,maxLon,maxLat", examples=["5.8,47.2,15.1,55.1"])
    zoom: int = Field(ge=0, le=MAX_ZOOM, description="Map zoom level")


CLUSTER_QUERY = QueryModel(ClusterParams)
router = APIRouter(prefix="/stations", tags=["stations"])


@router.get(
    "/clusters",
    response_model=ClusterCollection,
    summary="Clusters and stations for a map view",
    description=(
        "Stations of the grid cells that `bbox` touches (minLon,minLat,maxLon,maxLat; minLon > maxLon crosses"
        " the antimeridian), on a grid of `cell_deg`-degree cells that depends on `zoom`: a cell with several"
        " stations is a cluster point at their mean position, a cell with one is that station. Takes the"
        " station search's filters. The answer holds at most a few hundred features."
    ),
    responses=error_responses(422),
    openapi_extra=CLUSTER_QUERY.openapi,
)
async def get_clusters(request: Request) -> Response:
    params = await CLUSTER_QUERY(request)
    grid = Grid.covering(parse_bbox(params.bbox), params.zoom)
    features = await grid_features(db=await get_database(request), grid=grid, filters=params.filters())
    answer = {"type": "FeatureCollection", "zoom": params.zoom, "cell_deg": grid.cell}
    return Response(json_bytes({**answer, "features": orjson.Fragment(features)}), media_type="application/json")


HOT_ENDPOINTS = (get_clusters,)  # the map asks for clusters at every move (`core/hot_routes.py`)

"""Map clusters against a brute-force grouping of the same stations, on SQLite and PostgreSQL."""

import asyncio
import contextlib
import functools
import math
import random
import sqlite3
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import httpx
import pytest
from alembic import command
from geojson_pydantic import FeatureCollection
from prometheus_client import REGISTRY

from voltway.core.cache import cache
from voltway.core.db import Database, sqlite_path
from voltway.core.geo import unit_vector
from voltway.migrations import alembic_config
from voltway.settings import Settings
from voltway.stations import map_cells
from voltway.stations.map_cells import (
    COLUMNS,
    LEAF_LEVEL,
    REFRESH_WAIT,
    cell_size,
    refresh,
    refresh_statements,
)
from voltway.stations.models import Connector, Station

pytestmark = pytest.mark.usefixtures("backend")

STATUSES = ["available", "occupied", "out_of_service", "unknown", "removed"]
CONNECTORS = ["ccs2", "type2", "chademo", "nacs"]
OPERATORS = ["Ionity", "Fastned", "Tesla", None]


@dataclass
class Row:
    id: int
    name: str
    lat: float
    lon: float
    status: str
    operator: str | None
    country: str
    connectors: list[tuple[str, float | None]]

    @property
    def max_power(self) -> float | None:
        powers = [p for _t, p in self.connectors if p is not None]
        return max(powers) if powers else None


def random_rows(rng: random.Random, n: int) -> list[dict]:
    centres = [(52.52, 13.40), (48.85, 2.35), (-41.29, 174.78), (65.0, -179.9), (64.9, 179.95), (0.0, 0.0)]
    rows = []
    for i in range(n):
        if i % 25 == 0 and rows:  # a second listing at exactly the same place
            lat, lon = rows[-1]["lat"], rows[-1]["lon"]
        elif rng.random() < 0.7:
            c_lat, c_lon = rng.choice(centres)
            lat = max(-90.0, min(90.0, c_lat + rng.gauss(0, 0.3)))
            lon = (c_lon + rng.gauss(0, 0.3) + 180.0) % 360.0 - 180.0
        else:
            lat, lon = rng.uniform(-89.9, 89.9), rng.uniform(-180.0, 180.0)
        connectors = [
            (rng.choice(CONNECTORS), rng.choice([None, 11.0, 22.0, 50.0, 150.0, 350.0]))
            for _ in range(rng.randint(0, 3))
        ]
        rows.append(
            {
                "name": f"Station {i} Ünïcode",
                "lat": lat,
                "lon": lon,
                "status": rng.choice(STATUSES),
                "operator": rng.choice(OPERATORS),
                "country": rng.choice(["DE", "FR", "NZ"]),
                "connectors": connectors,
            }
        )
    return rows


async def insert(db: Database, rows: list[dict]) -> list[Row]:
    async with db.sessionmaker.begin() as session:
        stations = []
        for r in rows:
            x, y, z = unit_vector(r["lat"], r["lon"])
            powers = [p for _t, p in r["connectors"] if p is not None]
            station = Station(
                source="test",
                external_id=r["name"],
                name=r["name"],
                latitude=r["lat"],
                longitude=r["lon"],
                x=x,
                y=y,
                z=z,
                status=r["status"],
                operator=r["operator"],
                country=r["country"],
                max_power_kw=max(powers) if powers else None,
                connectors=[Connector(type=t, power_kw=p, status="unknown") for t, p in r["connectors"]],
            )
            session.add(station)
            stations.append(station)
        await session.flush()
        return [Row(s.id, s.name, r["lat"], r["lon"], r["status"], r["operator"], r["country"], r["connectors"])
                for s, r in zip(stations, rows, strict=True)]


def expected_cell(bbox: tuple[float, float, float, float], zoom: int) -> float:
    min_lon, min_lat, max_lon, max_lat = bbox
    width = max_lon - min_lon if min_lon <= max_lon else max_lon - min_lon + 360
    height = max_lat - min_lat
    k = zoom + 1
    bound = max(math.sqrt(width * height / 256), max(width, height) / 32)
    if bound > 0:
        while 360 / 2**k < bound:
            k -= 1
    return 360 / 2**k


def brute_force(rows: list[Row], bbox, cell: float, params: dict) -> list[dict]:
    """Every station of the cells the box touches, grouped by cell (rows: latitude, columns: longitude)."""
    min_lon, min_lat, max_lon, max_lat = bbox
    rows_range = (math.floor(min_lat / cell), math.floor(max_lat / cell))
    lon_ranges = [(min_lon, max_lon)] if min_lon <= max_lon else [(min_lon, 180.0), (-180.0, max_lon)]
    col_ranges = [(math.floor(west / cell), math.floor(east / cell)) for west, east in lon_ranges]
    groups: dict[tuple[int, int], list[Row]] = defaultdict(list)
    for r in rows:
        gy, gx = math.floor(r.lat / cell), math.floor(r.lon / cell)
        if not (rows_range[0] <= gy <= rows_range[1] and any(a <= gx <= b for a, b in col_ranges)):
            continue
        if r.status != params.get("status", r.status) or ("status" not in params and r.status == "removed"):
            continue
        if "operator" in params and (r.operator or "").lower() != params["operator"].lower():
            continue
        if "country" in params and r.country != params["country"].upper():
            continue
        wanted = params.get("connector")
        power = params.get("min_power_kw")
        if (wanted or power is not None) and not any(
            (not wanted or t in wanted) and (power is None or (p is not None and p >= power))
            for t, p in r.connectors
        ):
            continue
        groups[(gy, gx)].append(r)
    cells = [groups[key] for key in sorted(groups)]
    features = []
    for members in merge_naively(cells, cell / 2):
        powers = [r.max_power for r in members if r.max_power is not None]
        if len(members) == 1:
            (r,) = members
            features.append({"coordinates": [r.lon, r.lat], "properties": {
                "cluster": False, "id": r.id, "name": r.name, "status": r.status, "operator": r.operator,
                "max_power_kw": r.max_power}})
        else:
            features.append({
                "coordinates": [sum(r.lon for r in members) / len(members), sum(r.lat for r in members) / len(members)],
                "properties": {
                    "cluster": True,
                    "count": len(members),
                    "available": sum(r.status == "available" for r in members),
                    "max_power_kw": max(powers) if powers else None,
                    "bbox": [min(r.lon for r in members), min(r.lat for r in members),
                             max(r.lon for r in members), max(r.lat for r in members)],
                },
            })
    return features


def merge_naively(cells: list[list[Row]], radius: float) -> list[list[Row]]:
    """Cells whose mean map positions (longitude, Mercator y) are closer than `radius` merged: the largest
    cell first (cell order on ties) takes every cell left within `radius`; the result in cell order."""
    def position(members: list[Row]) -> tuple[float, float]:
        lat = sum(r.lat for r in members) / len(members)
        lat = max(-85.05112878, min(85.05112878, lat))
        y = math.degrees(math.log(math.tan(math.pi / 4 + math.radians(lat) / 2)))
        return sum(r.lon for r in members) / len(members), y

    positions = [position(c) for c in cells]
    taken: set[int] = set()
    merged = []
    for seed in sorted(range(len(cells)), key=lambda i: (-len(cells[i]), i)):
        if seed in taken:
            continue
        near = [j for j in range(len(cells)) if j not in taken and math.dist(positions[seed], positions[j]) < radius]
        taken.update(near)
        merged.append((seed, [r for j in near for r in cells[j]]))
    return [members for _, members in sorted(merged)]


def random_query(rng: random.Random) -> tuple[tuple[float, float, float, float], int, dict]:
    zoom = rng.randint(0, 22)
    span = 360 / 2**zoom * rng.uniform(1, 8)
    lat0 = rng.uniform(-90, 90)
    lon0 = rng.uniform(-180, 180)
    min_lat, max_lat = max(-90.0, lat0 - span / 4), min(90.0, lat0 + span / 4)
    min_lon = lon0
    max_lon = lon0 + span / 2
    if rng.random() < 0.3:  # sometimes a whole-world view, or a box around a populated place
        min_lon, min_lat, max_lon, max_lat = -180.0, -90.0, 180.0, 90.0
    elif rng.random() < 0.5:
        c_lat, c_lon = rng.choice([(52.52, 13.40), (65.0, 179.99), (-41.29, 174.78)])
        half = rng.uniform(0.01, 3)
        min_lat, max_lat, min_lon, max_lon = c_lat - half, c_lat + half, c_lon - half, c_lon + half
    if max_lon > 180:
        max_lon -= 360  # crosses the antimeridian
    min_lon = max(-180.0, min_lon)
    params: dict = {}
    if rng.random() < 0.3:
        params["connector"] = rng.sample(CONNECTORS, rng.randint(1, 2))
    if rng.random() < 0.3:
        params["min_power_kw"] = rng.choice([0, 22, 50, 150])
    if rng.random() < 0.2:
        params["status"] = rng.choice(STATUSES)
    if rng.random() < 0.15:
        params["operator"] = rng.choice(["ionity", "Tesla"])
    if rng.random() < 0.15:
        params["country"] = rng.choice(["de", "NZ"])
    return (min_lon, min_lat, max_lon, max_lat), zoom, params


def assert_same(got: dict, want: list[dict]) -> None:
    features = got["features"]
    assert [f["properties"] for f in features] == want_props(want)
    for feature, expected in zip(features, want, strict=True):
        assert feature["type"] == "Feature" and feature["geometry"]["type"] == "Point"
        assert feature["geometry"]["coordinates"] == pytest.approx(expected["coordinates"], abs=1e-9)


def want_props(want: list[dict]) -> list[dict]:
    return [w["properties"] for w in want]


def query_params(bbox, zoom: int, params: dict) -> dict:
    return {"bbox": ",".join(repr(v) for v in bbox), "zoom": zoom, **params}


async def test_clusters_equal_brute_force(client: httpx.AsyncClient, db: Database) -> None:
    rng = random.Random(20261128)
    rows = await insert(db, random_rows(rng, 700))
    for _ in range(60):
        bbox, zoom, params = random_query(rng)
        response = await client.get("/api/v1/stations/clusters", params=query_params(bbox, zoom, params))
        assert response.status_code == 200, response.text
        body = response.json()
        FeatureCollection.model_validate(body)  # valid GeoJSON
        cell = expected_cell(bbox, zoom)
        assert body["type"] == "FeatureCollection" and body["cell_deg"] == cell and body["zoom"] == zoom
        assert_same(body, brute_force(rows, bbox, cell, params))


async def test_clusters_bounded_and_nested(client: httpx.AsyncClient, db: Database) -> None:
    rng = random.Random(7)
    rows = await insert(db, [
        {"name": f"grid {i}", "lat": rng.uniform(-80, 80), "lon": rng.uniform(-180, 180), "status": "available",
         "operator": None, "country": "DE", "connectors": []}
        for i in range(1500)
    ])
    # A whole-world box asked at street zoom still answers with a few hundred features, all stations counted.
    world = await client.get("/api/v1/stations/clusters", params={"bbox": "-180,-90,180,90", "zoom": 22})
    features = world.json()["features"]
    assert len(features) <= 256 + 4 * 32 + 4
    counts = [f["properties"]["count"] if f["properties"]["cluster"] else 1 for f in features]
    assert sum(counts) == len(rows)
    # One zoom further in, the cells split in four.
    parent = (await client.get("/api/v1/stations/clusters", params={"bbox": "0,0,10,10", "zoom": 5})).json()
    child = (await client.get("/api/v1/stations/clusters", params={"bbox": "0,0,10,10", "zoom": 6})).json()
    assert child["cell_deg"] == parent["cell_deg"] / 2
    total = lambda fc: sum(f["properties"]["count"] if f["properties"]["cluster"] else 1 for f in fc["features"])  # noqa: E731
    # Both cover the same whole cells: [0, 11.25) in latitude and longitude (2 x 5.625, or 4 x 2.8125 degrees).
    assert total(parent) == total(child) == sum(1 for r in rows if 0 <= r.lat < 11.25 and 0 <= r.lon < 11.25)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"bbox": "1,2,3", "zoom": 3}, "bbox"),
        ({"bbox": "a,b,c,d", "zoom": 3}, "bbox"),
        ({"bbox": "0,10,5,5", "zoom": 3}, "bbox"),
        ({"bbox": "0,0,200,5", "zoom": 3}, "bbox"),
        ({"bbox": "0,0,5,5", "zoom": 23}, "zoom"),
        ({"bbox": "0,0,5,5"}, "zoom"),
        ({"bbox": "0,0,5,5", "zoom": 3, "connector": "warp"}, "connector"),
        ({"bbox": "0,0,5,5", "zoom": 3, "min_power_kw": -1}, "min_power_kw"),
    ],
)
async def test_clusters_bad_input_names_field(client: httpx.AsyncClient, params: dict, field: str) -> None:
    response = await client.get("/api/v1/stations/clusters", params=params)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error" and field in error["message"]


# ------------------------------------------------------------------------------------ map cells
View = tuple[tuple[float, float, float, float], int, dict]


def map_cell_views(rng: random.Random, count: int) -> list[View]:
    """Views that read `map_cells` (no filter but a status, a level up to LEAF_LEVEL): the world, and boxes around
    the places `random_rows` crowds, across the antimeridian included."""
    views: list[View] = [((-180.0, -90.0, 180.0, 90.0), zoom, {}) for zoom in (0, 2, 5)]
    views.append(((-180.0, -90.0, 180.0, 90.0), 2, {"status": "available"}))
    while len(views) < count:
        c_lat, c_lon = rng.choice([(52.52, 13.40), (65.0, 179.99), (-41.29, 174.78), (0.0, 0.0)])
        half = rng.uniform(0.2, 4)
        west = c_lon - half if c_lon - half >= -180 else c_lon - half + 360
        east = c_lon + half if c_lon + half <= 180 else c_lon + half - 360
        bbox = (west, max(-90.0, c_lat - half), east, min(90.0, c_lat + half))
        zoom = rng.randint(3, 10)
        params = rng.choice([{}, {}, {"status": "available"}, {"status": "occupied"}])
        if expected_level(bbox, zoom) <= LEAF_LEVEL:
            views.append((bbox, zoom, params))
    return views


def expected_level(bbox: tuple[float, float, float, float], zoom: int) -> int:
    return round(math.log2(360 / expected_cell(bbox, zoom)))


async def check_views(client: httpx.AsyncClient, rows: list[Row], views: list[View]) -> None:
    for bbox, zoom, params in views:
        response = await client.get("/api/v1/stations/clusters", params=query_params(bbox, zoom, params))
        assert response.status_code == 200, response.text
        assert_same(response.json(), brute_force(rows, bbox, expected_cell(bbox, zoom), params))


async def marked_cells(db: Database) -> set[tuple[int, int]]:
    return {(gy, gx) for gy, gx in await db.fetch("SELECT gy, gx FROM map_dirty", {})}


def leaf_cell(lat: float, lon: float) -> tuple[int, int]:
    return math.floor(lat / cell_size(LEAF_LEVEL)), math.floor(lon / cell_size(LEAF_LEVEL))


async def test_map_cells_follow_every_write(
    client: httpx.AsyncClient, db: Database, operator_headers: dict[str, str]
) -> None:
    rng = random.Random(29)
    rows = await insert(db, random_rows(rng, 500))
    views = map_cell_views(rng, 24)
    await check_views(client, rows, views)
    assert await marked_cells(db) == set()  # the first view folded the marks in
    built = await db.fetch("SELECT gy, gx, status FROM map_cells WHERE level = :leaf", {"leaf": LEAF_LEVEL})
    listed = [r for r in rows if r.status != "removed"]
    assert {tuple(cell) for cell in built} == {(*leaf_cell(r.lat, r.lon), r.status) for r in listed}

    # Through the API: a move, status changes (one to removed), a delete.
    moved, changed, gone = rows[3], rows[10:14], rows[20]
    new_lat, new_lon = -41.0, 175.2
    response = await client.patch(f"/api/v1/stations/{moved.id}", headers=operator_headers,
                                  json={"latitude": new_lat, "longitude": new_lon})
    assert response.status_code == 200, response.text
    assert {leaf_cell(moved.lat, moved.lon), leaf_cell(new_lat, new_lon)} <= await marked_cells(db)
    moved.lat, moved.lon = new_lat, new_lon
    for row, status in zip(changed, ["removed", "available", "occupied", "available"], strict=True):
        response = await client.patch(f"/api/v1/stations/{row.id}", headers=operator_headers, json={"status": status})
        assert response.status_code == 200, response.text
        row.status = status
    assert (await client.delete(f"/api/v1/stations/{gone.id}", headers=operator_headers)).status_code == 204
    rows.remove(gone)
    # Straight into the database: a duplicate linked, and a rating, which no view shows (nothing marked).
    duplicate = rows[30]
    async with db.sessionmaker.begin() as session:
        station = await session.get(Station, duplicate.id)
        assert station is not None
        station.duplicate_of_id = rows[31].id
    rows.remove(duplicate)
    await client.get("/api/v1/stations/clusters", params={"bbox": "-180,-90,180,90", "zoom": 0})
    assert await marked_cells(db) == set()
    async with db.sessionmaker.begin() as session:
        station = await session.get(Station, rows[40].id)
        assert station is not None
        station.rating_average, station.rating_count = 4.5, 2
    assert await marked_cells(db) == set()
    await cache.invalidate("stations")
    await check_views(client, rows, views)


async def test_map_cells_refresh_equals_rebuild(client: httpx.AsyncClient, db: Database) -> None:
    """Folding marked cells in leaves the same cells as building them all from the stations."""
    rng = random.Random(5)
    rows = await insert(db, random_rows(rng, 300))
    assert await refresh(db) > 0
    async with db.sessionmaker.begin() as session:
        for row in rng.sample(rows, 40):
            station = await session.get(Station, row.id)
            assert station is not None
            station.latitude, station.status = min(90.0, station.latitude + rng.uniform(-0.5, 0.5)), "available"
    assert await marked_cells(db) and await refresh(db) > 0
    folded = await db.fetch(f"SELECT {COLUMNS} FROM map_cells ORDER BY level, gy, gx, status", {})
    async with db.engine.begin() as conn:
        for statement in refresh_statements(db.dialect, rebuild=True):
            await conn.exec_driver_sql(statement)
    rebuilt = await db.fetch(f"SELECT {COLUMNS} FROM map_cells ORDER BY level, gy, gx, status", {})
    assert len(folded) == len(rebuilt) > LEAF_LEVEL
    for got, want in zip(folded, rebuilt, strict=True):  # sums of floats may differ in the last bits
        assert [v for v in got if not isinstance(v, float)] == [v for v in want if not isinstance(v, float)]
        assert [v for v in got if isinstance(v, float)] == pytest.approx([v for v in want if isinstance(v, float)])


async def test_many_marks_rebuild_every_cell(
    client: httpx.AsyncClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(map_cells, "REBUILD_AT", 5)
    rng = random.Random(8)
    rows = await insert(db, random_rows(rng, 200))
    assert len(await marked_cells(db)) > 5
    await check_views(client, rows, map_cell_views(rng, 8))
    assert await marked_cells(db) == set()


@contextlib.asynccontextmanager
async def marks_locked(db: Database) -> AsyncIterator[None]:
    """Another connection holds what a refresh needs: SQLite's write lock, or the marks table on PostgreSQL."""
    if db.is_sqlite:
        conn = sqlite3.connect(sqlite_path(db.url), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    pg = await asyncpg.connect(db.url.replace("postgresql+asyncpg", "postgresql"))
    try:
        async with pg.transaction():
            await pg.execute("LOCK TABLE map_dirty IN EXCLUSIVE MODE")
            yield
    finally:
        await pg.close()


async def test_a_view_that_cannot_wait_for_the_refresh_groups_the_stations(
    client: httpx.AsyncClient, db: Database
) -> None:
    rng = random.Random(11)
    rows = await insert(db, random_rows(rng, 200))
    views = map_cell_views(rng, 6)
    before = map_views()
    async with marks_locked(db):
        started = time.perf_counter()
        await check_views(client, rows, views[:1])
        assert time.perf_counter() - started >= REFRESH_WAIT  # it waited, then grouped the stations
        assert await marked_cells(db)
    assert map_views() == (before[0], before[1] + 1)
    await cache.invalidate("stations")
    await check_views(client, rows, views)  # the refresh went on (SQLite) or is tried again (PostgreSQL)
    assert await marked_cells(db) == set()
    assert map_views() == (before[0] + len(views), before[1] + 1)


def map_views() -> tuple[float, float]:
    """`voltway_map_views_total` answered from the cells, and by grouping the stations."""
    sample = functools.partial(REGISTRY.get_sample_value, "voltway_map_views_total")
    return sample({"source": "cells"}) or 0.0, sample({"source": "stations"}) or 0.0


async def test_the_migration_marks_the_stations_already_there(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    """A database upgraded with stations in it: their cells are marked, and the first view builds them."""
    rng = random.Random(16)
    rows = await insert(db, random_rows(rng, 150))
    await db.engine.dispose()  # no pooled connection in the way of the schema changes
    config = alembic_config(settings.database_url)
    await asyncio.to_thread(command.downgrade, config, "0016-1")
    await asyncio.to_thread(command.upgrade, config, "heads")
    assert await marked_cells(db) == {leaf_cell(r.lat, r.lon) for r in rows}
    await check_views(client, rows, map_cell_views(rng, 6))
    assert await marked_cells(db) == set()


async def test_refreshes_of_two_processes_at_once(client: httpx.AsyncClient, db: Database) -> None:
    """Two processes (two Databases) refreshing the same marks together: one folds them, the other waits for it
    and finds none left (SQLite's write lock, PostgreSQL's lock on the marks); the cells are exact."""
    rng = random.Random(3)
    rows = await insert(db, random_rows(rng, 300))
    other = Database(db.url)
    try:
        folded = await asyncio.gather(refresh(db), refresh(other))
    finally:
        await other.dispose()
    assert sorted(folded)[0] == 0 < sorted(folded)[1]
    await check_views(client, rows, map_cell_views(rng, 6))

"""Geo search answers equal a brute-force haversine computation over the whole dataset, in membership and order.

One dataset of a few thousand stations (uniform, clustered, across the antimeridian, around and on the poles,
duplicate positions) is inserted once per backend; hundreds of seeded random queries (radius, bbox, nearest,
with and without filters, pages walked with cursors) are compared with the answer computed here.
"""

import asyncio
import math
import random
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, text
from station_factories import CLUSTERS, CONNECTOR_CODES, OPERATORS, STATUSES, geo_dataset

from voltway.core.db import Database
from voltway.core.geo import EARTH_RADIUS_KM, SAME_POINT_KM, circle_box, haversine_km
from voltway.stations.models import Connector, Station
from voltway.stations.service import derived_columns

API = "/api/v1/stations"
DATASET = geo_dataset()
BY_ID = {s["id"]: s for s in DATASET}
PAGE_MAX = 500


# ------------------------------------------------------------------------------------------ dataset
async def insert_dataset(url: str) -> None:
    now = datetime.now(UTC)
    stations, connectors = [], []
    for s in DATASET:
        derived = derived_columns(s["latitude"], s["longitude"], [{"power_kw": p} for _t, p in s["connectors"]])
        stations.append({
            **{k: v for k, v in s.items() if k != "connectors"}, **derived, "source": "test", "external_id": str(s["id"]),
            "rating_count": 0 if s["rating_average"] is None else 1, "created_at": now, "updated_at": now,
        })
        connectors.extend({"station_id": s["id"], "type": t, "power_kw": p, "quantity": 1, "status": "unknown"}
                          for t, p in s["connectors"])
    db = Database(url)
    try:
        async with db.engine.begin() as conn:
            if not db.is_sqlite:
                await conn.execute(text("TRUNCATE stations RESTART IDENTITY CASCADE"))
            await conn.execute(insert(Station.__table__), stations)
            await conn.execute(insert(Connector.__table__), connectors)
            if not db.is_sqlite:
                await conn.execute(text("SELECT setval('stations_id_seq', (SELECT max(id) FROM stations))"))
    finally:
        await db.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def geo_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database holding DATASET, built once per backend for this module."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("geo") / f"geo-{uuid.uuid4().hex[:8]}.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite+aiosqlite:///{path}"
    else:
        url = request.getfixturevalue("pg_database")
    asyncio.run(insert_dataset(url))
    yield url


@pytest.fixture
def database_url(geo_url: str) -> str:
    """The shared fixtures (`settings`, `app`, `client`) run on the module's dataset."""
    return geo_url


# ------------------------------------------------------------------------------------- brute force
def passes(s: dict[str, Any], f: dict[str, Any]) -> bool:
    if s["duplicate_of_id"] is not None:
        return False
    if ("status" in f and s["status"] != f["status"]) or ("status" not in f and s["status"] == "removed"):
        return False
    if "operator" in f and (s["operator"] or "").lower() != f["operator"].lower():
        return False
    if "country" in f and s["country"] != f["country"].upper():
        return False
    if "q" in f and not any(f["q"].lower() in (v or "").lower() for v in (s["name"], s["town"], s["operator"])):
        return False
    minimum = f.get("min_power_kw")
    if "connector" in f:
        return any(t in f["connector"] and (minimum is None or (p is not None and p >= minimum))
                   for t, p in s["connectors"])
    return minimum is None or (s["max_power_kw"] is not None and s["max_power_kw"] >= minimum)


def in_box(s: dict[str, Any], bbox: tuple[float, float, float, float]) -> bool:
    min_lon, min_lat, max_lon, max_lat = bbox
    if not min_lat <= s["latitude"] <= max_lat:
        return False
    if min_lon <= max_lon:
        return min_lon <= s["longitude"] <= max_lon
    return s["longitude"] >= min_lon or s["longitude"] <= max_lon


def expected(
    *, f: dict[str, Any], origin: tuple[float, float] | None = None, radius: float | None = None,
    bbox: tuple[float, float, float, float] | None = None, sort: str | None = None,
) -> list[tuple[int, float | None]]:
    """(id, distance_km) of every matching station, in the API's order."""
    rows = []
    for s in DATASET:
        if not passes(s, f) or (bbox is not None and not in_box(s, bbox)):
            continue
        distance = haversine_km(*origin, s["latitude"], s["longitude"]) if origin else None
        if radius is not None and distance is not None and distance > radius + SAME_POINT_KM:
            continue
        rows.append((s, distance))
    sort = sort or ("distance" if origin else "id")
    if sort == "distance":
        rows.sort(key=lambda r: (r[1], r[0]["id"]))
    elif sort == "id":
        rows.sort(key=lambda r: r[0]["id"])
    else:
        column = "max_power_kw" if sort == "power" else "rating_average"
        rows.sort(key=lambda r: (-(r[0][column] if r[0][column] is not None else -1.0), r[0]["id"]))
    return [(s["id"], None if d is None else round(d, 3)) for s, d in rows]


def answer(items: list[dict[str, Any]]) -> list[tuple[int, float | None]]:
    return [(s["id"], s.get("distance_km")) for s in items]


# ---------------------------------------------------------------------------------- random queries
def random_point(rng: random.Random) -> tuple[float, float]:
    kind = rng.random()
    if kind < 0.3:
        s = rng.choice(DATASET)
        return s["latitude"], s["longitude"]  # exactly on a station
    if kind < 0.5:
        lat, lon, sigma = rng.choice(CLUSTERS)
        return max(-90.0, min(90.0, lat + rng.gauss(0, sigma) / 111.2)), (lon + rng.gauss(0, 1) + 180) % 360 - 180
    if kind < 0.65:
        return rng.choice((1, -1)) * rng.uniform(88.5, 90.0), rng.uniform(-180, 180)
    if kind < 0.8:
        return rng.uniform(-60, 60), rng.choice((1, -1)) * rng.uniform(179.0, 180.0)
    return math.degrees(math.asin(rng.uniform(-1, 1))), rng.uniform(-180, 180)


def random_radius(rng: random.Random) -> float:
    kind = rng.random()
    if kind < 0.05:
        return 0.0
    if kind < 0.1:
        return rng.choice((20_015.1, 25_000.0))  # half the circumference and beyond: the whole sphere
    return round(math.exp(rng.uniform(math.log(0.05), math.log(15_000))), 3)


def random_filters(rng: random.Random) -> dict[str, Any]:
    f: dict[str, Any] = {}
    if rng.random() < 0.5:
        return f
    if rng.random() < 0.4:
        f["connector"] = rng.sample(CONNECTOR_CODES, rng.choice((1, 2)))
    if rng.random() < 0.4:
        f["min_power_kw"] = rng.choice((0, 11, 22, 50, 150, 350))
    if rng.random() < 0.2:
        f["status"] = rng.choice(STATUSES)
    if rng.random() < 0.2:
        f["operator"] = rng.choice([o for o in OPERATORS if o]).upper()
    if rng.random() < 0.2:
        f["country"] = rng.choice(("de", "NZ"))
    if rng.random() < 0.2:
        f["q"] = rng.choice(("charger 1", "TESLA", "welling", "independent", "ÉNERGIE", "ström c"))
    return f


def random_bbox(rng: random.Random) -> tuple[float, float, float, float]:
    lat_a, lat_b = (rng.uniform(-90, 90) for _ in range(2))
    if rng.random() < 0.3:  # a band at a pole or around the antimeridian clusters
        lat_a, lat_b = rng.choice(((80.0, 90.0), (-90.0, -85.0), (-20.0, 20.0)))
    min_lon = rng.uniform(-180, 180)
    width = rng.choice((rng.uniform(0, 5), rng.uniform(0, 90), rng.uniform(0, 360)))
    max_lon = min_lon + width if min_lon + width <= 180 else min_lon + width - 360  # may cross the antimeridian
    return round(min_lon, 4), round(min(lat_a, lat_b), 4), round(max_lon, 4), round(max(lat_a, lat_b), 4)


async def get(client: httpx.AsyncClient, path: str, params: dict[str, Any]) -> dict[str, Any]:
    response = await client.get(path, params=params)
    assert response.status_code == 200, (params, response.text)
    return response.json()


def check_page(page: dict[str, Any], want: list[tuple[int, float | None]], params: dict[str, Any]) -> None:
    assert answer(page["items"]) == want[:PAGE_MAX], params
    assert (page["next_cursor"] is not None) == (len(want) > PAGE_MAX), params


# ------------------------------------------------------------------------------------------- tests
async def test_radius_search_equals_brute_force(client: httpx.AsyncClient) -> None:
    rng = random.Random(1)
    for _ in range(130):
        lat, lon = random_point(rng)
        radius, f = random_radius(rng), random_filters(rng)
        params = {"lat": lat, "lon": lon, "radius_km": radius, "limit": PAGE_MAX, **f}
        want = expected(f=f, origin=(lat, lon), radius=radius)
        check_page(await get(client, API, params), want, params)


async def test_searches_sized_by_earlier_ones_still_equal_brute_force(client: httpx.AsyncClient) -> None:
    """The first circle of a search near an earlier one is sized by what that one needed (`_RadiusHints`):
    a dense spot, then sparser spots of the same 0.1° cell, other page sizes and filters."""
    rng = random.Random(5)
    for lat, lon, _sigma in CLUSTERS:
        for _ in range(6):
            dlat, dlon = rng.choice((0.0, 0.02, 0.049)), rng.choice((0.0, -0.03, 0.049))
            point = (max(-90.0, min(90.0, lat + dlat)), (lon + dlon + 180) % 360 - 180)
            limit, f = rng.choice((1, 5, 50, PAGE_MAX)), rng.choice(({}, {"min_power_kw": 150}))
            radius = rng.choice((0.5, 10.0, 300.0, 20_015.1))
            params = {"lat": point[0], "lon": point[1], "radius_km": radius, "limit": limit, **f}
            want = expected(f=f, origin=point, radius=radius)
            page = await get(client, API, params)
            assert answer(page["items"]) == want[:limit], params
            assert (page["next_cursor"] is not None) == (len(want) > limit), params


async def test_bbox_search_equals_brute_force(client: httpx.AsyncClient) -> None:
    rng = random.Random(2)
    for i in range(70):
        bbox, f = random_bbox(rng), random_filters(rng)
        params: dict[str, Any] = {"bbox": ",".join(map(str, bbox)), "limit": PAGE_MAX, **f}
        origin = radius = None
        if i % 3 == 0:  # sorted by distance from a point, some also within a radius
            origin = random_point(rng)
            params.update(lat=origin[0], lon=origin[1])
            if i % 2 == 0:
                radius = random_radius(rng)
                params["radius_km"] = radius
        want = expected(f=f, origin=origin, radius=radius, bbox=bbox)
        check_page(await get(client, API, params), want, params)


async def test_nearest_equals_brute_force(client: httpx.AsyncClient) -> None:
    rng = random.Random(3)
    for _ in range(60):
        lat, lon = random_point(rng)
        k, f = rng.choice((1, 2, 10, 37, 500)), random_filters(rng)
        params = {"lat": lat, "lon": lon, "k": k, **f}
        page = await get(client, f"{API}/nearest", params)
        assert answer(page["items"]) == expected(f=f, origin=(lat, lon))[:k], params
        assert page["next_cursor"] is None


async def test_pages_concatenate_to_the_whole_answer(client: httpx.AsyncClient) -> None:
    rng = random.Random(4)
    for i in range(30):
        f = random_filters(rng)
        params: dict[str, Any] = {"limit": rng.choice((1, 7, 40, 150)), **f}  # at most 10 pages are walked
        origin = radius = bbox = None
        sort = rng.choice((None, "id", "power", "rating"))
        if i % 2 == 0:
            origin, radius = random_point(rng), rng.choice((50.0, 500.0, 3000.0, None))
            params.update(lat=origin[0], lon=origin[1])
            if radius is not None:
                params["radius_km"] = radius
        else:
            bbox = random_bbox(rng)
            params["bbox"] = ",".join(map(str, bbox))
        if sort:
            params["sort"] = sort
        want = expected(f=f, origin=origin, radius=radius, bbox=bbox, sort=sort)
        walked: list[dict[str, Any]] = []
        page = await get(client, API, params)
        walked.extend(page["items"])
        for _ in range(9):
            if page["next_cursor"] is None:
                break
            page = await get(client, API, {**params, "cursor": page["next_cursor"]})
            walked.extend(page["items"])
        assert answer(walked) == want[: len(walked)], params
        assert (page["next_cursor"] is None) == (len(walked) == len(want)), params


async def test_edge_cases(client: httpx.AsyncClient) -> None:
    visible = [s for s in DATASET if passes(s, {})]
    # Radius 0 on a station: that station and every station at exactly the same position.
    twin_positions = {}
    for s in visible:
        twin_positions.setdefault((s["latitude"], s["longitude"]), []).append(s["id"])
    (lat, lon), ids = next((p, ids) for p, ids in twin_positions.items() if len(ids) > 1)
    page = await get(client, API, {"lat": lat, "lon": lon, "radius_km": 0})
    assert answer(page["items"]) == [(i, 0.0) for i in sorted(ids)]
    # On the North Pole every longitude is the same point.
    for lon in (-180, 0, 123.4, 180):
        page = await get(client, API, {"lat": 90, "lon": lon, "radius_km": 0})
        assert [s["id"] for s in page["items"]] == [i for i in twin_positions[(90.0, 0.0)]]
        page = await get(client, API, {"lat": 90, "lon": lon, "radius_km": 300, "limit": PAGE_MAX})
        check_page(page, expected(f={}, origin=(90, lon), radius=300), {"lon": lon})
    # Longitude 180 and -180 are the same meridian.
    page = await get(client, API, {"lat": 10, "lon": -180, "radius_km": 0})
    assert [s["id"] for s in page["items"]] == twin_positions[(10.0, 180.0)]
    page = await get(client, API, {"bbox": "179.9999,44,-179.9999,46", "limit": PAGE_MAX})
    check_page(page, expected(f={}, bbox=(179.9999, 44, -179.9999, 46)), {})
    assert {6, 7} <= {s["id"] for s in page["items"]}
    # A radius beyond half the circumference is the whole sphere, nearest first.
    page = await get(client, API, {"lat": -12.5, "lon": 33.3, "radius_km": 50_000, "limit": PAGE_MAX})
    check_page(page, expected(f={}, origin=(-12.5, 33.3)), {})
    nearest = await get(client, f"{API}/nearest", {"lat": -12.5, "lon": 33.3, "k": PAGE_MAX})
    assert nearest["items"] == page["items"]
    # Nothing in the middle of the Pacific; nothing for a filter nobody matches.
    assert (await get(client, API, {"lat": -45, "lon": -130, "radius_km": 1}))["items"] == []
    assert (await get(client, f"{API}/nearest", {"lat": 0, "lon": 0, "q": "no such text"}))["items"] == []
    assert (await get(client, API, {"bbox": "-130,-46,-129,-45"})) == {"items": [], "next_cursor": None}
    # The whole world as a box, in id order.
    page = await get(client, API, {"bbox": "-180,-90,180,90", "limit": PAGE_MAX})
    check_page(page, expected(f={}), {})


# ------------------------------------------------------------------------------- the bounding box
def destination(lat: float, lon: float, bearing: float, km: float) -> tuple[float, float]:
    """The point `km` from (lat, lon) along `bearing` degrees, on the sphere."""
    phi, lam, theta, delta = math.radians(lat), math.radians(lon), math.radians(bearing), km / EARTH_RADIUS_KM
    phi2 = math.asin(math.sin(phi) * math.cos(delta) + math.cos(phi) * math.sin(delta) * math.cos(theta))
    lam2 = lam + math.atan2(math.sin(theta) * math.sin(delta) * math.cos(phi),
                            math.cos(delta) - math.sin(phi) * math.sin(phi2))
    return math.degrees(phi2), (math.degrees(lam2) + 540) % 360 - 180


@settings(max_examples=400, deadline=None)
@given(
    lat=st.floats(-90, 90), lon=st.floats(-180, 180), radius=st.floats(0, 21_000),
    bearing=st.floats(0, 360), fraction=st.floats(0, 1),
)
def test_circle_box_contains_the_whole_circle(
    lat: float, lon: float, radius: float, bearing: float, fraction: float
) -> None:
    box = circle_box(lat, lon, radius)
    point_lat, point_lon = destination(lat, lon, bearing, radius * fraction)
    if box is None:
        assert radius / EARTH_RADIUS_KM >= math.pi
        return
    assert box.min_lat <= point_lat <= box.max_lat
    assert any(west <= point_lon <= east for west, east in box.lon_ranges)


def test_circle_box_is_tight_away_from_the_poles() -> None:
    box = circle_box(0.0, 179.95, 111.195)  # 1 degree around a point near the antimeridian
    assert box is not None
    assert box.min_lat == pytest.approx(-1, abs=1e-4) and box.max_lat == pytest.approx(1, abs=1e-4)
    (west, east_edge), (west_edge, east) = box.lon_ranges
    assert (east_edge, west_edge) == (180.0, -180.0)
    assert west == pytest.approx(178.95, abs=1e-4) and east == pytest.approx(-179.05, abs=1e-4)
    polar = circle_box(89.0, 10.0, 200.0)
    assert polar is not None and polar.lon_ranges == ((-180.0, 180.0),) and polar.max_lat == 90.0
    assert circle_box(10, 10, 25_000) is None

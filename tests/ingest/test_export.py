"""Streamed exports: GeoJSON validity (RFC 7946), the search filters, constant memory, the CLI command."""

import csv
import io
import math
import tracemalloc
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from geojson_pydantic import FeatureCollection
from typer.testing import CliRunner

from voltway.cli import app as cli_app
from voltway.core.db import Database
from voltway.ingest import export as export_module
from voltway.ingest.export import ExportFormat, export_stations
from voltway.ingest.upsert import upsert_stations
from voltway.settings import Settings
from voltway.stations.schemas import StationIn
from voltway.stations.search import StationQuery

pytestmark = pytest.mark.usefixtures("backend")
StationFactory = Callable[..., dict[str, Any]]
EXPORT = "/api/v1/stations/export"


def _varied(station_item: StationFactory) -> list[dict[str, Any]]:
    """Stations spread over two countries, three operators, statuses and connector sets."""
    items = []
    for n in range(60):
        country = "NZ" if n % 3 else "AU"
        items.append(station_item(
            n,
            country=country,
            latitude=-36.0 - (n % 10) * 0.05,
            longitude=174.0 + (n // 10) * 0.07,
            operator=("Acme Energy", "Volt Co", None)[n % 3],
            status=("available", "occupied", "removed", "out_of_service")[n % 4],
            name=f"{'Harbour' if n % 5 == 0 else 'Inland'} station {n}",
            connectors=[{"type": ("ccs2", "type2", "chademo")[n % 3], "power_kw": float(10 * (n % 7) + 7)}],
        ))
    return items


async def _search_ids(client: httpx.AsyncClient, params: dict[str, Any]) -> list[int]:
    ids: list[int] = []
    cursor = None
    while True:
        page = (await client.get("/api/v1/stations", params={**params, "limit": 7, "sort": "id",
                                                             **({"cursor": cursor} if cursor else {})})).json()
        ids += [s["id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids


def _validate_geojson(document: dict[str, Any]) -> None:
    """RFC 7946: a FeatureCollection of Features with Point geometries, positions [lon, lat] in range."""
    FeatureCollection.model_validate(document)  # the structure, per the RFC's object definitions
    assert set(document) == {"type", "features"} and document["type"] == "FeatureCollection"
    for feature in document["features"]:
        assert set(feature) == {"type", "id", "geometry", "properties"} and feature["type"] == "Feature"
        assert isinstance(feature["id"], int | str)  # 3.2: a string or a number
        assert isinstance(feature["properties"], dict)
        geometry = feature["geometry"]
        assert geometry["type"] == "Point" and len(geometry["coordinates"]) == 2
        lon, lat = geometry["coordinates"]
        assert all(isinstance(v, float | int) and math.isfinite(v) for v in (lon, lat))
        assert -180 <= lon <= 180 and -90 <= lat <= 90


async def test_geojson_is_valid_and_positions_are_lon_lat(
    client: httpx.AsyncClient, operator_headers: dict[str, str], station_item: StationFactory
) -> None:
    items = [station_item(1, latitude=-36.5, longitude=174.25), station_item(2, latitude=48.0, longitude=-179.5)]
    await client.post("/api/v1/stations/bulk", json=items, headers=operator_headers)
    response = await client.get(EXPORT, params={"format": "geojson"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/geo+json"
    assert response.headers["content-disposition"] == 'attachment; filename="stations.geojson"'
    document = response.json()
    _validate_geojson(document)
    by_external = {f["properties"]["external_id"]: f for f in document["features"]}
    assert by_external["acme-1"]["geometry"]["coordinates"] == [174.25, -36.5]
    assert by_external["acme-2"]["geometry"]["coordinates"] == [-179.5, 48.0]
    properties = by_external["acme-1"]["properties"]
    assert "latitude" not in properties and "id" not in properties
    assert properties["connectors"][0]["type"] == "ccs2" and properties["operator"] == "Acme Energy"


async def test_empty_exports_are_valid(client: httpx.AsyncClient) -> None:
    document = (await client.get(EXPORT, params={"format": "geojson"})).json()
    _validate_geojson(document)
    assert document["features"] == []
    assert (await client.get(EXPORT, params={"format": "json"})).json() == []
    assert (await client.get(EXPORT, params={"format": "csv"})).text.count("\n") == 1


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"country": "NZ"},
        {"operator": "volt co"},
        {"status": "removed"},
        {"status": "occupied", "country": "AU"},
        {"connector": ["ccs2", "chademo"], "min_power_kw": 30},
        {"min_power_kw": 50},
        {"q": "harbour"},
        {"bbox": "174.05,-36.3,174.3,-36.1"},
        {"lat": -36.2, "lon": 174.1, "radius_km": 12},
        {"lat": -36.2, "lon": 174.1, "radius_km": 20, "operator": "Acme Energy", "connector": "ccs2"},
    ],
)
async def test_export_selects_what_the_search_selects(
    client: httpx.AsyncClient, operator_headers: dict[str, str], station_item: StationFactory, params: dict[str, Any]
) -> None:
    created = await client.post("/api/v1/stations/bulk", json=_varied(station_item), headers=operator_headers)
    assert created.json()["created"] == 60
    expected = await _search_ids(client, params)
    assert expected  # every case selects something
    for fmt in ExportFormat:
        response = await client.get(EXPORT, params={**params, "format": fmt.value})
        assert response.status_code == 200
        if fmt is ExportFormat.csv:
            rows = list(csv.DictReader(io.StringIO(response.text)))
            keys = [r["external_id"] for r in rows]
            search = (await client.get("/api/v1/stations", params={**params, "sort": "id", "limit": 500})).json()
            assert keys == [s["external_id"] for s in search["items"]]
        elif fmt is ExportFormat.geojson:
            assert [f["id"] for f in response.json()["features"]] == expected
        else:
            assert [s["id"] for s in response.json()] == expected


async def test_export_rejects_bad_queries(client: httpx.AsyncClient) -> None:
    assert (await client.get(EXPORT, params={"format": "xml"})).status_code == 422
    response = await client.get(EXPORT, params={"radius_km": 5})
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "radius_km"
    assert (await client.get(EXPORT, params={"lat": 10})).json()["error"]["details"][0]["field"] == "lon"
    assert (await client.get(EXPORT, params={"bbox": "1,2,3"})).status_code == 422


async def _insert(db: Database, start: int, count: int, station_item: StationFactory) -> None:
    items = (
        (n, StationIn.model_validate(
            station_item(n, latitude=-40 + (n % 1000) * 0.01, longitude=170 + n // 1000 * 0.01)
        ))
        for n in range(start, start + count)
    )
    report = await upsert_stations(db, items)
    assert report.created == count


async def _export_peak(db: Database) -> tuple[int, int]:
    """(bytes produced, peak traced memory) of a GeoJSON export of everything."""
    size = 0
    tracemalloc.start()
    try:
        async for chunk in export_stations(db, fmt=ExportFormat.geojson, query=StationQuery()):
            size += len(chunk)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return size, peak


async def test_export_memory_does_not_grow_with_the_number_of_stations(
    db: Database, station_item: StationFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export_module, "EXPORT_PAGE", 100)  # many pages from few stations
    await _insert(db, 0, 500, station_item)
    small_size, small_peak = await _export_peak(db)
    await _insert(db, 500, 4500, station_item)
    big_size, big_peak = await _export_peak(db)
    assert big_size > 9.5 * small_size
    # One page at a time: ten times the stations, about the same peak, far below the size of the output.
    assert big_peak < 1.5 * small_peak
    assert big_peak < big_size / 3


def test_cli_export_to_file_and_stdout(
    settings: Settings, station_item: StationFactory, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    async def seed() -> None:
        db = Database(settings.database_url)
        try:
            await _insert(db, 0, 3, station_item)
        finally:
            await db.dispose()

    asyncio.run(seed())
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    from voltway.settings import get_settings

    get_settings.cache_clear()
    try:
        runner = CliRunner()
        target = tmp_path / "out.geojson"
        result = runner.invoke(cli_app, ["export", "geojson", "-o", str(target)])
        assert result.exit_code == 0, result.output
        document = orjson.loads(target.read_bytes())
        _validate_geojson(document)
        assert sorted(f["properties"]["external_id"] for f in document["features"]) == ["acme-0", "acme-1", "acme-2"]
        assert "3 stations" in result.output

        result = runner.invoke(cli_app, ["export", "csv", "--country", "NZ"])
        assert result.exit_code == 0, result.output
        rows = list(csv.DictReader(io.StringIO(result.stdout)))
        assert [r["external_id"] for r in rows] == ["acme-0", "acme-1", "acme-2"]
        result = runner.invoke(cli_app, ["export", "csv", "--country", "FR"])
        assert result.stdout.count("\n") == 1
    finally:
        get_settings.cache_clear()

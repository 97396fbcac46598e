"""Status writes on stations: the PATCH goes through the status recorder, bulk status makes cached reads stale."""

import httpx
import pytest
from station_factories import make_station

from voltway.core.db import Database

pytestmark = pytest.mark.usefixtures("backend")


async def _history(db: Database, station_id: int) -> list[tuple[int | None, str, str | None, str]]:
    rows = await db.fetch(
        "SELECT connector_id, status, previous_status, source FROM status_history WHERE station_id = :s ORDER BY id",
        {"s": station_id},
    )
    return [tuple(row) for row in rows]


async def test_patch_status_is_recorded_in_the_history(
    client: httpx.AsyncClient, operator_headers: dict[str, str], db: Database
) -> None:
    station_id = (await client.post("/api/v1/stations", json=make_station(), headers=operator_headers)).json()["id"]
    url = f"/api/v1/stations/{station_id}"

    patched = await client.patch(url, json={"status": "out_of_service", "name": "Renamed"}, headers=operator_headers)
    assert patched.status_code == 200
    assert (patched.json()["status"], patched.json()["name"]) == ("out_of_service", "Renamed")
    assert (await client.get(url)).json()["status"] == "out_of_service"
    assert await _history(db, station_id) == [(None, "out_of_service", "available", "api")]

    # The same status again changes nothing and records nothing; other fields still apply.
    again = await client.patch(url, json={"status": "out_of_service", "town": "Mitte"}, headers=operator_headers)
    assert (again.json()["status"], again.json()["town"]) == ("out_of_service", "Mitte")
    assert len(await _history(db, station_id)) == 1


async def test_bulk_status_makes_cached_searches_stale(
    client: httpx.AsyncClient, operator_headers: dict[str, str]
) -> None:
    created = (await client.post("/api/v1/stations", json=make_station(), headers=operator_headers)).json()
    connector_id = created["connectors"][0]["id"]
    search = "/api/v1/stations?lat=52.52&lon=13.37&radius_km=10"
    detail = f"/api/v1/stations/{created['id']}"
    for url in (search, detail):  # cached now
        assert (await client.get(url)).status_code == 200

    body = [{"station_id": created["id"], "status": "occupied", "connectors": [{"id": connector_id, "status": "occupied"}]}]
    response = await client.post("/api/v1/stations/status", json=body, headers=operator_headers)
    assert response.json() == {"updated": 1, "unchanged": 0, "errors": []}

    item = (await client.get(search)).json()["items"][0]
    assert (item["status"], item["connectors"][0]["status"], item["connectors"][1]["status"]) == (
        "occupied", "occupied", "available"
    )
    station = (await client.get(detail)).json()
    assert (station["status"], station["connectors"][0]["status"]) == ("occupied", "occupied")

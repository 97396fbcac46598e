"""POST /api/v1/stations/status: many station and connector statuses in one call, per-item errors, history."""

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from voltway.core.db import Database

pytestmark = pytest.mark.usefixtures("backend")
StationFactory = Callable[..., dict[str, Any]]
URL = "/api/v1/stations/status"


async def _seed(client: httpx.AsyncClient, headers: dict[str, str], items: list[dict[str, Any]]) -> None:
    response = await client.post("/api/v1/stations/bulk", json=items, headers=headers)
    assert response.json()["created"] == len(items)


async def _state(db: Database) -> dict[str, tuple[str, list[tuple[int, str]]]]:
    stations = await db.fetch("SELECT id, external_id, status FROM stations ORDER BY id", {})
    connectors = await db.fetch("SELECT station_id, id, status FROM connectors ORDER BY id", {})
    return {
        ext: (status, [(cid, cstatus) for sid2, cid, cstatus in connectors if sid2 == sid])
        for sid, ext, status in stations
    }


async def test_statuses_of_stations_and_connectors(
    client: httpx.AsyncClient, operator_headers: dict[str, str], db: Database, station_item: StationFactory
) -> None:
    await _seed(client, operator_headers, [station_item(n) for n in range(1, 5)])
    before = await _state(db)
    ids = {ext: sid for sid, ext in await db.fetch("SELECT id, external_id FROM stations", {})}
    (c1, _), (c2, _) = before["acme-2"][1]
    body = [
        {"station_id": ids["acme-1"], "status": "out_of_service"},
        {"source": "acme", "external_id": "acme-2", "connectors": [{"id": c1, "status": "occupied"},
                                                                  {"id": c2, "status": "available"}]},
        {"station_id": ids["acme-3"], "status": "available"},  # already available
        {"station_id": 999999, "status": "available"},
        {"source": "acme", "external_id": "nope", "status": "available"},
        {"station_id": ids["acme-4"], "status": "occupied", "connectors": [{"id": c1, "status": "available"}]},
        {"station_id": ids["acme-4"], "status": "exploded"},
        {"station_id": ids["acme-4"]},
        {"status": "available"},
        "not an object",
    ]
    response = await client.post(URL, json=body, headers=operator_headers)
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["updated"], result["unchanged"]) == (2, 1)
    errors = {e["index"]: (e["code"], e["message"]) for e in result["errors"]}
    assert sorted(errors) == [3, 4, 5, 6, 7, 8, 9]
    assert errors[3] == ("station_not_found", "station id 999999 does not exist")
    assert errors[4] == ("station_not_found", "station acme/nope does not exist")
    assert errors[5] == ("connector_not_found", f"station {ids['acme-4']} has no connector {c1}")
    assert errors[6][0] == "validation_error" and errors[6][1].startswith("status:")
    assert "nothing to change" in errors[7][1]
    assert "give station_id or external_id" in errors[8][1]
    assert errors[9] == ("validation_error", "expected a JSON object")

    after = await _state(db)
    assert after["acme-1"][0] == "out_of_service"
    assert after["acme-2"][1] == [(c1, "occupied"), (c2, "available")]
    assert after["acme-3"] == before["acme-3"]
    assert after["acme-4"] == before["acme-4"]  # the whole item was rejected

    history = await db.fetch(
        "SELECT station_id, connector_id, status, previous_status, source FROM status_history ORDER BY id", {}
    )
    assert sorted(history, key=lambda r: (r[0], r[1] or 0)) == [
        (ids["acme-1"], None, "out_of_service", "available", "bulk"),
        (ids["acme-2"], c1, "occupied", "available", "bulk"),
        (ids["acme-2"], c2, "available", "occupied", "bulk"),
    ]


async def test_roles_and_limits(
    client: httpx.AsyncClient, readonly_headers: dict[str, str], operator_headers: dict[str, str]
) -> None:
    assert (await client.post(URL, json=[])).status_code == 401
    assert (await client.post(URL, json=[], headers=readonly_headers)).status_code == 403
    too_many = [{"station_id": 1, "status": "available"}] * 1001
    response = await client.post(URL, json=too_many, headers=operator_headers)
    assert response.status_code == 413
    assert response.json()["error"]["message"].startswith("at most 1000 items per request, got 1001")


async def test_a_thousand_items(
    client: httpx.AsyncClient, operator_headers: dict[str, str], db: Database, station_item: StationFactory
) -> None:
    await _seed(client, operator_headers, [station_item(n) for n in range(1000)])
    connectors = await db.fetch("SELECT station_id, id FROM connectors ORDER BY id", {})
    by_station: dict[int, list[int]] = {}
    for sid, cid in connectors:
        by_station.setdefault(sid, []).append(cid)
    body = [
        {"station_id": sid, "status": "occupied",
         "connectors": [{"id": cid, "status": "out_of_service"} for cid in cids]}
        for sid, cids in by_station.items()
    ]
    started = time.perf_counter()
    response = await client.post(URL, json=body, headers=operator_headers)
    elapsed = time.perf_counter() - started
    assert response.json() == {"updated": 1000, "unchanged": 0, "errors": []}
    assert await db.fetch("SELECT count(*) FROM status_history", {}) == [(3000,)]
    assert await db.fetch("SELECT DISTINCT status FROM connectors", {}) == [("out_of_service",)]
    print(f"1,000 status items (3,000 changes): {elapsed * 1000:.0f} ms")

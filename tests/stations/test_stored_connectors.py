"""Answers embed `stations.connectors_json` (kept by triggers): after every kind of write it equals the connectors
table, read independently, in the search, nearest, detail and write answers."""

from typing import Any

import httpx
import pytest
from station_factories import make_station

from voltway.charging.status import record_status_change
from voltway.core.cache import cache
from voltway.core.db import Database
from voltway.core.geo import unit_vector
from voltway.stations.models import Connector, Station

pytestmark = pytest.mark.usefixtures("backend")

FIELDS = ("id", "type", "type_name", "power_kw", "current", "quantity", "status")
SEARCH = "/api/v1/stations?lat=52.52&lon=13.37&radius_km=50&limit=500"
NEAREST = "/api/v1/stations/nearest?lat=52.52&lon=13.37&k=500"


async def _truth(db: Database) -> dict[int, list[dict[str, Any]]]:
    """Every station's connectors from the normalized tables."""
    stations = await db.fetch("SELECT id FROM stations", {})
    rows = await db.fetch(f"SELECT station_id, {', '.join(FIELDS)} FROM connectors ORDER BY id", {})
    truth: dict[int, list[dict[str, Any]]] = {sid: [] for (sid,) in stations}
    for station_id, *values in rows:
        truth[station_id].append(dict(zip(FIELDS, values, strict=True)))
    return truth


async def _assert_in_step(client: httpx.AsyncClient, db: Database) -> dict[int, list[dict[str, Any]]]:
    truth = await _truth(db)
    for url in (SEARCH, NEAREST):
        items = (await client.get(url)).json()["items"]
        assert {item["id"]: item["connectors"] for item in items} == truth
    for station_id, connectors in truth.items():
        assert (await client.get(f"/api/v1/stations/{station_id}")).json()["connectors"] == connectors
    return truth


async def test_every_write_keeps_the_stored_connectors_in_step(
    client: httpx.AsyncClient, operator_headers: dict[str, str], db: Database
) -> None:
    created = await client.post("/api/v1/stations", json=make_station(), headers=operator_headers)
    station_id = created.json()["id"]
    truth = await _assert_in_step(client, db)
    assert created.json()["connectors"] == truth[station_id]
    assert [c["power_kw"] for c in truth[station_id]] == [350, 22]

    # PATCH replacing the connectors, then one changing other fields only.
    connectors = [{"type": "nacs", "type_name": "NACS", "power_kw": 250.5, "current": "DC", "quantity": 8,
                   "status": "occupied"}]  # fmt: skip
    patched = await client.patch(f"/api/v1/stations/{station_id}", json={"connectors": connectors},
                                 headers=operator_headers)  # fmt: skip
    truth = await _assert_in_step(client, db)
    assert patched.json()["connectors"] == truth[station_id]
    assert [(c["type"], c["power_kw"], c["quantity"]) for c in truth[station_id]] == [("nacs", 250.5, 8)]
    await client.patch(f"/api/v1/stations/{station_id}", json={"name": "Renamed"}, headers=operator_headers)
    await _assert_in_step(client, db)

    # Bulk import: new stations, then the same keys with other connectors (the engine's driver SQL).
    items = [make_station(source="acme", external_id=f"a{n}", latitude=52.5 + n / 100) for n in range(3)]
    assert (await client.post("/api/v1/stations/bulk", json=items, headers=operator_headers)).json()["created"] == 3
    await _assert_in_step(client, db)
    items[1]["connectors"] = items[1]["connectors"][:1]
    items[2]["connectors"] = []
    assert (await client.post("/api/v1/stations/bulk", json=items, headers=operator_headers)).json()["updated"] == 2
    truth = await _assert_in_step(client, db)
    assert sorted(len(c) for c in truth.values()) == [0, 1, 1, 2]

    # Connector statuses: bulk status, and the single writer used by charging sessions.
    first = truth[station_id][0]["id"]
    body = [{"station_id": station_id, "connectors": [{"id": first, "status": "out_of_service"}]}]
    assert (await client.post("/api/v1/stations/status", json=body, headers=operator_headers)).json()["updated"] == 1
    assert (await _assert_in_step(client, db))[station_id][0]["status"] == "out_of_service"
    async with db.sessionmaker() as session, session.begin():
        await record_status_change(session, station_id=station_id, connector_id=first, status="available",
                                   source="test")  # fmt: skip
    await cache.invalidate("stations")  # written past the API: the routes' invalidation did not run
    assert (await _assert_in_step(client, db))[station_id][0]["status"] == "available"

    # ORM writes outside the API, and deletes (the station's connectors go with it).
    async with db.sessionmaker() as session, session.begin():
        fields = {k: v for k, v in make_station(name="orm").items() if k != "connectors"}
        x, y, z = unit_vector(fields["latitude"], fields["longitude"])
        connectors = [Connector(type="type2", power_kw=11.0, status="unknown")]
        session.add(Station(**fields, x=x, y=y, z=z, rating_count=0, connectors=connectors))
    await cache.invalidate("stations")
    await _assert_in_step(client, db)
    await client.delete(f"/api/v1/stations/{station_id}", headers=operator_headers)
    assert station_id not in await _assert_in_step(client, db)

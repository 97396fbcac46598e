"""Charging sessions: start/stop by drivers and operator keys, cost, connector status and its history."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from tests.accounts.factories import make_station
from voltway.charging.models import ChargingSession
from voltway.charging.service import session_cost


async def connector_status(db, connector_id):
    return (await db.fetch("SELECT status FROM connectors WHERE id = :id", {"id": connector_id}))[0][0]


async def history(db, station_id):
    rows = await db.fetch(
        "SELECT connector_id, previous_status, status, source FROM status_history WHERE station_id = :id ORDER BY id",
        {"id": station_id},
    )
    return [tuple(r) for r in rows]


async def backdate(db, session_id, minutes):
    async with db.sessionmaker.begin() as session:
        await session.execute(
            update(ChargingSession).where(ChargingSession.id == session_id)
            .values(started_at=datetime.now(UTC) - timedelta(minutes=minutes))
        )


async def test_driver_session_cost_status_and_history(client, db, backend, driver, station):
    connector = station.connector_ids[0]

    async def shown_status():  # through the (cached) station answer
        shown = (await client.get(f"/api/v1/stations/{station.id}")).json()
        return next(c["status"] for c in shown["connectors"] if c["id"] == connector)

    assert await shown_status() == "available"
    started = await client.post("/api/v1/sessions", headers=driver.headers,
                                json={"station_id": station.id, "connector_id": connector})
    assert started.status_code == 201
    charge = started.json()
    assert (charge["status"], charge["user_id"], charge["cost"], charge["ended_at"]) == ("active", driver.id, None, None)
    assert await connector_status(db, connector) == "occupied"
    assert await shown_status() == "occupied"

    again = await client.post("/api/v1/sessions", headers=driver.headers,
                              json={"station_id": station.id, "connector_id": connector})
    assert again.status_code == 409

    await backdate(db, charge["id"], 30)
    stopped = await client.post(f"/api/v1/sessions/{charge['id']}/stop", headers=driver.headers, json={"energy_kwh": 20.5})
    assert stopped.status_code == 200
    done = stopped.json()
    # 0.59 EUR/kWh + 1.00 EUR per session (the fixture's price); no per-minute part.
    assert (done["status"], done["energy_kwh"], done["cost"], done["currency"]) == ("completed", 20.5, 13.1, "EUR")
    assert await connector_status(db, connector) == "available"
    assert await shown_status() == "available"
    assert await history(db, station.id) == [
        (connector, "available", "occupied", "session"),
        (connector, "occupied", "available", "session"),
    ]
    assert (await client.post(f"/api/v1/sessions/{charge['id']}/stop", headers=driver.headers,
                              json={"energy_kwh": 1})).status_code == 409
    assert (await client.get(f"/api/v1/sessions/{charge['id']}", headers=driver.headers)).json() == done
    assert (await client.get("/api/v1/sessions", headers=driver.headers)).json()["items"] == [done]


async def test_per_minute_free_and_unknown_prices(client, db, backend, operator_headers):
    cases = [
        ({"currency": "GBP", "per_kwh": None, "per_minute": 0.1, "per_session": None, "free": False}, 6.0, "GBP"),
        ({"currency": None, "per_kwh": None, "per_minute": None, "per_session": None, "free": True}, 0.0, None),
        (None, None, None),
    ]
    for price, cost, currency in cases:
        made = await make_station(db, price=price)
        charge = (await client.post("/api/v1/sessions", headers=operator_headers,
                                    json={"station_id": made.id, "connector_id": made.connector_ids[0]})).json()
        assert charge["user_id"] is None
        await backdate(db, charge["id"], 60)
        done = (await client.post(f"/api/v1/sessions/{charge['id']}/stop", headers=operator_headers,
                                  json={"energy_kwh": 10})).json()
        assert done["currency"] == currency
        assert done["cost"] == pytest.approx(cost, abs=0.01) if cost is not None else done["cost"] is None


def test_session_cost_formula():
    price = {"currency": "EUR", "per_kwh": 0.4, "per_minute": 0.05, "per_session": 2.0, "free": False}
    assert session_cost(price, energy_kwh=12.5, minutes=42) == (9.1, "EUR")  # 5.00 + 2.10 + 2.00
    # Half-up on the decimal value: 0.59 * 20.5 + 1 = 13.095 -> 13.10 (binary floats would give 13.09).
    assert session_cost({**price, "per_minute": None, "per_kwh": 0.59, "per_session": 1.0}, energy_kwh=20.5, minutes=3) == (13.1, "EUR")
    assert session_cost({"currency": "EUR", "per_kwh": None, "per_minute": None, "per_session": None, "free": False},
                        energy_kwh=1, minutes=1) == (None, None)


async def test_sessions_are_private_to_their_driver(client, backend, driver, other_driver, station, operator_headers):
    mine = (await client.post("/api/v1/sessions", headers=driver.headers,
                              json={"station_id": station.id, "connector_id": station.connector_ids[0]})).json()
    assert (await client.get(f"/api/v1/sessions/{mine['id']}", headers=other_driver.headers)).status_code == 404
    assert (await client.post(f"/api/v1/sessions/{mine['id']}/stop", headers=other_driver.headers,
                              json={"energy_kwh": 1})).status_code == 404
    assert (await client.get("/api/v1/sessions", headers=other_driver.headers)).json()["items"] == []
    everything = (await client.get("/api/v1/sessions", headers=operator_headers,
                                   params={"station_id": station.id})).json()
    assert [s["id"] for s in everything["items"]] == [mine["id"]]
    # An operator can stop a driver's session (e.g. a stuck one).
    assert (await client.post(f"/api/v1/sessions/{mine['id']}/stop", headers=operator_headers,
                              json={"energy_kwh": 0})).status_code == 200


async def test_refusals(client, db, backend, driver, other_driver, station):
    connector = station.connector_ids[1]
    now = datetime.now(UTC)
    held = await client.post("/api/v1/reservations", headers=other_driver.headers, json={
        "station_id": station.id, "connector_id": connector,
        "starts_at": now.isoformat(), "ends_at": (now + timedelta(hours=1)).isoformat()})
    assert held.status_code == 201
    body = {"station_id": station.id, "connector_id": connector}
    taken = await client.post("/api/v1/sessions", headers=driver.headers, json=body)
    assert taken.status_code == 409 and "conflicting" in taken.json()["error"]["details"]
    assert (await client.post("/api/v1/sessions", headers=other_driver.headers, json=body)).status_code == 201

    closed = await make_station(db, status="out_of_service")
    assert (await client.post("/api/v1/sessions", headers=driver.headers,
                              json={"station_id": closed.id, "connector_id": closed.connector_ids[0]})).status_code == 409
    assert (await client.post("/api/v1/sessions", headers=driver.headers,
                              json={"station_id": station.id, "connector_id": 999999})).status_code == 422
    assert (await client.post("/api/v1/sessions/999999/stop", headers=driver.headers,
                              json={"energy_kwh": 1})).status_code == 404
    assert (await client.post("/api/v1/sessions/1/stop", headers=driver.headers,
                              json={"energy_kwh": -1})).status_code == 422


async def test_concurrent_starts_on_one_connector(client, db, backend, station, operator_headers):
    body = {"station_id": station.id, "connector_id": station.connector_ids[0]}
    responses = await asyncio.gather(*(client.post("/api/v1/sessions", headers=operator_headers, json=body)
                                       for _ in range(20)))
    assert sorted(r.status_code for r in responses) == [201] + [409] * 19
    assert await history(db, station.id) == [(station.connector_ids[0], "available", "occupied", "session")]

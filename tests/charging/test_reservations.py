"""Reservations: validation, overlap answered with the conflicting window, 50 concurrent requests."""

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tests.accounts.factories import make_driver

BASE = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)


def window(station, start_h: float, end_h: float, *, connector=0, tz=UTC):
    return {
        "station_id": station.id,
        "connector_id": station.connector_ids[connector],
        "starts_at": (BASE + timedelta(hours=start_h)).astimezone(tz).isoformat(),
        "ends_at": (BASE + timedelta(hours=end_h)).astimezone(tz).isoformat(),
    }


async def test_reserve_list_cancel(client, backend, driver, other_driver, station):
    body = window(station, 1, 2, tz=timezone(timedelta(hours=1)))  # given in +01:00, stored and shown in UTC
    created = await client.post("/api/v1/reservations", headers=driver.headers, json=body)
    assert created.status_code == 201
    reservation = created.json()
    assert datetime.fromisoformat(reservation["starts_at"]) == BASE + timedelta(hours=1)
    assert datetime.fromisoformat(reservation["starts_at"]).utcoffset() == timedelta(0)
    assert reservation["status"] == "active"

    clash = await client.post("/api/v1/reservations", headers=other_driver.headers, json=window(station, 1.5, 3))
    assert clash.status_code == 409
    conflicting = clash.json()["error"]["details"]["conflicting"]
    assert datetime.fromisoformat(conflicting["starts_at"]) == BASE + timedelta(hours=1)
    assert datetime.fromisoformat(conflicting["ends_at"]) == BASE + timedelta(hours=2)

    # Touching windows, and other connectors, do not overlap.
    assert (await client.post("/api/v1/reservations", headers=other_driver.headers, json=window(station, 2, 3))).status_code == 201
    assert (await client.post("/api/v1/reservations", headers=other_driver.headers,
                              json=window(station, 1, 2, connector=1))).status_code == 201

    mine = (await client.get("/api/v1/reservations", headers=driver.headers)).json()
    assert [r["id"] for r in mine["items"]] == [reservation["id"]]
    assert (await client.get(f"/api/v1/reservations/{reservation['id']}", headers=other_driver.headers)).status_code == 404
    assert (await client.post(f"/api/v1/reservations/{reservation['id']}/cancel", headers=other_driver.headers)).status_code == 404

    cancelled = await client.post(f"/api/v1/reservations/{reservation['id']}/cancel", headers=driver.headers)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert (await client.post(f"/api/v1/reservations/{reservation['id']}/cancel", headers=driver.headers)).json()["status"] == "cancelled"
    # The freed window can be taken again.
    assert (await client.post("/api/v1/reservations", headers=other_driver.headers, json=window(station, 1, 2))).status_code == 201


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        (2, 1, "ends_at"),  # ends before it starts
        (1, 1, "ends_at"),  # empty
        (1, 5.5, "ends_at"),  # longer than 4 hours
        (-30, -29, "starts_at"),  # in the past
        (24 * 91, 24 * 91 + 1, "starts_at"),  # too far ahead
    ],
)
async def test_bad_windows_are_422(client, driver, station, start, end, field):
    response = await client.post("/api/v1/reservations", headers=driver.headers, json=window(station, start, end))
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == field


async def test_naive_times_and_foreign_connectors_are_422(client, driver, station):
    naive = window(station, 1, 2) | {"starts_at": (BASE + timedelta(hours=1)).replace(tzinfo=None).isoformat()}
    response = await client.post("/api/v1/reservations", headers=driver.headers, json=naive)
    assert response.status_code == 422 and response.json()["error"]["details"][0]["field"] == "starts_at"
    foreign = window(station, 1, 2) | {"connector_id": 999999}
    response = await client.post("/api/v1/reservations", headers=driver.headers, json=foreign)
    assert response.status_code == 422 and response.json()["error"]["details"][0]["field"] == "connector_id"
    missing = window(station, 1, 2) | {"station_id": 999999}
    assert (await client.post("/api/v1/reservations", headers=driver.headers, json=missing)).status_code == 404


async def test_fifty_concurrent_overlapping_requests_one_wins(client, db, settings, backend, station):
    drivers = [await make_driver(db, settings) for _ in range(50)]
    # Every window overlaps every other: all contain hour 2.
    bodies = [window(station, 1 + (i % 4) * 0.25, 3 + (i % 3) * 0.25) for i in range(50)]
    responses = await asyncio.gather(
        *(client.post("/api/v1/reservations", headers=d.headers, json=b) for d, b in zip(drivers, bodies, strict=True))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 49
    winner = next(r.json() for r in responses if r.status_code == 201)
    rows = await db.fetch("SELECT id FROM reservations WHERE status = 'active'", {})
    assert [row[0] for row in rows] == [winner["id"]]
    for response in responses:
        if response.status_code == 409:
            conflicting = response.json()["error"]["details"]["conflicting"]
            assert datetime.fromisoformat(conflicting["starts_at"]) == datetime.fromisoformat(winner["starts_at"])

"""Check-ins, operators resolving reports, and the time-decayed reliability score."""

from datetime import timedelta

from sqlalchemy import update

from voltway.core.db import utcnow
from voltway.reviews.models import Checkin


async def checkin(client, driver, station_id, outcome, **extra):
    return await client.post(
        f"/api/v1/stations/{station_id}/checkins", headers=driver.headers, json={"outcome": outcome, **extra}
    )


async def age(db, checkin_id, days):
    async with db.sessionmaker.begin() as session:
        await session.execute(
            update(Checkin).where(Checkin.id == checkin_id).values(created_at=utcnow() - timedelta(days=days))
        )


async def test_checkin_list_and_validation(client, backend, driver, station):
    created = await checkin(client, driver, station.id, "broken", connector_id=station.connector_ids[1], comment="Dead")
    assert created.status_code == 201
    body = created.json()
    assert (body["outcome"], body["connector_id"], body["comment"], body["resolved_at"]) == (
        "broken", station.connector_ids[1], "Dead", None
    )
    assert (await checkin(client, driver, station.id, "exploded")).json()["error"]["details"][0]["field"] == "outcome"
    foreign = await checkin(client, driver, station.id, "broken", connector_id=999999)
    assert foreign.status_code == 422 and foreign.json()["error"]["details"][0]["field"] == "connector_id"
    assert (await checkin(client, driver, 999999, "broken")).status_code == 404
    listed = (await client.get(f"/api/v1/stations/{station.id}/checkins")).json()
    assert [c["id"] for c in listed["items"]] == [body["id"]]


async def test_reliability_is_the_time_decayed_share_of_successes(client, db, backend, driver, station):
    empty = (await client.get(f"/api/v1/stations/{station.id}/reliability")).json()
    assert (empty["score"], empty["count"], empty["weight"], empty["recent"]) == (None, 0, 0.0, [])

    plan = [("charged_fine", 0), ("charged_fine", 30), ("could_not_charge", 60), ("broken", 0), ("charged_fine", 400)]
    ids = []
    for outcome, days in plan:
        ids.append((await checkin(client, driver, station.id, outcome)).json()["id"])
        await age(db, ids[-1], days)

    def expected(counted):
        weights = [(0.5 ** (days / 30), outcome == "charged_fine") for outcome, days in counted]
        return sum(w for w, ok in weights if ok) / sum(w for w, _ in weights), sum(w for w, _ in weights)

    score, weight = expected(plan[:4])  # 400 days old: outside the window
    got = (await client.get(f"/api/v1/stations/{station.id}/reliability")).json()
    assert got["count"] == 4 and got["half_life_days"] == 30
    assert abs(got["score"] - score) < 1e-6 and abs(got["weight"] - weight) < 1e-6
    assert [c["id"] for c in got["recent"]] == list(reversed(ids))


async def test_operators_resolve_failure_reports(client, db, backend, driver, station, operator_headers):
    broken = (await checkin(client, driver, station.id, "broken")).json()
    fine = (await checkin(client, driver, station.id, "charged_fine")).json()
    before = (await client.get(f"/api/v1/stations/{station.id}/reliability")).json()
    assert abs(before["score"] - 0.5) < 1e-6

    resolved = await client.post(f"/api/v1/checkins/{broken['id']}/resolve", headers=operator_headers)
    assert resolved.status_code == 200 and resolved.json()["resolved_at"] is not None
    again = await client.post(f"/api/v1/checkins/{broken['id']}/resolve", headers=operator_headers)
    assert again.json()["resolved_at"] == resolved.json()["resolved_at"]
    after = (await client.get(f"/api/v1/stations/{station.id}/reliability")).json()
    assert after["score"] == 1.0 and after["count"] == 1

    assert (await client.post(f"/api/v1/checkins/{fine['id']}/resolve", headers=operator_headers)).status_code == 409
    assert (await client.post("/api/v1/checkins/999999/resolve", headers=operator_headers)).status_code == 404

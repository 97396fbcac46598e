"""Check-ins, operators resolving reports, and the time-decayed reliability score."""

from datetime import timedelta

import pytest

from sqlalchemy import update

from tests.accounts.factories import make_station
from tests.reviews.factories import C, expected_reliability, make_checkins
from voltway.core.db import utcnow
from voltway.reviews.models import Checkin
from voltway.reviews.service import reliability_of


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


async def test_reliability_of_many_stations_is_one_statement(client, db, backend, driver, station, monkeypatch):
    plans = {
        "mixed": [C("charged_fine"), C("charged_fine", 12), C("could_not_charge", 45), C("broken", 3, resolved=True),
                  C("charged_fine", 400)],
        "failing": [C("broken", 1), C("charged_fine", 90)],
        "only_resolved_or_old": [C("could_not_charge", 5, resolved=True), C("charged_fine", 366)],
        "none": [],
    }
    ids = {"mixed": station.id}
    for name in ("failing", "only_resolved_or_old", "none"):
        ids[name] = (await make_station(db)).id
    for name, plan in plans.items():
        await make_checkins(db, user_id=driver.id, station_id=ids[name], checkins=plan)

    statements: list[str] = []
    fetch = db.fetch

    async def recorded(sql, params, **options):
        statements.append(sql)
        return await fetch(sql, params, **options)

    monkeypatch.setattr(db, "fetch", recorded)
    many = await reliability_of(db, [*ids.values(), 999999])
    one = await reliability_of(db, [ids["failing"]])
    monkeypatch.undo()

    assert set(many) == {ids["mixed"], ids["failing"]}  # no counted check-in: unknown, left out
    for name in ("mixed", "failing"):
        score, weight, count = expected_reliability(plans[name])
        got = many[ids[name]]
        assert abs(got.score - score) < 1e-6 and abs(got.weight - weight) < 1e-6 and got.count == count
    assert list(one) == [ids["failing"]]
    assert tuple(one[ids["failing"]]) == pytest.approx(tuple(many[ids["failing"]]), abs=1e-6)
    # One statement each, the same text for 5 ids and for 1 (the ids are a single array parameter).
    assert len(statements) == 2 and statements[0] == statements[1]

    single = (await client.get(f"/api/v1/stations/{ids['mixed']}/reliability")).json()
    assert (single["score"], single["weight"], single["count"]) == pytest.approx(tuple(many[ids["mixed"]]), abs=1e-6)

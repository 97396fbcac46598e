"""Recommendations: the documented score, the reasons, personal vs anonymous ranking, on both databases."""

import pytest
from sqlalchemy import event, text

from tests.accounts.factories import Driver, make_driver
from tests.analytics.factories import S, make_review, make_sessions, make_station, utc
from tests.reviews.factories import C, expected_reliability, make_checkins
from voltway.accounts.models import Favorite, User
from voltway.core.geo import haversine_km

pytestmark = pytest.mark.usefixtures("backend")

HERE = (52.52, 13.40)


@pytest.fixture
async def stations(db):
    near_slow = await make_station(  # 22 kW type2 right here, free
        db, name="Near AC", lat=52.52, lon=13.40, country="DE", operator="Town",
        connectors=[{"type": "type2", "power_kw": 22}], price={"free": True, "currency": None},
    )
    fast = await make_station(  # 150 kW CCS 2.2 km away, 0.40 EUR/kWh
        db, name="Fast CCS", lat=52.54, lon=13.40, country="DE", operator="Ionity",
        connectors=[{"type": "ccs2", "power_kw": 150}, {"type": "type2", "power_kw": 22}],
        price={"currency": "EUR", "per_kwh": 0.4, "free": False},
    )
    broken = await make_station(
        db, name="Broken", lat=52.521, lon=13.401, country="DE", operator="X", status="out_of_service",
        connectors=[{"type": "ccs2", "power_kw": 50, "status": "out_of_service"}],
    )
    return {"near": near_slow, "fast": fast, "broken": broken}


async def driver_with_car(db, settings, car: list[str]) -> Driver:
    driver = await make_driver(db, settings)
    async with db.sessionmaker.begin() as session:
        user = await session.get(User, driver.id)
        user.car_connectors = car
    return driver


def expected(distance_km, compat, power_kw, rating_sum, rating_count, availability, price, favorite=0, visits=0,
             reliability=0.5):
    bayes = (rating_sum + 3.5 * 2) / (rating_count + 2)
    return round(
        0.28 / (1 + distance_km / 5) + 0.22 * compat + 0.13 * min(power_kw / 150, 1) + 0.12 * reliability
        + 0.08 * (bayes - 1) / 4 + 0.08 * availability + 0.05 * price + 0.02 * favorite + 0.02 * min(visits, 5) / 5,
        4,
    )


def km(lat, lon):
    return round(haversine_km(*HERE, lat, lon), 3)


async def test_anonymous_ranking(client, stations):
    response = await client.get("/api/v1/me/recommendations", params={"lat": HERE[0], "lon": HERE[1]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["personalized"] is False
    scores = {i["station"]["id"]: i["score"] for i in body["items"]}
    assert scores[stations["near"]] == expected(0.0, 1, 22, 0, 0, 1.0, 1.0)
    assert scores[stations["fast"]] == expected(km(52.54, 13.40), 1, 150, 0, 0, 1.0, 1 - 0.4 / 0.8)
    assert scores[stations["broken"]] == expected(km(52.521, 13.401), 1, 50, 0, 0, 0.0, 0.5)
    # Without check-ins both are 0.5 reliable: the free station right here edges out the fast one.
    assert [i["station"]["id"] for i in body["items"]] == [stations["near"], stations["fast"], stations["broken"]]
    assert body["items"][1]["summary"] == f"150 kW, {km(52.54, 13.40):.1f} km, available, 0.4 EUR/kWh"


async def test_personal_ranking_uses_car_favorites_history_and_rating(client, db, settings, stations):
    driver = await driver_with_car(db, settings, ["type2"])
    async with db.sessionmaker.begin() as session:
        session.add(Favorite(user_id=driver.id, station_id=stations["near"]))
    await make_sessions(db, [S("near", utc(2026, 3, 1, 10), utc(2026, 3, 1, 11), 5, 0, "EUR", "me")] * 2,
                        {"near": stations["near"]}, {"me": driver.id})
    await make_review(db, user_id=driver.id, station_id=stations["near"], rating=5, at=utc(2026, 3, 1))
    async with db.sessionmaker.begin() as session:  # the station's rating as the reviews feature keeps it
        await session.execute(text("UPDATE stations SET rating_average = 5, rating_count = 1 WHERE id = :id"),
                              {"id": stations["near"]})
    response = await client.get(
        "/api/v1/me/recommendations", params={"lat": HERE[0], "lon": HERE[1], "limit": 2}, headers=driver.headers
    )
    body = response.json()
    assert body["personalized"] is True
    first, second = body["items"]
    assert first["station"]["id"] == stations["near"]
    assert first["score"] == expected(0.0, 1, 22, 5, 1, 1.0, 1.0, favorite=1, visits=2)
    assert first["reasons"] == ["compatible type2", "22 kW", "5.0★", "0.0 km", "available", "free", "favorite",
                                "charged here 2×"]
    # The fast station only fits through its 22 kW type2 connector for this car.
    assert second["station"]["id"] == stations["fast"]
    assert second["score"] == expected(km(52.54, 13.40), 1, 22, 0, 0, 1.0, 0.5)
    assert second["reasons"][0] == "compatible type2"


async def test_incompatible_car_and_bad_input(client, db, settings, stations):
    driver = await driver_with_car(db, settings, ["chademo"])
    body = (await client.get("/api/v1/me/recommendations", params={"lat": 52.52, "lon": 13.4},
                             headers=driver.headers)).json()
    assert all(i["reasons"][0] == "no compatible connector" for i in body["items"])
    bad = await client.get("/api/v1/me/recommendations", params={"lat": 95, "lon": 13.4})
    assert bad.status_code == 422
    forged = await client.get("/api/v1/me/recommendations", params={"lat": 1, "lon": 1},
                              headers={"Authorization": "Bearer nope"})
    assert forged.status_code == 401


async def test_checkins_change_the_ranking(client, db, settings, stations):
    author = await make_driver(db, settings)
    plans = {
        # Counted: two recent successes and a failure decayed over 45 days; the resolved report and the
        # 400-day-old success are not.
        "fast": [C("charged_fine"), C("charged_fine", 10), C("could_not_charge", 45), C("broken", 1, resolved=True),
                 C("charged_fine", 400)],
        "near": [C("broken", 2), C("charged_fine", 60)],  # a fresh failure outweighs an old success
        "broken": [C("could_not_charge", 3, resolved=True)],  # nothing counts: unknown, 0.5
    }
    for name, plan in plans.items():
        await make_checkins(db, user_id=author.id, station_id=stations[name], checkins=plan)
    fast, near = expected_reliability(plans["fast"])[0], expected_reliability(plans["near"])[0]
    assert expected_reliability(plans["broken"]) is None

    body = (await client.get("/api/v1/me/recommendations", params={"lat": HERE[0], "lon": HERE[1]})).json()
    items = {i["station"]["id"]: i for i in body["items"]}
    assert [i["station"]["id"] for i in body["items"]] == [stations["fast"], stations["near"], stations["broken"]]
    assert items[stations["fast"]]["score"] == expected(km(52.54, 13.40), 1, 150, 0, 0, 1.0, 0.5, reliability=fast)
    assert items[stations["near"]]["score"] == expected(0.0, 1, 22, 0, 0, 1.0, 1.0, reliability=near)
    assert items[stations["broken"]]["score"] == expected(km(52.521, 13.401), 1, 50, 0, 0, 0.0, 0.5)
    assert items[stations["fast"]]["reasons"] == [
        "150 kW", f"{round(fast * 100)}% reliable", f"{km(52.54, 13.40):.1f} km", "available", "0.4 EUR/kWh"
    ]
    assert f"{round(near * 100)}% reliable" in items[stations["near"]]["reasons"]
    assert not any("reliable" in r for r in items[stations["broken"]]["reasons"])


async def test_recent_checkins_outweigh_old_ones(client, db, settings):
    """Two twins at one spot, each with one success and one failure: the one whose failure is old ranks first."""
    twin = {"lat": HERE[0], "lon": HERE[1], "country": "DE", "operator": "Twin",
            "connectors": [{"type": "ccs2", "power_kw": 50}]}
    first, second = await make_station(db, name="Failed lately", **twin), await make_station(db, name="Fixed", **twin)
    author = await make_driver(db, settings)
    plans = {first: [C("charged_fine", 90), C("broken", 0)], second: [C("charged_fine", 0), C("broken", 90)]}
    for station_id, plan in plans.items():
        await make_checkins(db, user_id=author.id, station_id=station_id, checkins=plan)

    body = (await client.get("/api/v1/me/recommendations", params={"lat": HERE[0], "lon": HERE[1]})).json()
    assert [i["station"]["id"] for i in body["items"]] == [second, first]
    for item in body["items"]:
        reliability = expected_reliability(plans[item["station"]["id"]])[0]
        assert item["score"] == expected(0.0, 1, 50, 0, 0, 1.0, 0.5, reliability=reliability)
        assert item["reasons"][1] == f"{round(reliability * 100)}% reliable"


async def test_one_statement_for_the_reliability_of_all_candidates(client, db, settings, stations, monkeypatch):
    """Beyond the geo search, a request runs the same statements (same SQL text) for 3 candidates as for 13: one
    for the reliability of all of them (and two for the driver's favorites and sessions), the candidate ids
    as one array parameter (no IN list growing with them)."""
    driver = await driver_with_car(db, settings, ["ccs2"])
    author = await make_driver(db, settings)
    seen: list[str] = []
    fetch = db.fetch

    async def fetched(sql, params, **options):  # the fast read path (SQLite bypasses the engine there)
        if "checkins" in sql:
            seen.append(sql)
        return await fetch(sql, params, **options)

    def executed(_conn, _cursor, statement, *_args):
        if "favorites" in statement or "charging_sessions" in statement:
            seen.append(statement)

    async def statements(headers):
        seen.clear()
        monkeypatch.setattr(db, "fetch", fetched)
        event.listen(db.engine.sync_engine, "before_cursor_execute", executed)
        try:
            response = await client.get(
                "/api/v1/me/recommendations", params={"lat": HERE[0], "lon": HERE[1], "limit": 50}, headers=headers
            )
        finally:
            event.remove(db.engine.sync_engine, "before_cursor_execute", executed)
            monkeypatch.undo()
        return len(response.json()["items"]), list(seen)

    before = {kind: await statements(headers) for kind, headers in (("anonymous", {}), ("driver", driver.headers))}
    for n in range(10):
        station_id = await make_station(db, name=f"More {n}", lat=52.53 + n / 1000, lon=13.41, country="DE",
                                        operator="X", connectors=[{"type": "ccs2", "power_kw": 50}])
        await make_checkins(db, user_id=author.id, station_id=station_id, checkins=[C("charged_fine", n)])
    for kind, headers in (("anonymous", {}), ("driver", driver.headers)):
        count, after = await statements(headers)
        assert (before[kind][0], count) == (3, 13)
        assert after == before[kind][1]
        assert len(after) == (1 if kind == "anonymous" else 3) and sum("checkins" in s for s in after) == 1

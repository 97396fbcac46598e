"""Recommendations: the documented score, the reasons, personal vs anonymous ranking, on both databases."""

import pytest
from sqlalchemy import text

from tests.accounts.factories import Driver, make_driver
from tests.analytics.factories import S, make_review, make_sessions, make_station, utc
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


def expected(distance_km, compat, power_kw, rating_sum, rating_count, availability, price, favorite=0, visits=0):
    bayes = (rating_sum + 3.5 * 2) / (rating_count + 2)
    return round(
        0.30 / (1 + distance_km / 5) + 0.25 * compat + 0.15 * min(power_kw / 150, 1) + 0.10 * (bayes - 1) / 4
        + 0.10 * availability + 0.05 * price + 0.03 * favorite + 0.02 * min(visits, 5) / 5,
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
    assert [i["station"]["id"] for i in body["items"]] == [stations["fast"], stations["near"], stations["broken"]]
    assert body["items"][0]["summary"] == f"150 kW, {km(52.54, 13.40):.1f} km, available, 0.4 EUR/kWh"


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

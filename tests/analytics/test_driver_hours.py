"""Distinct drivers from `analytics_driver_hours`: each row's previous hour survives an incremental refresh,
so a driver active both before and after the refresh point is counted once, in every cube cell."""

from datetime import timedelta

import pytest
from sqlalchemy import text

from tests.analytics.factories import S, make_sessions, make_station, make_user
from voltway.analytics.rollups import rebuild, refresh
from voltway.core.db import utcnow

pytestmark = pytest.mark.usefixtures("backend")


async def test_driver_hours_across_refresh(client, operator_headers, db):
    stations = {
        "A": await make_station(db, name="A", lat=52.5, lon=13.4, country="DE", operator="Ionity",
                                connectors=[{"type": "ccs2", "power_kw": 150}]),
        "B": await make_station(db, name="B", lat=48.1, lon=11.6, country="DE", operator="EnBW",
                                connectors=[{"type": "ccs2", "power_kw": 50}]),
    }
    users = {u: await make_user(db, f"{u}@example.com") for u in ("u1", "u2")}
    base = utcnow().replace(minute=0, second=0, microsecond=0)
    await make_sessions(db, [
        S("A", base - timedelta(hours=10, minutes=-5), base - timedelta(hours=9), 5, 2.0, "EUR", "u1"),
        S("A", base - timedelta(hours=8, minutes=-5), base - timedelta(hours=7), 5, 2.0, "EUR", "u2"),
    ], stations, users)
    async with db.sessionmaker.begin() as session:
        await rebuild(session, now=base - timedelta(hours=5))
    # After the rollup: u1 again, at another operator's station; then the incremental step.
    await make_sessions(db, [S("B", base - timedelta(hours=3, minutes=-5), base - timedelta(hours=2), 5, 2.0,
                               "EUR", "u1")], stations, users)
    async with db.sessionmaker.begin() as session:
        await refresh(session, now=utcnow())
        rows = (await session.execute(text(
            "SELECT country, operator, user_id, hour, prev_hour FROM analytics_driver_hours "
            "ORDER BY country, operator, user_id, hour"))).all()

    def hour(hours_ago: int) -> int:
        return int((base - timedelta(hours=hours_ago)).timestamp())

    u1, u2 = users["u1"], users["u2"]
    cells = {
        ("*", "*"): [(u1, hour(10), -1), (u1, hour(3), hour(10)), (u2, hour(8), -1)],
        ("*", "EnBW"): [(u1, hour(3), -1)],
        ("*", "Ionity"): [(u1, hour(10), -1), (u2, hour(8), -1)],
        ("DE", "*"): [(u1, hour(10), -1), (u1, hour(3), hour(10)), (u2, hour(8), -1)],
        ("DE", "EnBW"): [(u1, hour(3), -1)],
        ("DE", "Ionity"): [(u1, hour(10), -1), (u2, hour(8), -1)],
    }
    assert [tuple(r) for r in rows] == [(c, o, *row) for (c, o), cell in sorted(cells.items()) for row in cell]

    for scope, expected in (({}, 2), ({"operator": "Ionity"}, 2), ({"operator": "EnBW"}, 1), ({"country": "DE"}, 2)):
        answers = []
        for rollups in ("true", "false"):
            response = await client.get("/api/v1/analytics/trends", params={"days": 1, "rollups": rollups, **scope},
                                        headers=operator_headers)
            assert response.status_code == 200, response.text
            answer = response.json()
            answer["window"].pop("source")
            answers.append(answer)
        assert answers[0] == answers[1]
        assert answers[0]["current"]["unique_drivers"] == expected

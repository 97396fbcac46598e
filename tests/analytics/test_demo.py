"""Demo activity: marked as demo, realistic rhythm, consistent ratings, rollups ready; on both databases."""

import pytest
from sqlalchemy import text

from tests.analytics.factories import make_station
from voltway.analytics.demo import DEMO_DOMAIN, load_demo_activity
from voltway.core.db import utcnow

pytestmark = pytest.mark.usefixtures("backend")


async def scalar(db, sql: str):
    async with db.sessionmaker() as session:
        return (await session.execute(text(sql))).scalar()


async def test_demo_activity(client, db, operator_headers):
    for i in range(6):
        await make_station(db, name=f"Fast {i}", lat=48 + i / 10, lon=11, country="DE", operator="Fast",
                           connectors=[{"type": "ccs2", "power_kw": 150, "quantity": 1}] * 2)
        await make_station(db, name=f"Slow {i}", lat=49 + i / 10, lon=11, country="DE", operator="Slow",
                           connectors=[{"type": "type2", "power_kw": 11}])
    summary = await load_demo_activity(db, now=utcnow())
    assert "demo operator key vw_" in summary
    assert await load_demo_activity(db) == "demo activity already present"

    assert await scalar(db, f"SELECT COUNT(*) FROM users WHERE is_demo AND email LIKE '%@{DEMO_DOMAIN}'") == 2000
    assert await scalar(db, "SELECT COUNT(*) FROM users WHERE NOT is_demo") == 0
    # No two sessions overlap on one connector.
    assert await scalar(db, """SELECT COUNT(*) FROM charging_sessions a JOIN charging_sessions b
        ON a.connector_id = b.connector_id AND a.id < b.id
        AND a.started_at < b.ended_at AND b.started_at < a.ended_at""") == 0
    fast = await scalar(db, "SELECT COUNT(*) FROM charging_sessions cs JOIN stations s ON s.id = cs.station_id "
                            "WHERE s.operator = 'Fast'")
    slow = await scalar(db, "SELECT COUNT(*) FROM charging_sessions cs JOIN stations s ON s.id = cs.station_id "
                            "WHERE s.operator = 'Slow'")
    assert fast > 3 * slow > 0
    # Ratings are exactly the reviews'.
    assert await scalar(db, """SELECT COUNT(*) FROM stations s WHERE s.rating_count <>
        (SELECT COUNT(*) FROM reviews r WHERE r.station_id = s.id)""") == 0
    # The daily rhythm: the evening is busier than the night (in the stations' local time, UTC+1).
    hours = (await client.get("/api/v1/analytics/peak-hours", params={"days": 90, "tz": "Europe/Berlin"},
                              headers=operator_headers)).json()
    by_hour = {b["hour"]: b["sessions"] for b in hours["buckets"]}
    assert by_hour[18] > 3 * by_hour[3]
    days = (await client.get("/api/v1/analytics/peak-days", params={"days": 90, "tz": "Europe/Berlin"},
                             headers=operator_headers)).json()
    by_day = [b["sessions"] for b in days["buckets"]]
    assert min(by_day[:5]) > by_day[6]  # quieter Sundays
    # Rollups were rebuilt: the closed part of the window is read from them, and agrees with the raw rows.
    assert hours["window"]["source"] in ("rollups", "rollups+raw")
    raw = (await client.get("/api/v1/analytics/peak-hours", params={"days": 90, "tz": "Europe/Berlin",
                                                                    "rollups": "false"},
                            headers=operator_headers)).json()
    assert raw["buckets"] == hours["buckets"]

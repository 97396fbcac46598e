"""Analytics endpoints on a hand-built dataset, on SQLite and PostgreSQL, against an independent oracle.

Every answer is asked three ways: from raw sessions (`rollups=false`), from the rollups after a rebuild, and
computed by the minute-by-minute oracle of conftest.py. All three must agree exactly.
"""

import time
from datetime import timedelta

import pytest
from sqlalchemy import text

from tests.conftest import new_key
from voltway.accounts.roles import Role
from voltway.analytics.rollups import rebuild, refresh
from voltway.charging.models import StatusChange
from voltway.core.db import utcnow

from tests.analytics.factories import (
    S,
    local,
    make_review,
    make_sessions,
    make_station,
    make_user,
    oracle_occupied_minutes,
    oracle_window_minutes,
    utc,
)

pytestmark = pytest.mark.usefixtures("backend")

BERLIN = "Europe/Berlin"
# Local 2026-03-27 00:00 to 2026-03-31 00:00 in Berlin, across the change to summer time (29 March, 01:00 UTC).
W0, W1 = utc(2026, 3, 26, 23), utc(2026, 3, 30, 22)
WINDOW = {"from": "2026-03-27T00:00:00+01:00", "to": "2026-03-31T00:00:00+02:00"}

SESSIONS = [
    S("A", utc(2026, 3, 27, 22, 30), utc(2026, 3, 28, 0, 15), 30, 12.34, "EUR", "u1"),  # crosses midnight
    S("A", utc(2026, 3, 28, 10, 0), utc(2026, 3, 28, 10, 45), 20.5, 8.20, "EUR", "u2"),
    S("B", utc(2026, 3, 29, 0, 40), utc(2026, 3, 29, 1, 50), 40, 15.00, "EUR", "u1"),  # crosses the DST change
    S("C", utc(2026, 3, 29, 12, 5), utc(2026, 3, 29, 13, 35), 11, 4.40, "EUR", "u3"),
    S("A", utc(2026, 3, 30, 21, 30), utc(2026, 3, 30, 22, 30), 9, 3.60, "EUR", "u2"),  # runs past the window
    S("A", utc(2026, 3, 26, 22, 0), utc(2026, 3, 26, 23, 30), 5, 2.00, "EUR", "u3"),  # starts before the window
    S("B", utc(2026, 3, 30, 8, 0), utc(2026, 3, 30, 9, 0), 7, None, None, None),  # operator key, price unknown
    S("C", utc(2026, 3, 28, 15, 0), utc(2026, 3, 28, 16, 0), 10, 3.00, "CHF", "u1"),  # another currency
    S("A", utc(2026, 2, 1, 10, 0), utc(2026, 2, 1, 11, 0), 1, 1.00, "EUR", "u1"),  # long before
]
IN_WINDOW = [s for s in SESSIONS if W0 <= s.start < W1]
CAPACITY = 3 + 1 + 2 + 1


@pytest.fixture
async def data(db):
    stations = {
        "A": await make_station(
            db, name="Berlin Hbf", lat=52.52, lon=13.37, country="DE", operator="Ionity",
            connectors=[{"type": "ccs2", "power_kw": 150, "quantity": 2}, {"type": "type2", "power_kw": 22}],
        ),
        "B": await make_station(
            db, name="Munich", lat=48.14, lon=11.58, country="DE", operator="EnBW",
            connectors=[{"type": "ccs2", "power_kw": 50}],
        ),
        "C": await make_station(
            db, name="Paris", lat=48.85, lon=2.35, country="FR", operator="Ionity",
            connectors=[{"type": "type2", "power_kw": 22, "quantity": 2}],
        ),
        "D": await make_station(
            db, name="London", lat=51.5, lon=-0.12, country="GB", operator=None,
            connectors=[{"type": "type2", "power_kw": 7}],
        ),
    }
    users = {u: await make_user(db, f"{u}@example.com", ["ccs2"]) for u in ("u1", "u2", "u3")}
    await make_sessions(db, SESSIONS, stations, users)
    async with db.sessionmaker.begin() as session:
        for at, status, previous in ((utc(2026, 3, 28), "out_of_service", "available"),
                                     (utc(2026, 3, 29), "available", "out_of_service")):
            session.add(StatusChange(station_id=stations["D"], connector_id=None, status=status,
                                     previous_status=previous, changed_at=at, source="test"))
    for user, station, rating in (("u1", "A", 5), ("u2", "A", 4), ("u3", "C", 2)):
        await make_review(db, user_id=users[user], station_id=stations[station], rating=rating, at=utc(2026, 3, 28))
    return stations, users


async def rebuild_now(db) -> None:
    async with db.sessionmaker.begin() as session:
        await rebuild(session, now=utcnow())


async def both(client, headers, path, params, db) -> dict:
    """The answer from raw rows and, after a rollup rebuild, from the rollups: they must be identical."""
    raw = await client.get(path, params={**params, "rollups": "false"}, headers=headers)
    assert raw.status_code == 200, raw.text
    await rebuild_now(db)
    rolled = await client.get(path, params=params, headers=headers)
    assert rolled.status_code == 200, rolled.text
    raw_body, rolled_body = raw.json(), rolled.json()
    assert raw_body["window"].pop("source") == "raw"
    expected_source = rolled_body["window"].pop("source")
    assert expected_source == ("raw" if params.get("tz") == "Asia/Kolkata" else "rollups")
    assert rolled_body == raw_body
    return rolled_body


def hourly_oracle(tz: str):
    to_local = local(tz)
    occupied = oracle_occupied_minutes(SESSIONS, W0, W1, utcnow(), lambda m: to_local(m).hour)
    spans = oracle_window_minutes(W0, W1, lambda m: to_local(m).hour)
    starts: dict[int, int] = {}
    for s in IN_WINDOW:
        starts[to_local(s.start).hour] = starts.get(to_local(s.start).hour, 0) + 1
    return occupied, spans, starts


@pytest.mark.parametrize("tz", [BERLIN, "UTC", "America/New_York", "Asia/Kolkata"])
async def test_peak_hours(client, operator_headers, data, db, tz):
    body = await both(client, operator_headers, "/api/v1/analytics/peak-hours", {**WINDOW, "tz": tz}, db)
    occupied, spans, starts = hourly_oracle(tz)
    assert body["capacity"] == CAPACITY
    assert body["window"] == {"from": "2026-03-26T23:00:00Z", "to": "2026-03-30T22:00:00Z", "tz": tz}
    for bucket in body["buckets"]:
        h = bucket["hour"]
        active = occupied.get(h, 0) / spans[h] if spans.get(h) else 0.0
        assert bucket == {
            "hour": h,
            "sessions": starts.get(h, 0),
            "occupied_hours": round(occupied.get(h, 0) / 60, 3),
            "mean_active_sessions": round(active, 4),
            "occupancy": round(active / CAPACITY, 4),
        }
    if tz == BERLIN:  # 02:00 did not exist on 29 March: three of the four days have it
        assert spans[2] == 3 * 60


async def test_peak_days(client, operator_headers, data, db):
    body = await both(client, operator_headers, "/api/v1/analytics/peak-days", {**WINDOW, "tz": BERLIN}, db)
    to_local = local(BERLIN)
    occupied = oracle_occupied_minutes(SESSIONS, W0, W1, utcnow(), lambda m: to_local(m).weekday())
    spans = oracle_window_minutes(W0, W1, lambda m: to_local(m).weekday())
    assert [b["name"] for b in body["buckets"]][:2] == ["Monday", "Tuesday"]
    for b in body["buckets"]:
        wd = b["weekday"]
        sessions = sum(1 for s in IN_WINDOW if to_local(s.start).weekday() == wd)
        active = occupied.get(wd, 0) / spans[wd] if spans.get(wd) else 0.0
        assert (b["sessions"], b["mean_active_sessions"]) == (sessions, round(active, 4))
    assert spans[6] == 23 * 60  # Sunday 29 March had 23 hours


async def test_trends_daily_with_previous_period(client, operator_headers, data, db):
    body = await both(client, operator_headers, "/api/v1/analytics/trends", {**WINDOW, "tz": BERLIN}, db)
    to_local = local(BERLIN)
    dates = ["2026-03-27", "2026-03-28", "2026-03-29", "2026-03-30"]
    assert [p["start"] for p in body["series"]] == dates
    for point in body["series"]:
        day = [s for s in IN_WINDOW if to_local(s.start).date().isoformat() == point["start"]]
        revenue: dict[str, float] = {}
        for s in day:
            if s.cost:
                revenue[s.currency] = round(revenue.get(s.currency, 0) + s.cost, 2)
        assert point == {
            "start": point["start"],
            "sessions": len(day),
            "energy_kwh": round(sum(s.energy for s in day), 3),
            "revenue": dict(sorted(revenue.items())),
            "unique_drivers": len({s.user for s in day if s.user}),
        }
    assert body["current"] == {
        "sessions": 7, "energy_kwh": 127.5, "revenue": {"CHF": 3.0, "EUR": 43.54}, "unique_drivers": 3,
    }
    assert body["previous"] == {"sessions": 1, "energy_kwh": 5.0, "revenue": {"EUR": 2.0}, "unique_drivers": 1}
    assert body["change_pct"] == {
        "sessions": 600.0, "energy_kwh": 2450.0, "unique_drivers": 200.0, "revenue": {"CHF": None, "EUR": 2077.0},
    }


async def test_trends_weekly(client, operator_headers, data, db):
    body = await both(
        client, operator_headers, "/api/v1/analytics/trends", {**WINDOW, "tz": BERLIN, "interval": "week"}, db
    )
    # Friday 27 March to Monday 30 March: the weeks starting Monday 23 and Monday 30 March.
    assert [(p["start"], p["sessions"]) for p in body["series"]] == [("2026-03-23", 5), ("2026-03-30", 2)]


async def test_popular(client, operator_headers, data, db):
    stations, _users = data
    body = await both(client, operator_headers, "/api/v1/analytics/popular", {**WINDOW, "by": "sessions"}, db)
    assert body["items"] == [
        {"station_id": stations["A"], "name": "Berlin Hbf", "operator": "Ionity", "country": "DE", "sessions": 3,
         "energy_kwh": 59.5, "occupied_hours": 3.5, "revenue": {"EUR": 24.14}},
        {"station_id": stations["B"], "name": "Munich", "operator": "EnBW", "country": "DE", "sessions": 2,
         "energy_kwh": 47.0, "occupied_hours": round(130 / 60, 3), "revenue": {"EUR": 15.0}},
        {"station_id": stations["C"], "name": "Paris", "operator": "Ionity", "country": "FR", "sessions": 2,
         "energy_kwh": 21.0, "occupied_hours": 2.5, "revenue": {"CHF": 3.0, "EUR": 4.4}},
    ]
    by_energy = await both(client, operator_headers, "/api/v1/analytics/popular", {**WINDOW, "by": "energy"}, db)
    assert [i["station_id"] for i in by_energy["items"]] == [stations["A"], stations["B"], stations["C"]]
    chf = await both(
        client, operator_headers, "/api/v1/analytics/popular", {**WINDOW, "by": "revenue", "currency": "CHF"}, db
    )
    assert chf["items"][0]["station_id"] == stations["C"]
    ionity_fr = await both(
        client, operator_headers, "/api/v1/analytics/popular", {**WINDOW, "operator": "Ionity", "country": "fr"}, db
    )
    assert [i["station_id"] for i in ionity_fr["items"]] == [stations["C"]]
    boxed = await both(
        client, operator_headers, "/api/v1/analytics/popular", {**WINDOW, "bbox": "10,45,15,55"}, db
    )
    assert [i["station_id"] for i in boxed["items"]] == [stations["A"], stations["B"]]


async def test_revenue_groupings(client, operator_headers, data, db):
    stations, _users = data
    by_operator = await both(
        client, operator_headers, "/api/v1/analytics/revenue", {**WINDOW, "group_by": "operator"}, db
    )
    rows = {(r["key"], r["currency"]): (r["sessions"], r["amount"]) for r in by_operator["rows"]}
    assert rows == {("Ionity", "EUR"): (4, 28.54), ("Ionity", "CHF"): (1, 3.0), ("EnBW", "EUR"): (1, 15.0),
                    ("EnBW", ""): (1, 0.0)}
    by_day = await both(client, operator_headers, "/api/v1/analytics/revenue", {**WINDOW, "tz": BERLIN}, db)
    assert by_day["totals"] == {"": 0.0, "CHF": 3.0, "EUR": 43.54}
    assert [(r["key"], r["currency"], r["amount"]) for r in by_day["rows"]] == [
        ("2026-03-27", "EUR", 12.34), ("2026-03-28", "CHF", 3.0), ("2026-03-28", "EUR", 8.2),
        ("2026-03-29", "EUR", 19.4), ("2026-03-30", "", 0.0), ("2026-03-30", "EUR", 3.6),
    ]
    by_station = await both(
        client, operator_headers, "/api/v1/analytics/revenue", {**WINDOW, "group_by": "station", "station_id":
                                                                stations["A"]}, db
    )
    assert by_station["rows"] == [{"key": str(stations["A"]), "label": "Berlin Hbf", "currency": "EUR",
                                   "sessions": 3, "energy_kwh": 59.5, "amount": 24.14}]


async def test_utilization(client, operator_headers, data, db):
    stations, _users = data
    body = await both(client, operator_headers, "/api/v1/analytics/utilization", WINDOW, db)
    span = 95  # hours in the window
    items = {i["station_id"]: i for i in body["items"]}
    assert items[stations["A"]]["utilization"] == round(3.5 / (3 * span), 4)
    assert items[stations["D"]]["available_hours"] == span - 24  # out of service for a day
    assert items[stations["D"]]["utilization"] == 0.0
    assert body["overall"] == round((3.5 + 130 / 60 + 2.5) / (3 * span + span + 2 * span + span - 24), 4)
    assert body["stations"] == 4


async def test_empty_window_and_station_without_sessions(client, operator_headers, data, db):
    stations, _users = data
    empty = {"from": "2025-01-01T00:00:00Z", "to": "2025-01-08T00:00:00Z"}
    body = await both(client, operator_headers, "/api/v1/analytics/trends", empty, db)
    assert len(body["series"]) == 7 and all(p["sessions"] == 0 for p in body["series"])
    assert body["change_pct"]["sessions"] is None
    quiet = await both(
        client, operator_headers, "/api/v1/analytics/peak-hours", {**WINDOW, "station_id": stations["D"]}, db
    )
    assert quiet["capacity"] == 1 and all(b["sessions"] == 0 and b["occupancy"] == 0 for b in quiet["buckets"])
    assert (await both(client, operator_headers, "/api/v1/analytics/popular", empty, db))["items"] == []


async def test_ratings(client, operator_headers, data):
    stations, _users = data
    response = await client.get("/api/v1/analytics/ratings", headers=operator_headers)
    body = response.json()
    assert body["window"] is None
    assert body["stations"][0] == {
        "station_id": stations["A"], "name": "Berlin Hbf", "operator": "Ionity", "count": 2, "average": 4.5,
        "distribution": {"1": 0, "2": 0, "3": 0, "4": 1, "5": 1},
    }
    assert body["operators"] == [
        {"operator": "Ionity", "count": 3, "average": 3.667, "distribution": {"1": 0, "2": 1, "3": 0, "4": 1, "5": 1}}
    ]
    old = await client.get("/api/v1/analytics/ratings", params={"days": 7}, headers=operator_headers)
    assert old.json()["stations"] == []


async def test_open_tail_and_incremental_refresh(client, operator_headers, data, db):
    """Running sessions and sessions stopped after a rollup: the job keeps rollups + raw tail == raw."""
    stations, users = data
    now = utcnow().replace(second=0, microsecond=0)
    await make_sessions(db, [
        S("A", now - timedelta(hours=30), now - timedelta(hours=29), 3, 1.5, "EUR", "u1"),
        S("B", now - timedelta(minutes=95), None, user="u2"),  # still running
    ], stations, users)
    params = {"days": 2, "tz": BERLIN}
    paths = ["/api/v1/analytics/peak-hours", "/api/v1/analytics/popular", "/api/v1/analytics/trends"]

    async def compare() -> None:
        for path in paths:
            # A running session is counted up to the request's second: ask again if the two crossed one.
            for _attempt in range(3):
                second = int(time.time())
                raw = (await client.get(path, params={**params, "rollups": "false"}, headers=operator_headers)).json()
                rolled = (await client.get(path, params=params, headers=operator_headers)).json()
                if int(time.time()) == second:
                    break
            assert rolled["window"].pop("source") == "rollups+raw"
            raw["window"].pop("source")
            assert rolled == raw

    await rebuild_now(db)
    await compare()
    # The running session stops; a new one starts and stops; the incremental step runs.
    async with db.sessionmaker.begin() as session:
        await session.execute(
            text("UPDATE charging_sessions SET ended_at = started_at + interval '80 minutes', status = 'completed', "
                 "energy_kwh = 21, cost = 9.99, currency = 'EUR' WHERE ended_at IS NULL")
            if db.dialect == "postgresql" else
            text("UPDATE charging_sessions SET ended_at = strftime('%Y-%m-%d %H:%M:%f000', started_at, '+80 minutes'),"
                 " status = 'completed', energy_kwh = 21, cost = 9.99, currency = 'EUR' WHERE ended_at IS NULL")
        )
    await make_sessions(db, [S("C", now - timedelta(minutes=20), now - timedelta(minutes=5), 4, 2.0, "EUR", "u3")],
                        stations, users)
    async with db.sessionmaker.begin() as session:
        result = await refresh(session, now=utcnow())
    assert result["through"] == (int(utcnow().timestamp()) // 3600) * 3600
    await compare()


@pytest.mark.parametrize(
    ("role", "status"), [(None, 401), (Role.readonly, 403), (Role.operator, 200), (Role.admin, 200)]
)
async def test_authorization(client, db, role, status):
    h = {"X-API-Key": await new_key(db, role)} if role else {}
    for path in ("popular", "peak-hours", "peak-days", "trends", "revenue", "utilization", "ratings"):
        response = await client.get(f"/api/v1/analytics/{path}", headers=h)
        assert response.status_code == status, (path, response.text)


@pytest.mark.parametrize(
    ("params", "field"),
    [({"tz": "Mars/Olympus"}, "tz"), ({"bbox": "1,2,3"}, "bbox"), ({"from": "2026-01-02", "to": "2026-01-01"}, "from"),
     ({"days": 0}, "days"), ({"from": "2026-01-01T00:00:00Z", "days": 3}, "days")],
)
async def test_invalid_filters_are_422(client, operator_headers, params, field):
    response = await client.get("/api/v1/analytics/peak-hours", params=params, headers=operator_headers)
    assert response.status_code == 422
    assert field in [d["field"] for d in response.json()["error"]["details"]]

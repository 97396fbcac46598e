"""The rollup levels of migration 0008a against raw rows, on SQLite and PostgreSQL.

- `analytics_driver_gaps`: distinct drivers per local day (trends) from gap counts, per window from the drivers
  active since its start; checked against raw rows and a set-based oracle, in a DST zone, a zone with a 2-hour
  DST step (26-hour days: the gaps cannot answer, the driver hours do), half-hour zones (raw), windows not
  aligned to days, and rollups ending before, inside and after the window.
- `analytics_station_currencies` running totals: per-station answers reaching the end of the rollups.
- `analytics_review_hours`: kept by triggers through inserts, updates and deletes of reviews.
- An incremental refresh leaves every rollup table as a rebuild does.
"""

import asyncio
import random
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from alembic import command
from sqlalchemy import delete, select, text, update

from tests.analytics.factories import S, make_review, make_sessions, make_station, make_user, utc
from voltway.analytics import queries
from voltway.analytics.facts import Scope
from voltway.analytics.queries import Query
from voltway.analytics.rollups import rebuild, refresh
from voltway.analytics.window import resolve_window
from voltway.core.db import utcnow
from voltway.migrations import alembic_config
from voltway.reviews.models import Review

pytestmark = pytest.mark.usefixtures("backend")

BERLIN = "Europe/Berlin"
ZONES = [BERLIN, "UTC", "America/New_York", "Antarctica/Troll", "Asia/Kolkata", "Australia/Lord_Howe"]
DRIVERS = ["u1", "u2", "u3", "u4", "u5", "u6"]
# Around the change to summer time in Berlin and Troll (29 March 2026, 01:00 UTC).
WINDOWS = {
    "local days": (datetime(2026, 3, 27, tzinfo=ZoneInfo(BERLIN)), datetime(2026, 3, 31, tzinfo=ZoneInfo(BERLIN))),
    "ragged": (utc(2026, 3, 26, 19, 17), utc(2026, 3, 30, 5, 41)),
}
ROLLED = [utc(2026, 3, 25), utc(2026, 3, 28, 13), utc(2026, 3, 29, 1), utc(2026, 4, 6)]


def sessions() -> list[S]:
    """Sessions from 18 March to 4 April: drivers coming back after minutes, hours and days, midnights crossed."""
    rng = random.Random(7)
    out = []
    t = utc(2026, 3, 18)
    while t < utc(2026, 4, 4):
        t += timedelta(minutes=rng.randint(20, 200))
        energy = rng.randint(1, 60)
        currency = rng.choice(["EUR", "EUR", "CHF", None])
        out.append(S(rng.choice("ABCD"), t, t + timedelta(minutes=rng.randint(5, 400)), energy,
                     round(energy * 0.4, 2) if currency else None, currency, rng.choice([*DRIVERS, None])))
    return out


SESSIONS = sessions()


@pytest.fixture
async def data(db):
    stations = {
        "A": await make_station(db, name="A", lat=52.52, lon=13.37, country="DE", operator="Ionity",
                                connectors=[{"type": "ccs2", "power_kw": 150, "quantity": 2}]),
        "B": await make_station(db, name="B", lat=48.14, lon=11.58, country="DE", operator="EnBW",
                                connectors=[{"type": "ccs2", "power_kw": 50}]),
        "C": await make_station(db, name="C", lat=48.85, lon=2.35, country="FR", operator="Ionity",
                                connectors=[{"type": "type2", "power_kw": 22}]),
        "D": await make_station(db, name="D", lat=51.5, lon=-0.12, country="GB", operator=None,
                                connectors=[{"type": "type2", "power_kw": 7}]),
    }
    users = {u: await make_user(db, f"{u}@example.com") for u in DRIVERS}
    await make_sessions(db, SESSIONS, stations, users)
    return stations, users


CASES = {
    "trends by day": lambda s, q: queries.trends(s, q=q, interval="day"),
    "trends by week": lambda s, q: queries.trends(s, q=q, interval="week"),
    "peak-hours": lambda s, q: queries.peak_hours(s, q=q),
    "popular": lambda s, q: queries.popular(s, q=q, by="sessions", currency="EUR", limit=10),
    "revenue by day": lambda s, q: queries.revenue(s, q=q, group_by="day", limit=100),
    "revenue by station": lambda s, q: queries.revenue(s, q=q, group_by="station", limit=100),
    "revenue by operator": lambda s, q: queries.revenue(s, q=q, group_by="operator", limit=100),
    "utilization": lambda s, q: queries.utilization(s, q=q, limit=10),
    "ratings": lambda s, q: queries.ratings(s, q=q, windowed=True, limit=10),
}


async def answer(db, case: str, scope: Scope, window_name: str, tz: str, rollups: bool) -> tuple[str, Any]:
    start, end = WINDOWS[window_name]
    window = resolve_window(from_=start, to=end, days=None, tz=tz, now=utcnow())
    async with db.sessionmaker() as session:
        body = await CASES[case](session, Query(scope, window, rollups))
    source = body["window"].pop("source") if body.get("window") else None
    return source, body


async def rebuild_at(db, now: datetime) -> None:
    async with db.sessionmaker.begin() as session:
        await rebuild(session, now=now)


@pytest.mark.parametrize("rolled", ROLLED, ids=lambda t: t.strftime("%m-%dT%H"))
async def test_rollups_equal_raw(db, data, rolled):
    stations, _users = data
    await rebuild_at(db, rolled)
    scopes = [Scope(), Scope(operator="Ionity"), Scope(country="DE"), Scope(station_id=stations["A"]),
              Scope(bbox=(10.0, 45.0, 15.0, 55.0))]
    checked = set()
    for window_name in WINDOWS:
        for tz in ZONES:
            for scope in scopes if tz == BERLIN else scopes[:2]:
                for case in CASES if tz == BERLIN else ("trends by day", "trends by week", "peak-hours"):
                    raw_source, raw = await answer(db, case, scope, window_name, tz, rollups=False)
                    source, rolled_up = await answer(db, case, scope, window_name, tz, rollups=True)
                    assert rolled_up == raw, (case, scope, window_name, tz)
                    checked.add(source)
    if rolled > WINDOWS["local days"][1]:
        assert "rollups" in checked


def oracle_drivers(start: datetime, end: datetime, tz: str) -> tuple[dict[str, int], int, int]:
    """Distinct drivers per local day of [start, end) (start and end on whole hours), in it and in the period
    of the same length before it."""
    zone = ZoneInfo(tz)
    days: dict[str, set[str]] = {}
    for s in SESSIONS:
        if s.user and start <= s.start < end:
            days.setdefault(s.start.astimezone(zone).date().isoformat(), set()).add(s.user)
    current = {s.user for s in SESSIONS if s.user and start <= s.start < end}
    previous = {s.user for s in SESSIONS if s.user and start - (end - start) <= s.start < start}
    return {d: len(u) for d, u in days.items()}, len(current), len(previous)


@pytest.mark.parametrize("rolled", ROLLED[1:], ids=lambda t: t.strftime("%m-%dT%H"))
@pytest.mark.parametrize("tz", [BERLIN, "Antarctica/Troll"])
async def test_unique_drivers_match_an_oracle(db, data, rolled, tz):
    await rebuild_at(db, rolled)
    start, end = WINDOWS["local days"]
    _source, body = await answer(db, "trends by day", Scope(), "local days", tz, rollups=True)
    per_day, current, previous = oracle_drivers(start.astimezone(ZoneInfo("UTC")), end.astimezone(ZoneInfo("UTC")),
                                                tz)
    assert {p["start"]: p["unique_drivers"] for p in body["series"] if p["unique_drivers"]} == per_day
    assert (body["current"]["unique_drivers"], body["previous"]["unique_drivers"]) == (current, previous)


async def rollup_tables(db) -> dict[str, list[tuple]]:
    tables = {
        "analytics_station_hours": "station_id, hour, currency",
        "analytics_cube_hours": "country, operator, hour, currency",
        "analytics_station_totals": "station_id, currency, hour",
        "analytics_station_currencies": "station_id, currency",
        "analytics_driver_hours": "country, operator, user_id, hour",
        "analytics_driver_gaps": "country, operator, hour, gap",
    }
    out = {}
    async with db.sessionmaker() as session:
        for table, key in tables.items():
            where = "WHERE n <> 0" if table == "analytics_driver_gaps" else ""  # emptied counts may stay
            rows = await session.execute(text(f"SELECT * FROM {table} {where} ORDER BY {key}"))
            out[table] = [tuple(r) for r in rows.all()]
    return out


async def test_refresh_leaves_the_rollups_a_rebuild_makes(db, data):
    stations, users = data
    now = utcnow().replace(second=0, microsecond=0)
    first = now - timedelta(hours=30)
    await make_sessions(db, [
        S("A", first - timedelta(hours=5), first - timedelta(hours=4, minutes=30), 5, 2.0, "EUR", "u1"),
        S("B", first - timedelta(hours=2), first - timedelta(hours=1, minutes=30), 5, 2.0, "EUR", "u1"),
    ], stations, users)
    await rebuild_at(db, first)
    # A session stopped after the rollup re-rolls the hours from its start (u1's second hour with them);
    # drivers come back minutes, hours and more than a day after the rolled-up end; one is still charging.
    await make_sessions(db, [
        S("C", first - timedelta(hours=3), first + timedelta(hours=1), 5, 2.0, "EUR", "u2"),
        S("A", now - timedelta(hours=29, minutes=50), now - timedelta(hours=29), 5, 2.0, "EUR", "u1"),
        S("B", now - timedelta(hours=20), now - timedelta(hours=19), 5, 2.0, "EUR", "u1"),
        S("C", now - timedelta(hours=3), now - timedelta(hours=2), 5, 2.0, "CHF", "u2"),
        S("D", now - timedelta(hours=2), None, user="u3"),
    ], stations, users)
    async with db.sessionmaker.begin() as session:
        await refresh(session, now=now)
    refreshed = await rollup_tables(db)
    await rebuild_at(db, now)
    assert refreshed == await rollup_tables(db)
    assert refreshed["analytics_driver_gaps"]


async def review_hours(db) -> list[tuple]:
    async with db.sessionmaker() as session:
        return [tuple(r) for r in (await session.execute(text(
            "SELECT station_id, hour, n, total, d1, d2, d3, d4, d5 FROM analytics_review_hours ORDER BY 1, 2"))).all()]


async def test_review_hours_follow_the_reviews(db, data):
    stations, users = data
    at = utc(2026, 3, 28, 10, 30)
    for user, station, rating in (("u1", "A", 5), ("u2", "A", 4), ("u3", "A", 2), ("u1", "C", 1)):
        await make_review(db, user_id=users[user], station_id=stations[station], rating=rating, at=at)
    hour = int(utc(2026, 3, 28, 10).timestamp())
    assert await review_hours(db) == [(stations["A"], hour, 3, 11, 0, 1, 0, 1, 1),
                                      (stations["C"], hour, 1, 1, 1, 0, 0, 0, 0)]
    async with db.sessionmaker.begin() as session:  # u2 changes their mind a day later; u3 deletes theirs
        await session.execute(update(Review).where(Review.user_id == users["u2"])
                              .values(rating=3, updated_at=at + timedelta(days=1)))
        await session.execute(delete(Review).where(Review.user_id == users["u3"]))
        await session.execute(update(Review).where(Review.user_id == users["u1"], Review.station_id == stations["C"])
                              .values(rating=2))
    assert await review_hours(db) == [(stations["A"], hour, 1, 5, 0, 0, 0, 0, 1),
                                      (stations["A"], hour + 86400, 1, 3, 0, 0, 1, 0, 0),
                                      (stations["C"], hour, 1, 2, 0, 1, 0, 0, 0)]
    async with db.sessionmaker() as session:
        count = (await session.execute(select(Review.id))).all()
    assert len(count) == 3
    for window_name in WINDOWS:
        assert (await answer(db, "ratings", Scope(), window_name, BERLIN, rollups=True))[1] == (
            await answer(db, "ratings", Scope(), window_name, BERLIN, rollups=False))[1]


async def test_a_26_hour_day_is_counted_from_the_driver_hours(db):
    """Antarctica/Troll falls back two hours on 25 October 2026: a 26-hour local day, longer than the gap counts
    reach, so that bucket's drivers come from the driver hours; the answers still match raw rows and the oracle."""
    shift = utc(2026, 10, 15) - utc(2026, 3, 18)
    shifted = [S(s.station, s.start + shift, s.end + shift, s.energy, s.cost, s.currency, s.user) for s in SESSIONS]
    # A new driver in the 26th hour of that day (its gap, capped at 25 hours, cannot tell it is new).
    shifted.append(S("A", utc(2026, 10, 25, 23, 30), utc(2026, 10, 25, 23, 50), 1, 0.4, "EUR", "u7"))
    station = await make_station(db, name="A", lat=-72.0, lon=2.5, country="AQ", operator="Troll",
                                 connectors=[{"type": "type2", "power_kw": 22}])
    users = {u: await make_user(db, f"{u}@example.com") for u in [*DRIVERS, "u7"]}
    await make_sessions(db, shifted, dict.fromkeys("ABCD", station), users)
    zone = ZoneInfo("Antarctica/Troll")
    start, end = datetime(2026, 10, 23, tzinfo=zone), datetime(2026, 10, 28, tzinfo=zone)
    day = datetime(2026, 10, 25, tzinfo=zone)
    assert (day + timedelta(days=1)).timestamp() - day.timestamp() == 26 * 3600
    for rolled in (utc(2026, 10, 25, 12), utc(2026, 11, 1)):
        await rebuild_at(db, rolled)
        window = resolve_window(from_=start, to=end, days=None, tz=zone.key, now=utcnow())
        bodies = []
        for rollups in (False, True):
            async with db.sessionmaker() as session:
                body = await queries.trends(session, q=Query(Scope(), window, rollups), interval="day")
            body["window"].pop("source")
            bodies.append(body)
        assert bodies[0] == bodies[1]
        days: dict[str, set[str]] = {}
        for s in shifted:
            if s.user and start <= s.start < end:
                days.setdefault(s.start.astimezone(zone).date().isoformat(), set()).add(s.user)
        assert {p["start"]: p["unique_drivers"] for p in bodies[1]["series"] if p["unique_drivers"]} == {
            d: len(u) for d, u in days.items()}


async def test_the_migration_fills_the_new_levels_as_a_rebuild_does(db, data, settings):
    """Migration 0008a on a database with rollups and reviews: the new columns and tables hold what a rebuild
    (and the review triggers) give."""
    stations, users = data
    for user, station, rating in (("u1", "A", 5), ("u2", "A", 3), ("u1", "C", 1)):
        await make_review(db, user_id=users[user], station_id=stations[station], rating=rating, at=utc(2026, 3, 28, 9))
    await rebuild_at(db, utc(2026, 4, 6))
    expected = {**await rollup_tables(db), "reviews": await review_hours(db)}
    await db.engine.dispose()  # no pooled connection in the way of the schema changes
    config = alembic_config(settings.database_url)
    await asyncio.to_thread(command.downgrade, config, "analytics_perf@-1")
    await asyncio.to_thread(command.upgrade, config, "heads")
    assert {**await rollup_tables(db), "reviews": await review_hours(db)} == expected

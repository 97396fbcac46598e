"""Analytics over 1,000,000 charging sessions at 10,000 stations: every endpoint's query over a 90-day window,
from the rollups (hourly rows, running totals per station, driver-gap counts, review hours: see
analytics/models.py) and from raw rows (`rollups=false`), measured in-process (the service functions, no HTTP).
Each query runs `--runs` + 1 times (the first warms the caches and is not counted): median and p95 in ms.

    python bench/analytics.py /tmp/analytics.db                   # SQLite: load once, then measure
    python bench/analytics.py postgresql+asyncpg://postgres@127.0.0.1/bench_analytics
    python bench/analytics.py /tmp/analytics.db --skip-load --runs 20 --raw-runs 2

The sessions are bulk-inserted directly (no API), spread over the last `--days` days (default 90, so the
90-day window holds all of them) with a daily rhythm, quieter weekends and busier fast chargers; then the
rollups are rebuilt (timed; the review hours are kept by triggers as the reviews are inserted). Buckets are in
Europe/Berlin (a DST zone). Figures and where the time goes: bench/README.md (Analytics).
"""

import argparse
import asyncio
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from synth import database_url, generate, load

from voltway.analytics import queries
from voltway.analytics.facts import Scope
from voltway.analytics.queries import Query
from voltway.analytics.rollups import rebuild
from voltway.analytics.window import resolve_window
from voltway.core.db import Database, sqlite_path, utcnow

HOURLY = [0.2, 0.1, 0.1, 0.1, 0.15, 0.3, 0.6, 1.0, 1.3, 1.1, 0.9, 0.9,
          1.0, 1.0, 0.9, 0.9, 1.0, 1.3, 1.4, 1.2, 0.9, 0.7, 0.5, 0.3]
WEEKLY = [1.0, 1.0, 1.0, 1.05, 1.1, 0.8, 0.65]
SESSION_COLUMNS = ("user_id", "station_id", "connector_id", "started_at", "ended_at", "energy_kwh", "cost",
                   "currency", "status")


def sessions(stations: list[tuple[int, float, int]], drivers: int, count: int, days: int, now: datetime, seed: int):
    """`count` completed sessions as tuples of SESSION_COLUMNS (timestamps as datetimes)."""
    rng = random.Random(seed)
    weights = [0.3 + min(power, 150) / 30 for _sid, power, _cid in stations]
    start = now - timedelta(days=days)
    day_weights = [WEEKLY[(start + timedelta(days=d)).weekday()] for d in range(days)]
    picked = rng.choices(stations, weights=weights, k=count)
    day_of = rng.choices(range(days), weights=day_weights, k=count)
    hour_of = rng.choices(range(24), weights=HOURLY, k=count)
    for (sid, power, cid), day, hour in zip(picked, day_of, hour_of, strict=True):
        started = start + timedelta(days=day, hours=hour, seconds=rng.randrange(3600))
        minutes = rng.randint(15, 50) if power >= 43 else rng.randint(45, 240)
        ended = min(started + timedelta(minutes=minutes), now - timedelta(minutes=1))
        energy = round(min(power * minutes / 60 * rng.uniform(0.45, 0.85), 80.0), 3)
        yield (rng.randrange(1, drivers + 1), sid, cid, started, ended, energy, round(energy * 0.45, 2), "EUR",
               "completed")


async def load_activity(url: str, count: int, days: int, drivers: int, seed: int) -> None:
    db = Database(url)
    now = utcnow()
    try:
        async with db.engine.connect() as conn:
            rows = (await conn.exec_driver_sql(
                "SELECT s.id, COALESCE(s.max_power_kw, 7), MIN(c.id) FROM stations s "
                "JOIN connectors c ON c.station_id = s.id GROUP BY s.id, s.max_power_kw")).all()
        stations = [(int(r[0]), float(r[1]), int(r[2])) for r in rows]
        users = [(f"bench{i}@demo.voltway.invalid", "!", "[]", True, now) for i in range(1, drivers + 1)]
        generated = list(sessions(stations, drivers, count, days, now, seed))
        rng = random.Random(seed)
        reviews = {(rng.randrange(1, drivers + 1), rng.choice(stations)[0]) for _ in range(count // 10)}
        review_rows = [(u, s, rng.choice([3, 4, 4, 5, 5, 2, 1]), now, now) for u, s in sorted(reviews)]
        if db.is_sqlite:
            import sqlite3

            fmt = "%Y-%m-%d %H:%M:%S.%f"
            conn = sqlite3.connect(sqlite_path(url))
            conn.execute("PRAGMA synchronous=OFF")
            with conn:
                conn.executemany("INSERT INTO users (email, password_hash, car_connectors, is_demo, created_at) "
                                 "VALUES (?, ?, ?, ?, ?)", [(*u[:4], u[4].strftime(fmt)) for u in users])
                conn.executemany(
                    f"INSERT INTO charging_sessions ({', '.join(SESSION_COLUMNS)}) VALUES ({', '.join('?' * 9)})",
                    ((*s[:3], s[3].strftime(fmt), s[4].strftime(fmt), *s[5:]) for s in generated))
                conn.executemany("INSERT INTO reviews (user_id, station_id, rating, created_at, updated_at) "
                                 "VALUES (?, ?, ?, ?, ?)", [(*r[:3], r[3].strftime(fmt), r[4].strftime(fmt))
                                                            for r in review_rows])
            conn.execute("ANALYZE")
            conn.close()
        else:
            import asyncpg

            conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
            try:
                await conn.copy_records_to_table("users", records=users, columns=[
                    "email", "password_hash", "car_connectors", "is_demo", "created_at"])
                await conn.copy_records_to_table("charging_sessions", records=generated, columns=SESSION_COLUMNS)
                await conn.copy_records_to_table("reviews", records=review_rows, columns=[
                    "user_id", "station_id", "rating", "created_at", "updated_at"])
                await conn.execute("ANALYZE")
            finally:
                await conn.close()
    finally:
        await db.dispose()


Case = Callable[[Any, Query], Awaitable[Any]]
CASES: dict[str, Case] = {
    "popular (by sessions)": lambda s, q: queries.popular(s, q=q, by="sessions", currency="EUR", limit=10),
    "popular (by revenue)": lambda s, q: queries.popular(s, q=q, by="revenue", currency="EUR", limit=10),
    "peak-hours": lambda s, q: queries.peak_hours(s, q=q),
    "peak-days": lambda s, q: queries.peak_days(s, q=q),
    "trends (daily)": lambda s, q: queries.trends(s, q=q, interval="day"),
    "revenue by day": lambda s, q: queries.revenue(s, q=q, group_by="day", limit=100),
    "revenue by station": lambda s, q: queries.revenue(s, q=q, group_by="station", limit=100),
    "revenue by operator": lambda s, q: queries.revenue(s, q=q, group_by="operator", limit=100),
    "utilization": lambda s, q: queries.utilization(s, q=q, limit=50),
    "ratings": lambda s, q: queries.ratings(s, q=q, windowed=True, limit=50),
}


async def measure(url: str, runs: int, raw_runs: int, tz: str, only: str | None) -> list[tuple[str, str, float, float]]:
    db = Database(url)
    results = []
    try:
        async with db.sessionmaker() as session:
            country, operator = (await session.execute(text(
                "SELECT country, operator FROM stations GROUP BY country, operator ORDER BY COUNT(*) DESC LIMIT 1"
            ))).one()
        window = resolve_window(from_=None, to=None, days=90, tz=tz, now=utcnow())
        scopes = {"all stations": Scope(), f"operator={operator}": Scope(operator=operator),
                  f"country={country}": Scope(country=country)}
        for scope_name, scope in scopes.items():
            for name, case in CASES.items():
                if scope_name != "all stations" and name not in ("peak-hours", "popular (by sessions)", "trends (daily)"):
                    continue
                if only and only not in name:
                    continue
                for use_rollups, n in ((True, runs), (False, raw_runs)):
                    if n == 0:
                        continue
                    timings = []
                    for i in range(n + 1):  # the first run warms the caches and is not counted
                        async with db.sessionmaker() as session:
                            started = time.perf_counter()
                            await case(session, Query(scope, window, use_rollups))
                            if i:
                                timings.append((time.perf_counter() - started) * 1000)
                    timings.sort()
                    p95 = timings[max(0, int(round(len(timings) * 0.95)) - 1)]
                    label = f"{name} [{scope_name}]"
                    results.append((label, "rollups" if use_rollups else "raw", statistics.median(timings), p95))
                    print(f"{label:55s} {'rollups' if use_rollups else 'raw':8s} median {statistics.median(timings):8.1f} ms"
                          f"  p95 {p95:8.1f} ms", flush=True)
    finally:
        await db.dispose()
    return results


async def rebuild_rollups(url: str) -> float:
    db = Database(url)
    try:
        started = time.perf_counter()
        async with db.sessionmaker.begin() as session:
            await rebuild(session, now=datetime.now(UTC))
        return time.perf_counter() - started
    finally:
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", help="a SQLite file path or a database URL (an empty database)")
    parser.add_argument("--stations", type=int, default=10_000)
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--drivers", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=90, help="the sessions span the last DAYS days")
    parser.add_argument("--runs", type=int, default=15, help="timed runs per query from rollups")
    parser.add_argument("--raw-runs", type=int, default=2, help="timed runs per query from raw rows (0: skip)")
    parser.add_argument("--tz", default="Europe/Berlin")
    parser.add_argument("--skip-load", action="store_true", help="measure an already loaded database")
    parser.add_argument("--only", help="measure only the queries whose name contains this")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    url = database_url(args.target)
    if not args.skip_load:
        started = time.perf_counter()
        load(url, generate(args.stations, args.seed))
        asyncio.run(load_activity(url, args.sessions, args.days, args.drivers, args.seed))
        print(f"loaded {args.stations:,} stations and {args.sessions:,} sessions in "
              f"{time.perf_counter() - started:.1f} s", file=sys.stderr)
        print(f"rollups rebuilt in {asyncio.run(rebuild_rollups(url)):.1f} s", file=sys.stderr)
    asyncio.run(measure(url, args.runs, args.raw_runs, args.tz, args.only))


if __name__ == "__main__":
    main()

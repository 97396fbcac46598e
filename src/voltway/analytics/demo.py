"""Demo activity for `voltway serve --demo`: drivers, charging sessions, reviews and favorites over the last
90 days, so that the dashboard and the recommendations show something real on first run.

Everything is marked as demo: drivers have `is_demo = true` and addresses `@demo.voltway.invalid` (a reserved
domain), and cannot log in (their password is a random secret nobody knows). The activity follows a daily rhythm
(morning and evening peaks in the station's local solar time), a weekly one (quieter weekends), and busier fast
chargers; sessions on one connector never overlap. Costs use the station's price (`session_cost`); stations
whose price text could not be read get a demo tariff in their country's currency. Seeded: the same every time.
"""

import math
import random
import secrets
from datetime import datetime, timedelta
from typing import Any

import orjson
from argon2 import PasswordHasher
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncSession

from voltway.accounts.keys import create_key
from voltway.accounts.models import Favorite, User
from voltway.accounts.roles import Role
from voltway.analytics.rollups import rebuild
from voltway.charging.models import ChargingSession
from voltway.charging.service import session_cost
from voltway.core.db import Database, utcnow
from voltway.reviews.models import Review

DEMO_DOMAIN = "demo.voltway.invalid"
DAYS = 90
DRIVERS = 2000
SEED = 20261128
# Relative demand per local hour (0-23): night trough, morning and evening peaks.
HOURLY = [0.2, 0.1, 0.1, 0.1, 0.15, 0.3, 0.6, 1.0, 1.3, 1.1, 0.9, 0.9,
          1.0, 1.0, 0.9, 0.9, 1.0, 1.3, 1.4, 1.2, 0.9, 0.7, 0.5, 0.3]
WEEKLY = [1.0, 1.0, 1.0, 1.05, 1.1, 0.8, 0.65]  # Monday .. Sunday
CURRENCIES = {
    "CH": "CHF", "GB": "GBP", "US": "USD", "PR": "USD", "CA": "CAD", "AU": "AUD", "NZ": "NZD", "AE": "AED",
    "JP": "JPY", "DK": "DKK", "TR": "TRY", "CL": "CLP", "BB": "BBD",
}
CARS = [["ccs2", "type2"], ["ccs2", "type2"], ["ccs1", "type1"], ["chademo", "type1"], ["nacs"], ["type2"],
        ["ccs2", "type2", "chademo"], ["tesla", "type2"]]
COMMENTS = {5: "Fast and easy.", 4: "Worked fine.", 3: "OK, a bit slow.", 2: "One charger was broken.",
            1: "Could not charge."}


def _daily_rate(max_power_kw: float | None) -> float:
    """Sessions per day: fast chargers are much busier."""
    power = max_power_kw or 7.0
    return min(0.15 + power / 60, 3.5)


def _demo_price(country: str | None, fast: bool) -> dict[str, Any]:
    return {"currency": CURRENCIES.get(country or "", "EUR"), "per_kwh": 0.59 if fast else 0.39,
            "per_minute": None, "per_session": None, "free": False}


def _price(value: Any) -> dict[str, Any] | None:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def plan_sessions(
    rng: random.Random, station: dict[str, Any], connectors: list[tuple[int, float | None]], now: datetime,
    drivers: list[int],
) -> list[dict[str, Any]]:
    """The demo sessions of one station over the last DAYS days, none overlapping on a connector."""
    start_day = (now - timedelta(days=DAYS)).replace(hour=0, minute=0, second=0, microsecond=0)
    solar = timedelta(hours=round(station["longitude"] / 15))  # the station's rough local time
    rate = _daily_rate(station["max_power_kw"])
    fast = (station["max_power_kw"] or 0) >= 43
    price = _price(station["price"]) or _demo_price(station["country"], fast)
    free_at = {cid: start_day for cid, _power in connectors}
    regulars = rng.sample(drivers, k=min(len(drivers), 12))
    sessions: list[dict[str, Any]] = []
    for day in range(DAYS):
        base = start_day + timedelta(days=day)
        weekday = (base + solar).weekday()
        count = _poisson(rng, rate * WEEKLY[weekday] * (0.8 + 0.4 * day / DAYS))  # slow growth
        hours = rng.choices(range(24), weights=HOURLY, k=count)
        for hour in sorted(hours):
            started = base + timedelta(hours=hour, minutes=rng.randrange(60)) - solar
            connector = next((c for c in connectors if free_at[c[0]] <= started), None)
            if connector is None:
                continue
            power = connector[1] or 7.0
            minutes = rng.randint(15, 50) if power >= 43 else rng.randint(45, 240)
            ended = started + timedelta(minutes=minutes)
            if ended >= now:
                continue
            free_at[connector[0]] = ended + timedelta(minutes=rng.randint(1, 30))
            energy = round(min(power * minutes / 60 * rng.uniform(0.45, 0.85), 80.0), 3)
            cost, currency = session_cost(price, energy_kwh=energy, minutes=minutes)
            sessions.append({
                "station_id": station["id"], "connector_id": connector[0],
                "user_id": rng.choice(regulars) if rng.random() < 0.6 else rng.choice(drivers),
                "started_at": started, "ended_at": ended, "energy_kwh": energy, "cost": cost,
                "currency": currency, "status": "completed",
            })
    return sessions


def _poisson(rng: random.Random, mean: float) -> int:
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


async def _stations(session: AsyncSession) -> tuple[list[dict[str, Any]], dict[int, list[tuple[int, float | None]]]]:
    rows = await session.execute(
        text("SELECT id, longitude, max_power_kw, country, price FROM stations "
             "WHERE status NOT IN ('removed', 'planned') ORDER BY id")
    )
    stations = [dict(r._mapping) for r in rows]
    connectors: dict[int, list[tuple[int, float | None]]] = {}
    for cid, sid, power in await session.execute(text("SELECT id, station_id, power_kw FROM connectors ORDER BY id")):
        connectors.setdefault(sid, []).append((cid, power))
    return stations, connectors


async def load_demo_activity(db: Database, *, now: datetime | None = None) -> str:
    """Create the demo drivers and their activity (once: nothing happens when demo drivers exist), rebuild the
    analytics rollups, and create an operator API key for the dashboard. A one-line summary."""
    now = now or utcnow()
    rng = random.Random(SEED)
    async with db.sessionmaker.begin() as session:
        if (await session.execute(text("SELECT 1 FROM users WHERE is_demo LIMIT 1"))).first():
            return "demo activity already present"
        unusable = PasswordHasher().hash(secrets.token_urlsafe(32))
        users = [
            {"email": f"driver{i:03d}@{DEMO_DOMAIN}", "password_hash": unusable,
             "display_name": f"Demo driver {i}", "car_connectors": rng.choice(CARS), "is_demo": True,
             "created_at": now - timedelta(days=DAYS + 30)}
            for i in range(1, DRIVERS + 1)
        ]
        await session.execute(insert(User), users)
        drivers = list((await session.execute(text("SELECT id FROM users WHERE is_demo ORDER BY id"))).scalars())
        stations, connectors = await _stations(session)
        sessions: list[dict[str, Any]] = []
        for station in stations:
            if station["id"] in connectors:
                sessions += plan_sessions(rng, station, connectors[station["id"]], now, drivers)
        for chunk in range(0, len(sessions), 5000):
            await session.execute(insert(ChargingSession), sessions[chunk:chunk + 5000])
        # Some drivers review (and save) stations they charged at; ratings lean on the station's power.
        pairs = sorted({(s["user_id"], s["station_id"]) for s in sessions})
        reviewed = [p for p in pairs if rng.random() < 0.25]
        power = {s["id"]: s["max_power_kw"] or 7.0 for s in stations}
        reviews = []
        for user_id, station_id in reviewed:
            rating = max(1, min(5, round(rng.gauss(3.6 + min(power[station_id], 150) / 150, 1.0))))
            at = now - timedelta(days=rng.uniform(0, DAYS))
            reviews.append({"user_id": user_id, "station_id": station_id, "rating": rating,
                            "comment": COMMENTS[rating], "created_at": at, "updated_at": at})
        if reviews:
            await session.execute(insert(Review), reviews)
        favorites = [{"user_id": u, "station_id": s, "created_at": now} for u, s in pairs if rng.random() < 0.05]
        if favorites:
            await session.execute(insert(Favorite), favorites)
        # The stations' ratings, exactly as the reviews feature keeps them (SUM / COUNT in floating point).
        await session.execute(text(
            "UPDATE stations SET "
            "rating_average = (SELECT CAST(SUM(r.rating) AS FLOAT) / COUNT(*) FROM reviews r "
            "WHERE r.station_id = stations.id), "
            "rating_count = (SELECT COUNT(*) FROM reviews r WHERE r.station_id = stations.id) "
            "WHERE id IN (SELECT station_id FROM reviews)"
        ))
        await rebuild(session, now=now)
        _key, secret = await create_key(session, role=Role.operator, name="demo dashboard")
    return (
        f"demo activity: {len(users)} demo drivers (@{DEMO_DOMAIN}), {len(sessions)} charging sessions over "
        f"{DAYS} days, {len(reviews)} reviews; dashboard at /dashboard with the demo operator key {secret}"
    )

"""Factories for the analytics tests, and an independent (brute force, minute by minute) oracle.

The oracle knows nothing of rollups, offsets or SQL: it walks every minute of a window, converts it to local
time with zoneinfo and counts; the sessions of the hand-built data start and end on whole minutes.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from voltway.accounts.models import User
from voltway.charging.models import ChargingSession
from voltway.core.db import Database
from voltway.reviews.models import Review
from voltway.stations.models import Connector, Station
from voltway.stations.service import derived_columns


@dataclass
class S:
    """A hand-built session: station key, start, end (None = running), energy, cost, currency, driver key."""

    station: str
    start: datetime
    end: datetime | None
    energy: float | None = None
    cost: float | None = None
    currency: str | None = "EUR"
    user: str | None = None


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


async def make_station(
    db: Database,
    *,
    name: str,
    lat: float,
    lon: float,
    country: str | None,
    operator: str | None,
    connectors: list[dict],
    price: dict | None = None,
    status: str = "available",
) -> int:
    async with db.sessionmaker.begin() as session:
        station = Station(
            source="test",
            name=name,
            latitude=lat,
            longitude=lon,
            country=country,
            operator=operator,
            status=status,
            price=price,
            rating_count=0,
            connectors=[Connector(**{"status": "available", "quantity": 1, **c}) for c in connectors],
            **derived_columns(lat, lon, connectors),
        )
        session.add(station)
        await session.flush()
        return station.id


async def make_user(db: Database, email: str, car: list[str] | None = None) -> int:
    async with db.sessionmaker.begin() as session:
        user = User(email=email, password_hash="x", car_connectors=car or [], is_demo=False)
        session.add(user)
        await session.flush()
        return user.id


async def make_sessions(db: Database, sessions: list[S], stations: dict[str, int], users: dict[str, int]) -> None:
    async with db.sessionmaker.begin() as session:
        for s in sessions:
            session.add(
                ChargingSession(
                    station_id=stations[s.station],
                    user_id=users[s.user] if s.user else None,
                    started_at=s.start,
                    ended_at=s.end,
                    energy_kwh=s.energy,
                    cost=s.cost,
                    currency=s.currency if s.cost is not None or s.currency else None,
                    status="completed" if s.end else "active",
                )
            )


async def make_review(db: Database, *, user_id: int, station_id: int, rating: int, at: datetime) -> None:
    async with db.sessionmaker.begin() as session:
        session.add(Review(user_id=user_id, station_id=station_id, rating=rating, created_at=at, updated_at=at))


def minutes(start: datetime, end: datetime):
    t = start
    while t < end:
        yield t
        t += timedelta(minutes=1)


def oracle_occupied_minutes(sessions: list[S], w0: datetime, w1: datetime, now: datetime, key) -> dict:
    """Occupied minutes per local bucket `key(local datetime)` of the sessions inside [w0, w1)."""
    out: dict = {}
    for s in sessions:
        for m in minutes(max(s.start, w0), min(s.end or now, w1)):
            k = key(m)
            out[k] = out.get(k, 0) + 1
    return out


def oracle_window_minutes(w0: datetime, w1: datetime, key) -> dict:
    out: dict = {}
    for m in minutes(w0, w1):
        k = key(m)
        out[k] = out.get(k, 0) + 1
    return out


def local(tz: str):
    zone = ZoneInfo(tz)
    return lambda m: m.astimezone(zone)

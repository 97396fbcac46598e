"""Factories for drivers and stations, shared by the accounts, reviews and charging tests.

Drivers are written straight to the database with one precomputed argon2 hash (hashing is slow on purpose);
their tokens are made with the app's own signing function.
"""

import itertools
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import pytest
from argon2 import PasswordHasher

from voltway.accounts.models import User
from voltway.accounts.security import create_access_token
from voltway.core.db import Database, utcnow
from voltway.settings import Settings
from voltway.stations.models import Connector, Station
from voltway.stations.service import derived_columns

PASSWORD = "correct horse battery staple"
_numbers = itertools.count(1)


@lru_cache
def password_hash() -> str:
    return PasswordHasher().hash(PASSWORD)


@dataclass
class Driver:
    id: int
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def make_driver(db: Database, settings: Settings, **fields: Any) -> Driver:
    email = fields.pop("email", f"driver{next(_numbers)}@example.org")
    async with db.sessionmaker.begin() as session:
        user = User(
            email=email, password_hash=password_hash(), car_connectors=[], is_demo=False, created_at=utcnow(), **fields
        )
        session.add(user)
        await session.flush()
        user_id = user.id
    token, _ttl = create_access_token(settings, user_id=user_id, version=0)
    return Driver(id=user_id, email=email, token=token)


@dataclass
class MadeStation:
    id: int
    connector_ids: list[int]


async def make_station(
    db: Database,
    *,
    price: dict[str, Any] | None = None,
    status: str = "available",
    connectors: int = 2,
) -> MadeStation:
    """A station (Berlin) with `connectors` available CCS connectors."""
    number = next(_numbers)
    rows = [Connector(type="ccs2", power_kw=150.0, current="DC", quantity=1, status="available") for _ in range(connectors)]
    async with db.sessionmaker.begin() as session:
        station = Station(
            source="test",
            external_id=f"s{number}",
            name=f"Station {number}",
            country="DE",
            latitude=52.52,
            longitude=13.40,
            status=status,
            price=price,
            rating_count=0,
            connectors=rows,
            **derived_columns(52.52, 13.40, [{"power_kw": 150.0}]),
        )
        session.add(station)
        await session.flush()
        made = MadeStation(id=station.id, connector_ids=[c.id for c in rows])
    return made


@pytest.fixture
async def driver(db: Database, settings: Settings) -> Driver:
    return await make_driver(db, settings, display_name="Ada")


@pytest.fixture
async def other_driver(db: Database, settings: Settings) -> Driver:
    return await make_driver(db, settings, display_name="Grace")


@pytest.fixture
async def station(db: Database) -> MadeStation:
    return await make_station(db, price={"currency": "EUR", "per_kwh": 0.59, "per_minute": None, "per_session": 1.0,
                                         "free": False})

"""Every protected endpoint of accounts, reviews and charging x {anonymous, readonly key, driver, operator key,
admin key}, with the expected status; and drivers cannot reach each other's data."""

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.accounts.factories import PASSWORD, Driver, MadeStation, make_driver, make_station
from tests.conftest import new_key
from voltway.accounts.models import User
from voltway.accounts.roles import Role

ROLES = ("anonymous", "readonly", "driver", "operator", "admin")
START = (datetime.now(UTC) + timedelta(days=3)).replace(minute=0, second=0, microsecond=0)


@dataclass
class Ctx:
    client: Any
    driver: Driver
    station: MadeStation
    headers: dict[str, dict[str, str]]
    _connectors: Any = field(default=None)
    _hours: Any = field(default_factory=itertools.count)

    def connector(self) -> int:
        if self._connectors is None:
            self._connectors = iter(self.station.connector_ids)
        return next(self._connectors)

    async def ok(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        response = await self.client.request(method, url, headers=self.driver.headers, **kwargs)
        assert response.status_code < 300, response.text
        return response.json()

    def window(self) -> dict[str, Any]:
        start = START + timedelta(hours=next(self._hours))
        return {"station_id": self.station.id, "connector_id": self.station.connector_ids[0],
                "starts_at": start.isoformat(), "ends_at": (start + timedelta(minutes=30)).isoformat()}

    async def reservation(self) -> int:
        return (await self.ok("POST", "/api/v1/reservations", json=self.window()))["id"]

    async def session(self) -> int:
        body = {"station_id": self.station.id, "connector_id": self.connector()}
        return (await self.ok("POST", "/api/v1/sessions", json=body))["id"]

    async def broken_checkin(self) -> int:
        return (await self.ok("POST", f"/api/v1/stations/{self.station.id}/checkins", json={"outcome": "broken"}))["id"]

    async def review(self) -> None:
        await self.ok("POST", f"/api/v1/stations/{self.station.id}/reviews", json={"rating": 4})


Prepare = Callable[[Ctx], Awaitable[tuple[str, dict[str, Any] | None]]]


def fixed(url: str, body: dict[str, Any] | None = None) -> Prepare:
    async def prepare(ctx: Ctx) -> tuple[str, dict[str, Any] | None]:
        return url.format(s=ctx.station.id), body
    return prepare


DRIVER_ONLY = {"anonymous": 401, "readonly": 401, "operator": 401, "admin": 401}
ADMIN_ONLY = {"anonymous": 401, "readonly": 403, "driver": 401, "operator": 403, "admin": None}
OPERATOR = {"anonymous": 401, "readonly": 403, "driver": 401, "operator": None, "admin": None}
DRIVER_OR_OPERATOR = {"anonymous": 401, "readonly": 403, "driver": None, "operator": None, "admin": None}


async def _key_id(ctx: Ctx) -> tuple[str, None]:
    created = await ctx.client.post("/api/v1/admin/keys", headers=ctx.headers["admin"], json={"role": "readonly"})
    return f"/api/v1/admin/keys/{created.json()['id']}", None


async def _review_me(ctx: Ctx) -> tuple[str, None]:
    await ctx.review()
    return f"/api/v1/stations/{ctx.station.id}/reviews/me", None


async def _resolve(ctx: Ctx) -> tuple[str, None]:
    return f"/api/v1/checkins/{await ctx.broken_checkin()}/resolve", None


async def _reserve(ctx: Ctx) -> tuple[str, dict[str, Any]]:
    return "/api/v1/reservations", ctx.window()


async def _reservation(ctx: Ctx) -> tuple[str, None]:
    return f"/api/v1/reservations/{await ctx.reservation()}", None


async def _cancel(ctx: Ctx) -> tuple[str, None]:
    return f"/api/v1/reservations/{await ctx.reservation()}/cancel", None


async def _start(ctx: Ctx) -> tuple[str, dict[str, Any]]:
    return "/api/v1/sessions", {"station_id": ctx.station.id, "connector_id": ctx.connector()}


async def _stop(ctx: Ctx) -> tuple[str, dict[str, Any]]:
    return f"/api/v1/sessions/{await ctx.session()}/stop", {"energy_kwh": 5}


async def _one_session(ctx: Ctx) -> tuple[str, None]:
    return f"/api/v1/sessions/{await ctx.session()}", None


# (method, endpoint, prepare, expected by role; None = the endpoint's success status, given last)
MATRIX: list[tuple[str, str, Prepare, dict[str, int | None], int]] = [
    ("GET", "/me", fixed("/api/v1/me"), DRIVER_ONLY, 200),
    ("PATCH", "/me", fixed("/api/v1/me", {"display_name": "Ada L."}), DRIVER_ONLY, 200),
    ("GET", "/me/favorites", fixed("/api/v1/me/favorites"), DRIVER_ONLY, 200),
    ("PUT", "/me/favorites/{id}", fixed("/api/v1/me/favorites/{s}"), DRIVER_ONLY, 204),
    ("DELETE", "/me/favorites/{id}", fixed("/api/v1/me/favorites/{s}"), DRIVER_ONLY, 204),
    ("POST", "/me/password", fixed("/api/v1/me/password", {"current_password": PASSWORD,
                                                            "new_password": "a brand new passphrase"}),
     DRIVER_ONLY, 200),
    ("POST", "/auth/logout", fixed("/api/v1/auth/logout"), DRIVER_ONLY, 204),
    ("GET", "/admin/keys", fixed("/api/v1/admin/keys"), ADMIN_ONLY, 200),
    ("POST", "/admin/keys", fixed("/api/v1/admin/keys", {"role": "readonly"}), ADMIN_ONLY, 201),
    ("DELETE", "/admin/keys/{id}", _key_id, ADMIN_ONLY, 200),
    ("POST", "/stations/{id}/reviews", fixed("/api/v1/stations/{s}/reviews", {"rating": 5}), DRIVER_ONLY, 201),
    ("DELETE", "/stations/{id}/reviews/me", _review_me, DRIVER_ONLY, 204),
    ("POST", "/stations/{id}/checkins", fixed("/api/v1/stations/{s}/checkins", {"outcome": "charged_fine"}),
     DRIVER_ONLY, 201),
    ("POST", "/checkins/{id}/resolve", _resolve, OPERATOR, 200),
    ("POST", "/reservations", _reserve, DRIVER_ONLY, 201),
    ("GET", "/reservations", fixed("/api/v1/reservations"), DRIVER_ONLY, 200),
    ("GET", "/reservations/{id}", _reservation, DRIVER_ONLY, 200),
    ("POST", "/reservations/{id}/cancel", _cancel, DRIVER_ONLY, 200),
    ("POST", "/sessions", _start, DRIVER_OR_OPERATOR, 201),
    ("POST", "/sessions/{id}/stop", _stop, DRIVER_OR_OPERATOR, 200),
    ("GET", "/sessions", fixed("/api/v1/sessions"), DRIVER_OR_OPERATOR, 200),
    ("GET", "/sessions/{id}", _one_session, DRIVER_OR_OPERATOR, 200),
]


@pytest.mark.parametrize(("method", "endpoint", "prepare", "expected", "success"), MATRIX,
                         ids=[f"{m} {e}" for m, e, *_ in MATRIX])
async def test_authorization_matrix(client, db, settings, backend, method, endpoint, prepare, expected, success):
    driver = await make_driver(db, settings)
    ctx = Ctx(
        client=client,
        driver=driver,
        station=await make_station(db, connectors=12),
        headers={
            "anonymous": {},
            "readonly": {"X-API-Key": await new_key(db, Role.readonly)},
            "driver": driver.headers,
            "operator": {"X-API-Key": await new_key(db, Role.operator)},
            "admin": {"X-API-Key": await new_key(db, Role.admin)},
        },
    )
    got, want = {}, {}
    for role in ROLES:
        url, body = await prepare(ctx)
        response = await client.request(method, url, headers=ctx.headers[role], json=body)
        got[role] = response.status_code
        want[role] = expected.get(role) or success
    assert got == want


async def test_public_endpoints_need_no_credentials(client, backend, station):
    for url in (f"/api/v1/stations/{station.id}/reviews", f"/api/v1/stations/{station.id}/checkins",
                f"/api/v1/stations/{station.id}/reliability"):
        assert (await client.get(url)).status_code == 200


async def test_a_driver_cannot_touch_another_drivers_review(client, backend, driver, other_driver, station):
    url = f"/api/v1/stations/{station.id}/reviews"
    mine = (await client.post(url, headers=driver.headers, json={"rating": 1, "comment": "mine"})).json()
    theirs = await client.post(url, headers=other_driver.headers, json={"rating": 5})
    assert theirs.status_code == 201 and theirs.json()["id"] != mine["id"]
    await client.delete(f"{url}/me", headers=other_driver.headers)
    remaining = (await client.get(url)).json()["items"]
    assert [(r["id"], r["rating"], r["comment"]) for r in remaining] == [(mine["id"], 1, "mine")]


async def test_a_deleted_driver_token_stops_working(client, db, settings, backend):
    gone = await make_driver(db, settings)
    async with db.sessionmaker.begin() as session:
        await session.delete(await session.get(User, gone.id))
    assert (await client.get("/api/v1/me", headers=gone.headers)).status_code == 401

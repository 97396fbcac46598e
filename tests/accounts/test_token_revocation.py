"""Password change and sign-out everywhere: both bump the driver's token generation, which revokes every
earlier token; a token works only while its `ver` claim is the driver's current generation."""

import asyncio

import jwt
import pytest
from argon2 import PasswordHasher
from sqlalchemy import event

from tests.accounts.factories import PASSWORD, Driver
from voltway.accounts.models import User

NEW_PASSWORD = "a brand new passphrase"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def sign_in(client, email: str, password: str):
    return await client.post("/api/v1/auth/token", data={"username": email, "password": password})


async def assert_revoked(client, token: str) -> None:
    response = await client.get("/api/v1/me", headers=bearer(token))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "unauthorized"


async def stored(db, driver: Driver) -> User:
    async with db.sessionmaker() as session:
        user = await session.get(User, driver.id)
        assert user is not None
        return user


async def test_password_change_revokes_every_token_and_answers_a_new_one(client, db, settings, backend, driver):
    other_device = (await sign_in(client, driver.email, PASSWORD)).json()["access_token"]

    response = await client.post("/api/v1/me/password", headers=driver.headers,
                                 json={"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert response.status_code == 200
    grant = response.json()
    assert grant["token_type"] == "bearer" and grant["expires_in"] == settings.token_ttl_minutes * 60
    claims = jwt.decode(grant["access_token"], settings.resolved_secret_key(), algorithms=["HS256"],
                        audience="voltway:driver")
    assert (claims["sub"], claims["ver"]) == (str(driver.id), 1)

    await assert_revoked(client, driver.token)
    await assert_revoked(client, other_device)
    me = await client.get("/api/v1/me", headers=bearer(grant["access_token"]))
    assert me.status_code == 200 and me.json()["id"] == driver.id

    user = await stored(db, driver)
    assert user.token_version == 1
    assert user.password_hash.startswith("$argon2id$") and PasswordHasher().verify(user.password_hash, NEW_PASSWORD)
    assert (await sign_in(client, driver.email, PASSWORD)).status_code == 401
    fresh = await sign_in(client, driver.email, NEW_PASSWORD)
    assert fresh.status_code == 200
    assert (await client.get("/api/v1/me", headers=bearer(fresh.json()["access_token"]))).status_code == 200


async def test_logout_signs_the_driver_out_on_every_device(client, db, backend, driver, other_driver):
    other_device = (await sign_in(client, driver.email, PASSWORD)).json()["access_token"]

    response = await client.post("/api/v1/auth/logout", headers=bearer(other_device))
    assert response.status_code == 204 and response.content == b""
    await assert_revoked(client, other_device)
    await assert_revoked(client, driver.token)
    again = await client.post("/api/v1/auth/logout", headers=driver.headers)
    assert again.status_code == 401 and again.headers["www-authenticate"] == "Bearer"
    assert (await stored(db, driver)).token_version == 1

    # Another driver's tokens are not touched; signing in again gives a working token.
    assert (await client.get("/api/v1/me", headers=other_driver.headers)).status_code == 200
    assert (await stored(db, other_driver)).token_version == 0
    token = (await sign_in(client, driver.email, PASSWORD)).json()["access_token"]
    assert jwt.decode(token, options={"verify_signature": False})["ver"] == 1
    assert (await client.get("/api/v1/me", headers=bearer(token))).status_code == 200


async def test_a_token_without_generation_counts_as_generation_0(client, backend, settings, driver):
    legacy = jwt.encode({"sub": str(driver.id), "aud": "voltway:driver", "exp": 2**40}, settings.resolved_secret_key())
    assert (await client.get("/api/v1/me", headers=bearer(legacy))).status_code == 200
    assert (await client.post("/api/v1/auth/logout", headers=bearer(legacy))).status_code == 204
    await assert_revoked(client, legacy)


async def test_wrong_current_password_is_refused_and_changes_nothing(client, db, backend, driver):
    response = await client.post("/api/v1/me/password", headers=driver.headers,
                                 json={"current_password": "not " + PASSWORD, "new_password": NEW_PASSWORD})
    assert response.status_code == 403
    assert response.json()["error"] == {"code": "wrong_password", "message": "the current password is wrong",
                                        "details": {"field": "current_password"}}
    assert (await client.get("/api/v1/me", headers=driver.headers)).status_code == 200
    user = await stored(db, driver)
    assert user.token_version == 0 and PasswordHasher().verify(user.password_hash, PASSWORD)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"current_password": PASSWORD, "new_password": "short"}, "new_password"),
        ({"current_password": PASSWORD, "new_password": "        "}, "new_password"),
        ({"current_password": PASSWORD, "new_password": "x" * 129}, "new_password"),
        ({"new_password": NEW_PASSWORD}, "current_password"),
        ({"current_password": "", "new_password": NEW_PASSWORD}, "current_password"),
    ],
)
async def test_password_change_validation_names_the_field(client, db, driver, body, field):
    response = await client.post("/api/v1/me/password", headers=driver.headers, json=body)
    assert response.status_code == 422
    assert [d["field"] for d in response.json()["error"]["details"]] == [field]
    assert (await stored(db, driver)).token_version == 0


@pytest.mark.parametrize("path", ["/api/v1/me/password", "/api/v1/auth/logout"])
async def test_both_routes_need_a_driver_token(client, path):
    body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    for headers in ({}, bearer("garbage")):
        response = await client.post(path, headers=headers, json=body)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"


async def test_the_generation_check_costs_no_query_of_its_own(client, db, backend, driver):
    """An authenticated request reads the driver once; the generation comes with the same row."""
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        statements.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        assert (await client.get("/api/v1/me", headers=driver.headers)).status_code == 200
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)
    assert len(statements) == 1 and "FROM users" in statements[0], statements


async def test_two_concurrent_changes_with_the_same_password_let_only_one_through(client, db, backend, driver):
    # Both requests verify the same current password; the later UPDATE finds the hash changed and is refused,
    # whichever order the two end in, so the stored password is the one answered 200.
    body = {"current_password": PASSWORD}
    first, second = await asyncio.gather(
        client.post("/api/v1/me/password", headers=driver.headers, json={**body, "new_password": NEW_PASSWORD}),
        client.post("/api/v1/me/password", headers=driver.headers, json={**body, "new_password": "another passphrase"}),
    )
    statuses = sorted((first.status_code, second.status_code))
    assert statuses == [200, 403]
    winner = NEW_PASSWORD if first.status_code == 200 else "another passphrase"
    loser = first if first.status_code == 403 else second
    assert loser.json()["error"] == {"code": "wrong_password", "message": "the current password is wrong",
                                     "details": {"field": "current_password"}}
    user = await stored(db, driver)
    assert user.token_version == 1 and PasswordHasher().verify(user.password_hash, winner)

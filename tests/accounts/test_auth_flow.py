"""Registration, sign-in, profile, tokens."""

import jwt
import pytest

from tests.accounts.factories import PASSWORD


async def register(client, email="Ada@Example.org", password="a long passphrase", **extra):
    return await client.post("/api/v1/auth/register", json={"email": email, "password": password, **extra})


async def sign_in(client, email, password):
    return await client.post("/api/v1/auth/token", data={"username": email, "password": password})


async def test_register_sign_in_and_profile(client, backend, settings):
    response = await register(client, display_name="Ada", car_connectors=["ccs2", "type2"])
    assert response.status_code == 201
    body = response.json()
    assert body["email"] == "ada@example.org"
    assert body["car_connectors"] == ["ccs2", "type2"]
    assert "password" not in str(body) and "hash" not in str(body)

    token = await sign_in(client, "ADA@example.org", "a long passphrase")
    assert token.status_code == 200
    grant = token.json()
    assert grant["token_type"] == "bearer"
    assert grant["expires_in"] == settings.token_ttl_minutes * 60
    claims = jwt.decode(grant["access_token"], settings.resolved_secret_key(), algorithms=["HS256"],
                        audience="voltway:driver")
    assert claims["sub"] == str(body["id"]) and claims["exp"] - claims["iat"] == settings.token_ttl_minutes * 60

    headers = {"Authorization": f"Bearer {grant['access_token']}"}
    me = await client.get("/api/v1/me", headers=headers)
    assert me.json() == body

    patched = await client.patch("/api/v1/me", headers=headers, json={"car_connectors": ["nacs"]})
    assert patched.status_code == 200
    assert patched.json()["car_connectors"] == ["nacs"] and patched.json()["display_name"] == "Ada"
    assert (await client.get("/api/v1/me", headers=headers)).json()["car_connectors"] == ["nacs"]


async def test_duplicate_email_is_409_case_insensitive(client, backend):
    assert (await register(client)).status_code == 201
    again = await register(client, email="  ADA@example.ORG ")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "email_taken"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email", "password": "a long passphrase"}, "email"),
        ({"email": "a@example.org", "password": "short"}, "password"),
        ({"email": "a@example.org", "password": "        "}, "password"),
        ({"email": "a@example.org", "password": "a long passphrase", "car_connectors": ["warp"]}, "car_connectors.0"),
    ],
)
async def test_register_validation_names_the_field(client, body, field):
    response = await client.post("/api/v1/auth/register", json=body)
    assert response.status_code == 422
    assert [d["field"] for d in response.json()["error"]["details"]] == [field]


async def test_wrong_password_unknown_email_and_bad_tokens_are_401(client, db, settings, driver):
    assert (await sign_in(client, driver.email, "wrong password")).status_code == 401
    assert (await sign_in(client, "nobody@example.org", PASSWORD)).status_code == 401
    assert (await sign_in(client, driver.email, PASSWORD)).status_code == 200

    expired = jwt.encode({"sub": str(driver.id), "aud": "voltway:driver", "exp": 1}, settings.resolved_secret_key())
    forged = jwt.encode({"sub": str(driver.id), "aud": "voltway:driver", "exp": 2**40}, "another key" * 4)
    for bad in (expired, forged, "garbage", driver.token + "x"):
        response = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {bad}"})
        assert response.status_code == 401, bad
        assert response.headers["www-authenticate"] == "Bearer"

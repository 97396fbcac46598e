"""Failed sign-ins are throttled per email and per client address; a success forgets the email's failures.
Registrations are limited per client address.

Small limits (through RATE_LIMITS) keep the number of deliberately slow argon2 checks low.
"""

import pytest

from tests.accounts.factories import PASSWORD, make_driver


@pytest.fixture
def settings(settings):
    limits = {"login.email": "3/15 minutes", "login.address": "5/15 minutes", "auth.register": "2/hour"}
    return settings.model_copy(update={"rate_limits": limits})


async def sign_in(client, email, password):
    return await client.post("/api/v1/auth/token", data={"username": email, "password": password})


async def test_per_email(client, db, settings, backend):
    victim = await make_driver(db, settings)
    for _ in range(3):
        assert (await sign_in(client, victim.email, "guess")).status_code == 401
    blocked = await sign_in(client, victim.email.upper(), PASSWORD)  # even the right password, while blocked
    assert blocked.status_code == 429
    assert 1 <= int(blocked.headers["retry-after"]) <= 15 * 60
    assert blocked.json()["error"]["code"] == "rate_limited"
    other = await make_driver(db, settings)
    assert (await sign_in(client, other.email, PASSWORD)).status_code == 200


async def test_per_address(client, db, settings, backend):
    drivers = [await make_driver(db, settings) for _ in range(5)]
    for d in drivers:
        assert (await sign_in(client, d.email, "guess")).status_code == 401
    assert (await sign_in(client, "someone@example.org", "guess")).status_code == 429
    assert (await sign_in(client, drivers[0].email, PASSWORD)).status_code == 429


async def test_success_forgets_the_email_failures(client, driver):
    for _ in range(2):
        assert (await sign_in(client, driver.email, "guess")).status_code == 401
    assert (await sign_in(client, driver.email, PASSWORD)).status_code == 200
    for _ in range(2):
        assert (await sign_in(client, driver.email, "guess")).status_code == 401
    assert (await sign_in(client, driver.email, PASSWORD)).status_code == 200


async def test_registrations_are_limited_per_address(client):
    for i in range(2):
        body = {"email": f"new{i}@example.org", "password": "a long passphrase"}
        assert (await client.post("/api/v1/auth/register", json=body)).status_code == 201
    blocked = await client.post("/api/v1/auth/register", json={"email": "new3@example.org", "password": "a long pass"})
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) >= 1


async def test_a_wrong_current_password_counts_as_a_failed_sign_in(client, db, settings, backend):
    victim = await make_driver(db, settings)

    async def change(current):
        return await client.post("/api/v1/me/password", headers=victim.headers,
                                 json={"current_password": current, "new_password": "a brand new passphrase"})

    assert (await sign_in(client, victim.email, "guess")).status_code == 401
    for _ in range(2):
        assert (await change("guess")).status_code == 403
    blocked = await change(PASSWORD)  # even the right password, while blocked
    assert blocked.status_code == 429 and 1 <= int(blocked.headers["retry-after"]) <= 15 * 60
    assert (await sign_in(client, victim.email, PASSWORD)).status_code == 429
    assert (await client.get("/api/v1/me", headers=victim.headers)).status_code == 200  # nothing was revoked

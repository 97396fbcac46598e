"""API keys (admin endpoints and the CLI) and favorites."""

import os
import subprocess
import sys

import pytest

from tests.accounts.factories import make_station


async def test_admin_key_lifecycle(client, backend, admin_headers):
    created = await client.post("/api/v1/admin/keys", headers=admin_headers, json={"role": "operator", "name": "ci"})
    assert created.status_code == 201
    key = created.json()
    secret = key.pop("key")
    assert secret.startswith(key["prefix"]) and key["role"] == "operator" and key["last_used_at"] is None

    listed = (await client.get("/api/v1/admin/keys", headers=admin_headers)).json()
    assert secret not in str(listed)
    assert {k["prefix"] for k in listed} >= {key["prefix"]}

    assert (await client.get("/api/v1/sessions", headers={"X-API-Key": secret})).status_code == 200
    used = next(k for k in (await client.get("/api/v1/admin/keys", headers=admin_headers)).json() if k["id"] == key["id"])
    assert used["last_used_at"] is not None

    revoked = await client.delete(f"/api/v1/admin/keys/{key['id']}", headers=admin_headers)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    again = await client.delete(f"/api/v1/admin/keys/{key['id']}", headers=admin_headers)
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]
    assert (await client.get("/api/v1/sessions", headers={"X-API-Key": secret})).status_code == 401
    assert (await client.delete("/api/v1/admin/keys/999999", headers=admin_headers)).status_code == 404
    bad_role = await client.post("/api/v1/admin/keys", headers=admin_headers, json={"role": "root"})
    assert bad_role.status_code == 422 and bad_role.json()["error"]["details"][0]["field"] == "role"


def voltway(settings, *args):
    env = {**os.environ, "DATABASE_URL": settings.database_url, "LOG_DIR": str(settings.log_dir),
           "DATA_DIR": str(settings.data_dir), "SECRET_KEY": settings.secret_key}
    return subprocess.run([sys.executable, "-m", "voltway", "keys", *args], env=env, capture_output=True, text=True,
                          timeout=60)


# The CLI runs the same key functions as the API (tested on both databases); one database is enough here.
@pytest.mark.parametrize("backend", ["sqlite"])
def test_cli_create_list_revoke(settings, backend):
    created = voltway(settings, "create", "--role", "readonly", "--name", "grafana")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip().splitlines()[-1]
    listed = voltway(settings, "list")
    assert listed.returncode == 0 and secret not in listed.stdout
    line = next(row for row in listed.stdout.splitlines() if "grafana" in row)
    key_id, prefix, role = line.split()[:3]
    assert secret.startswith(prefix) and role == "readonly" and line.count(":") == 1  # created, never used
    revoked = voltway(settings, "revoke", prefix)
    assert revoked.returncode == 0 and f"revoked key {key_id}" in revoked.stdout
    after = next(row for row in voltway(settings, "list").stdout.splitlines() if "grafana" in row)
    assert after.count(":") == 2  # the revocation time is shown
    assert voltway(settings, "revoke", "vw_nothing").returncode == 1


async def test_favorites_are_idempotent_and_private(client, db, backend, driver, other_driver, station):
    second = await make_station(db)
    url = "/api/v1/me/favorites"
    for _ in range(2):
        assert (await client.put(f"{url}/{station.id}", headers=driver.headers)).status_code == 204
    assert (await client.put(f"{url}/{second.id}", headers=driver.headers)).status_code == 204
    assert (await client.put(f"{url}/999999", headers=driver.headers)).status_code == 404

    page = (await client.get(url, headers=driver.headers)).json()
    assert [s["id"] for s in page["items"]] == [second.id, station.id] and page["next_cursor"] is None
    item = page["items"][1]
    assert item["name"].startswith("Station") and [c["id"] for c in item["connectors"]] == station.connector_ids
    assert item["rating"] == {"average": None, "count": 0}

    first_page = (await client.get(url, headers=driver.headers, params={"limit": 1})).json()
    rest = (await client.get(url, headers=driver.headers, params={"cursor": first_page["next_cursor"]})).json()
    assert [s["id"] for s in first_page["items"] + rest["items"]] == [second.id, station.id]

    assert (await client.get(url, headers=other_driver.headers)).json() == {"items": [], "next_cursor": None}
    # Another driver "removing" it removes only from their own (empty) list.
    assert (await client.delete(f"{url}/{station.id}", headers=other_driver.headers)).status_code == 204
    assert len((await client.get(url, headers=driver.headers)).json()["items"]) == 2
    for _ in range(2):
        assert (await client.delete(f"{url}/{station.id}", headers=driver.headers)).status_code == 204
    assert [s["id"] for s in (await client.get(url, headers=driver.headers)).json()["items"]] == [second.id]

"""No password, token or API key appears in any log line, at any level, in any handler's output."""

import logging

from tests.accounts.factories import make_station


async def test_secrets_never_reach_the_logs(app, client, db, settings, backend, caplog, capsys, admin_headers):
    caplog.set_level(logging.DEBUG)
    password = "Sup3r-secret passphrase!"
    station = await make_station(db)

    await client.post("/api/v1/auth/register", json={"email": "log@example.org", "password": password})
    await client.post("/api/v1/auth/token", data={"username": "log@example.org", "password": "wrong " + password})
    token = (await client.post("/api/v1/auth/token", data={"username": "log@example.org", "password": password}))
    access_token = token.json()["access_token"]
    bearer = {"Authorization": f"Bearer {access_token}"}
    await client.get("/api/v1/me", headers=bearer)
    await client.get("/api/v1/me", headers={"Authorization": f"Bearer {access_token}x"})  # a rejected token
    await client.post("/api/v1/sessions", headers=bearer, json={"station_id": station.id, "connector_id": 999999})
    new_password = "An0ther secret passphrase"
    await client.post("/api/v1/me/password", headers=bearer,
                      json={"current_password": "wrong " + password, "new_password": new_password})
    changed = await client.post("/api/v1/me/password", headers=bearer,
                                json={"current_password": password, "new_password": new_password})
    new_token = changed.json()["access_token"]
    await client.get("/api/v1/me", headers=bearer)  # a revoked token
    await client.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {new_token}"})

    created = await client.post("/api/v1/admin/keys", headers=admin_headers, json={"role": "operator"})
    key = created.json()["key"]
    await client.get("/api/v1/sessions", headers={"X-API-Key": key})
    await client.delete(f"/api/v1/admin/keys/{created.json()['id']}", headers=admin_headers)
    await client.get("/api/v1/sessions", headers={"X-API-Key": key})  # a revoked key
    await client.get("/api/v1/admin/keys", headers={"X-API-Key": "vw_" + "guessed" * 6})

    secrets = {"password": password, "token": access_token, "new password": new_password, "new token": new_token,
               "api key": key, "admin key": admin_headers["X-API-Key"]}
    records = [f"{r.getMessage()} {r.__dict__}" for r in caplog.records]
    assert any("/api/v1/auth/token" in line for line in records)  # the requests were logged at all
    streams = capsys.readouterr()
    files = "".join(p.read_text() for p in settings.log_dir.glob("*.log")) if settings.log_dir.exists() else ""
    for name, secret in secrets.items():
        for where, text in (("records", "\n".join(records)), ("stdout", streams.out), ("stderr", streams.err),
                            ("log files", files)):
            assert secret not in text, f"the {name} appears in the {where}"

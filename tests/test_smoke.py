from voltway import __version__


async def test_liveness(client):
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_api_health_has_version(client):
    response = await client.get("/api/v1/health")
    assert response.json() == {"status": "ok", "version": __version__}


async def test_unknown_path_uses_error_model(client):
    response = await client.get("/api/v1/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"

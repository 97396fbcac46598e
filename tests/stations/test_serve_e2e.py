"""End to end: `voltway serve` as a real process on a free port, a key from `voltway keys create`, HTTP calls."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from station_factories import make_station

from tests.processes import voltway_server

from voltway.core.geo import haversine_km

VOLTWAY = str(Path(sys.executable).with_name("voltway"))


@pytest.fixture
def server_env(tmp_path: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}  # the embedded default
    return {
        **env,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'voltway.db'}",
        "LOG_DIR": str(tmp_path / "logs"),
        "DATA_DIR": str(tmp_path / "data"),
    }


@pytest.fixture
def server(server_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    with voltway_server(tmp_path, env=server_env) as base:
        yield base


def test_serve_create_and_search_over_http(server: str, server_env: dict[str, str]) -> None:
    created = subprocess.run(
        [VOLTWAY, "keys", "create", "--role", "operator"], env=server_env, capture_output=True, text=True, check=True
    )
    key = created.stdout.strip().splitlines()[-1]
    with httpx.Client(base_url=f"{server}/api/v1", timeout=10) as http:
        assert http.post("/stations", json=make_station()).status_code == 401
        response = http.post("/stations", json=make_station(external_id="e2e-1"), headers={"X-API-Key": key})
        assert response.status_code == 201, response.text
        station = response.json()
        far = http.post("/stations", json=make_station(name="Paris", latitude=48.8566, longitude=2.3522),
                        headers={"X-API-Key": key})
        assert far.status_code == 201

        page = http.get("/stations", params={"lat": 52.52, "lon": 13.405, "radius_km": 10}).json()
        assert [s["id"] for s in page["items"]] == [station["id"]] and page["next_cursor"] is None
        assert page["items"][0]["distance_km"] == round(haversine_km(52.52, 13.405, 52.5251, 13.3694), 3)
        nearest = http.get("/stations/nearest", params={"lat": 48.0, "lon": 2.0, "k": 2}).json()
        assert [s["id"] for s in nearest["items"]] == [far.json()["id"], station["id"]]
        assert http.get(f"/stations/{station['id']}").json()["external_id"] == "e2e-1"
        error = http.get("/stations", params={"radius_km": 5})
        assert error.status_code == 422 and error.json()["error"]["details"][0]["field"] == "radius_km"

"""The driver map at `/`: served by the app, and rendered by a real headless Chromium against
`voltway serve --demo` (map tiles deliberately unreachable: the stations must show regardless)."""

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.browser import browser_page, chromium_path, dump_dom, screenshot
from tests.processes import voltway_server
from voltway.accounts.keys import create_key
from voltway.accounts.roles import Role
from voltway.core.db import Database

UNREACHABLE_TILES = "http://127.0.0.1:9/{z}/{x}/{y}.png"


def keep(shot: Path) -> None:
    """Copy a screenshot to $VOLTWAY_SCREENSHOTS (when set) for a human look."""
    if directory := os.environ.get("VOLTWAY_SCREENSHOTS"):
        shutil.copyfile(shot, Path(directory) / shot.name)


async def test_map_page_is_served_with_its_assets(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    config = re.search(r'<script id="config" type="application/json">(.*?)</script>', page.text, re.S)
    assert config is not None
    assert '"tileUrl": "https://tile.openstreetmap.org/{z}/{x}/{y}.png"' in config.group(1)
    assert "<" not in config.group(1)  # the attribution's markup is escaped inside the script element
    for asset in re.findall(r'(?:href|src)="(/static/[^"]+)"', page.text):
        response = await client.get(asset)
        assert response.status_code == 200, asset
        assert len(response.content) > 100, asset
    assert (await client.get("/static/leaflet/images/marker-icon.png")).headers["content-type"] == "image/png"
    assert (await client.get("/static/nothing-here.js")).status_code == 404


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`voltway serve --demo` with unreachable map tiles; yields (base URL, its directory)."""
    chromium_path()
    directory = tmp_path_factory.mktemp("map-server")
    with voltway_server(directory, demo=True, env={"MAP_TILE_URL": UNREACHABLE_TILES}) as base:
        yield base, directory


def test_map_renders_clusters_and_nearby_list(demo_server: tuple[str, Path], tmp_path: Path) -> None:
    base, _ = demo_server
    html = dump_dom(f"{base}/", tmp_path / "profile")
    clusters = re.findall(r'class="vw-cluster [^"]*" data-count="(\d+)"', html)
    stations = re.findall(r'class="vw-station [^"]*" data-station-id="(\d+)"', html)
    assert clusters, "no cluster markers rendered"
    # The first view frames every demo station: the markers account for all of them.
    total = httpx.get(f"{base}/api/v1/stations/clusters", params={"bbox": "-180,-90,180,90", "zoom": 0}).json()
    everything = sum(f["properties"]["count"] if f["properties"]["cluster"] else 1 for f in total["features"])
    assert sum(map(int, clusters)) + len(stations) == everything
    nearby = re.search(r'<ol id="nearby" class="nearby-list">(.*?)</ol>', html, re.S)
    assert nearby is not None and nearby.group(1).count("<li>") == 8
    assert "Open Charge Map contributors" in html and 'data-state="live"' in html

    keep(screenshot(f"{base}/", tmp_path / "map.png", tmp_path / "profile-shot"))
    keep(screenshot(f"{base}/", tmp_path / "map-phone.png", tmp_path / "profile-phone", window=(390, 844)))


async def single_station(base: str) -> dict:
    """A demo station that shows as its own marker at zoom 17 (no neighbour in its grid cell)."""
    async with httpx.AsyncClient(base_url=base) as http:
        stations = (await http.get("/api/v1/stations", params={"limit": 50, "status": "available"})).json()["items"]
        for station in stations:
            lat, lon = station["latitude"], station["longitude"]
            bbox = f"{lon - 0.01},{lat - 0.01},{lon + 0.01},{lat + 0.01}"
            features = (await http.get("/api/v1/stations/clusters", params={"bbox": bbox, "zoom": 17})).json()
            if any(f["properties"].get("id") == station["id"] for f in features["features"]):
                return station
    pytest.fail("no demo station stands alone at zoom 17")


async def test_popup_filters_and_live_status_in_the_browser(demo_server: tuple[str, Path], tmp_path: Path) -> None:
    base, directory = demo_server
    station = await single_station(base)
    sid = station["id"]
    db = Database(f"sqlite+aiosqlite:///{directory / 'voltway.db'}")
    try:
        async with db.sessionmaker.begin() as session:
            _key, secret = await create_key(session, role=Role.operator, name="map-test")
    finally:
        await db.dispose()

    async with browser_page(tmp_path / "profile") as page:
        await page.goto(f"{base}/#17/{station['latitude']}/{station['longitude']}")
        await page.wait_for("document.querySelector('#live').dataset.state === 'live'")
        marker = f".vw-station[data-station-id='{sid}']"
        await page.wait_for(f"!!document.querySelector(\"{marker}\")")

        # The popup shows the station's details from the API.
        await page.evaluate(f"document.querySelector(\"{marker}\").click()")
        popup = f".station-popup[data-station-id='{sid}']"
        await page.wait_for(f"!!document.querySelector(\"{popup}\")")
        text = await page.evaluate(f"document.querySelector(\"{popup}\").innerText")
        assert station["name"] in text
        assert f"{len(station['connectors'])}" == str(
            await page.evaluate(f"document.querySelectorAll(\"{popup} tbody tr\").length")
        )
        keep(await page.screenshot(tmp_path / "map-popup.png"))

        # A status change through the API reaches the marker and the open popup live.
        connector = station["connectors"][0]["id"] if station["connectors"] else None
        body = [{"station_id": sid, "status": "out_of_service",
                 "connectors": [{"id": connector, "status": "occupied"}] if connector else []}]
        async with httpx.AsyncClient(base_url=base, headers={"X-API-Key": secret}) as http:
            response = await http.post("/api/v1/stations/status", json=body)
        assert response.status_code == 200, response.text
        await page.wait_for(f"document.querySelector(\"{marker}\").classList.contains('status-out_of_service')")
        await page.wait_for(f"!!document.querySelector(\"{popup} .station-status .status-out_of_service\")")
        if connector:
            await page.wait_for(
                f"!!document.querySelector(\"{popup} tr[data-connector-id='{connector}'] .status-occupied\")"
            )

        # "Available now only" leaves only available stations on the map and in the nearby list.
        await page.evaluate("""(() => { const box = document.querySelector("input[name=available]");
            box.checked = true; box.dispatchEvent(new Event("change", {bubbles: true})); })()""")
        await page.wait_for(f"!document.querySelector(\"{marker}\")")
        statuses = await page.evaluate(
            "[...document.querySelectorAll('#nearby .dot')].map(d => d.className)"
        )
        assert statuses and all(s == "dot status-available" for s in statuses)
        assert page.errors == []

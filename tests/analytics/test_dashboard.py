"""The dashboard at `/dashboard`: served with its own assets, and drawn by a real headless Chromium against
`voltway serve --demo` with the demo operator key it prints."""

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.browser import browser_page, chromium_path
from tests.processes import voltway_server

CANVASES = ("chart-trends", "chart-hours", "chart-days", "chart-revenue", "chart-popular")


async def test_dashboard_page_and_assets(client: httpx.AsyncClient) -> None:
    page = await client.get("/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assets = re.findall(r'(?:href|src)="(/static/[^"]+)"', page.text)
    assert "/static/chartjs/chart.umd.min.js" in assets and "/static/dashboard.js" in assets
    for asset in assets:
        response = await client.get(asset)
        assert response.status_code == 200 and len(response.content) > 500, asset
    assert "https://" not in page.text.split("<footer")[0]  # nothing from a CDN


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """`voltway serve --demo`; yields (base URL, the demo operator key it printed)."""
    chromium_path()
    directory = tmp_path_factory.mktemp("dashboard-server")
    with voltway_server(directory, demo=True) as base:
        match = re.search(r"demo operator key (vw_[\w-]+)", (directory / "server.log").read_text())
        assert match, "serve --demo printed no demo operator key"
        yield base, match.group(1)


async def test_dashboard_draws_every_chart_in_chromium(demo: tuple[str, str], tmp_path: Path) -> None:
    base, key = demo
    async with browser_page(tmp_path / "profile") as page:
        await page.goto(f"{base}/dashboard#key={key}")
        rendered = " && ".join(f"document.getElementById('{c}').dataset.rendered === 'true'" for c in CANVASES)
        await page.wait_for(rendered, timeout=30)
        points = await page.evaluate(f"[{', '.join(f'+document.getElementById({c!r}).dataset.points' for c in CANVASES)}]")
        assert points[0] in (30, 31) and points[1] == 24  # 30 days touch 31 local dates but at midnight and points[2] == 7 and points[3] > 20 and points[4] == 10
        assert (await page.evaluate("document.getElementById('status').textContent")).startswith("Updated in")
        assert int((await page.evaluate("document.getElementById('kpi-sessions').textContent")).replace(",", "")) > 0
        # The key moved from the address to localStorage; every request of the page succeeded.
        assert await page.evaluate("location.hash") == ""
        assert await page.evaluate("localStorage.getItem('voltway.operatorKey')") == key
        failed = await page.evaluate(
            "performance.getEntriesByType('resource').filter(e => !(e.responseStatus >= 200 && e.responseStatus < 400))"
            ".map(e => e.name + ' ' + e.responseStatus)"
        )
        assert failed == []
        requested = await page.evaluate("performance.getEntriesByType('resource').map(e => e.name)")
        assert all(url.startswith(base) for url in requested)
        assert any(url.endswith("chart.umd.min.js") for url in requested)
        assert page.errors == []
        shot = await page.screenshot(tmp_path / "dashboard.png")
        shutil.copyfile(shot, Path("/tmp") / "voltway-dashboard.png")  # kept for a human look
        # Filters: one country re-reads every endpoint.
        await page.evaluate("document.querySelector('[name=country]').value = 'FR'; "
                            "document.querySelector('.apply').click()")
        await page.wait_for("document.getElementById('status').textContent.startsWith('Updated in')")
        assert page.errors == []


async def test_dashboard_without_a_key_asks_for_one(demo: tuple[str, str], tmp_path: Path) -> None:
    base, _key = demo
    async with browser_page(tmp_path / "profile") as page:
        await page.goto(f"{base}/dashboard")
        status = await page.wait_for("document.getElementById('status').dataset.kind === 'error' && "
                                     "document.getElementById('status').textContent")
        assert "operator API key" in status
        await page.evaluate("document.querySelector('[name=key]').value = 'vw_wrong'; "
                            "document.querySelector('.apply').click()")
        status = await page.wait_for("document.getElementById('status').textContent.includes('Check the API key')"
                                     " && document.getElementById('status').textContent")
        assert "Could not load" in status

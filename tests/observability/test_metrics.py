"""`/metrics` parsed with prometheus-client's parser; values checked against the requests the test made."""

import json
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from tests.observability.conftest import parse_metrics, scrape, value
from tests.processes import voltway_server
from voltway import __version__
from voltway.core.metrics import UNMATCHED_ROUTE

REQUESTS = "voltway_http_requests_total"
LATENCY_COUNT = "voltway_http_request_duration_seconds_count"


async def test_request_counts_by_route_template_and_status(client: httpx.AsyncClient) -> None:
    before = await scrape(client)
    for _ in range(3):
        assert (await client.get("/health")).status_code == 200
    for station_id in (101, 202):
        assert (await client.get(f"/api/v1/stations/{station_id}")).status_code == 404
    assert (await client.get("/no/such/path/123")).status_code == 404
    assert (await client.post("/health")).status_code == 405
    after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta(REQUESTS, method="GET", route="/health", status="200") == 3
    assert delta(LATENCY_COUNT, method="GET", route="/health") == 3
    # The template, never the raw path: both station ids land on one series.
    assert delta(REQUESTS, method="GET", route="/api/v1/stations/{station_id}", status="404") == 2
    assert not any(
        dict(labels).get("route", "").endswith(("/101", "/202", "/123")) for (_name, labels) in after
    )
    assert delta(REQUESTS, method="GET", route=UNMATCHED_ROUTE, status="404") == 1
    assert delta(REQUESTS, method="POST", route="/health", status="405") == 1
    assert value(after, "voltway_http_requests_in_progress", method="GET") == 1  # the scrape itself
    assert value(after, "voltway_app_info", version=__version__) == 1


async def test_scrape_time_gauges_and_database_timing(client: httpx.AsyncClient, db, backend: str) -> None:
    async with db.engine.begin() as conn:
        for i in range(4):
            await conn.execute(
                text(
                    "INSERT INTO stations (source, external_id, name, latitude, longitude, x, y, z, status,"
                    " rating_count, created_at, updated_at) VALUES ('test', :ext, :name, 50, 8, 0, 0, 0,"
                    " 'available', 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                ),
                {"ext": f"m{i}", "name": f"Station {i}"},
            )
    before = await scrape(client)
    assert value(before, "voltway_stations") == 4
    assert value(before, "voltway_memory_rss_bytes") > 10 * 1024 * 1024

    async with db.engine.begin() as conn:
        for _ in range(3):
            await conn.execute(text("DELETE FROM stations WHERE id < 0"))
    assert (await client.get("/health/ready")).status_code == 200
    after = await scrape(client)
    # Every statement is timed by operation (background work may add SELECTs and UPDATEs, not DELETEs).
    assert value(after, "voltway_db_query_duration_seconds_count", operation="delete") - value(
        before, "voltway_db_query_duration_seconds_count", operation="delete"
    ) == 3
    assert value(after, "voltway_db_query_duration_seconds_count", operation="select") > value(
        before, "voltway_db_query_duration_seconds_count", operation="select"
    )
    # The stations count is cached between scrapes a few seconds apart.
    assert value(after, "voltway_stations") == 4


async def test_unhandled_exception_counted_and_answered_in_error_model(app_factory) -> None:
    def routes(app: FastAPI) -> None:
        @app.get("/test/boom")
        async def boom() -> None:
            raise ZeroDivisionError("internal detail: password=hunter2")

    async with app_factory(routes) as client:
        before = await scrape(client)
        response = await client.get("/test/boom")
        after = await scrape(client)
    assert response.status_code == 500
    request_id = response.headers["x-request-id"]
    assert response.json() == {
        "error": {"code": "internal_error", "message": "internal server error", "details": {"request_id": request_id}}
    }
    assert "hunter2" not in response.text and "ZeroDivision" not in response.text
    assert value(after, "voltway_http_exceptions_total", type="ZeroDivisionError") - value(
        before, "voltway_http_exceptions_total", type="ZeroDivisionError"
    ) == 1
    assert value(after, REQUESTS, method="GET", route="/test/boom", status="500") - value(
        before, REQUESTS, method="GET", route="/test/boom", status="500"
    ) == 1


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_metrics_disabled(app_factory) -> None:
    async with app_factory(metrics_enabled=False) as client:
        response = await client.get("/metrics")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_multiprocess_workers_share_one_metrics_page(tmp_path: Path) -> None:
    """`voltway serve --workers 2`: every request is counted once, whichever worker served it."""
    with voltway_server(tmp_path, workers=2) as base:
        before = parse_metrics(httpx.get(f"{base}/metrics").text)
        for _ in range(40):  # a new connection each time, so both workers serve some
            assert httpx.get(f"{base}/api/v1/health").status_code == 200
        page = httpx.get(f"{base}/metrics").text
        after = parse_metrics(page)
    counted = value(after, REQUESTS, method="GET", route="/api/v1/health", status="200") - value(
        before, REQUESTS, method="GET", route="/api/v1/health", status="200"
    )
    assert counted == 40
    assert "pid=" not in page  # livesum gauges are summed over the workers, no per-process series
    # uvicorn's own lines (parent and workers) went through the same JSON formatter.
    console = [json.loads(line) for line in (tmp_path / "server.log").read_text().splitlines() if line.strip()]
    uvicorn_lines = [line["message"] for line in console if line["logger"].startswith("uvicorn")]
    assert sum(message.startswith("Started server process") for message in uvicorn_lines) == 2
    assert any(message.startswith("Started parent process") for message in uvicorn_lines)
    assert value(after, "voltway_memory_rss_bytes") > 0
    assert ("voltway_stations", frozenset()) in after  # scrape-time gauges work in multiprocess mode too

"""POST /api/v1/stations/bulk: upsert semantics, per-item errors, limits on items and body size."""

import sqlite3
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson
import pytest

from voltway.core.cache import cache
from voltway.core.db import Database, sqlite_path
from voltway.ingest.router import MAX_BODY_BYTES

StationFactory = Callable[..., dict[str, Any]]

pytestmark = pytest.mark.usefixtures("backend")
URL = "/api/v1/stations/bulk"


async def _stored(db: Database) -> dict[str, dict[str, Any]]:
    """external_id -> station fields and connectors, read straight from the tables."""
    rows = await db.fetch(
        "SELECT id, external_id, name, latitude, status, max_power_kw FROM stations ORDER BY id", {}
    )
    connectors = await db.fetch("SELECT station_id, type, power_kw, status FROM connectors ORDER BY id", {})
    out = {}
    for sid, ext, name, lat, status, max_power in rows:
        conns = [(t, p, s) for station_id, t, p, s in connectors if station_id == sid]
        out[ext] = {"id": sid, "name": name, "latitude": lat, "status": status, "max_power_kw": max_power,
                    "connectors": conns}
    return out


async def test_create_then_unchanged_then_updated(
    client: httpx.AsyncClient, operator_headers: dict[str, str], db: Database, station_item: StationFactory
) -> None:
    items = [station_item(n) for n in range(1, 6)]
    response = await client.post(URL, json=items, headers=operator_headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"created": 5, "updated": 0, "unchanged": 0, "errors": []}
    stored = await _stored(db)
    assert sorted(stored) == [f"acme-{n}" for n in range(1, 6)]
    assert stored["acme-3"]["connectors"] == [("ccs2", 150.0, "available"), ("type2", 22.0, "occupied")]
    assert stored["acme-3"]["max_power_kw"] == 150.0

    again = await client.post(URL, json=items, headers=operator_headers)
    assert again.json() == {"created": 0, "updated": 0, "unchanged": 5, "errors": []}

    items[1] = station_item(2, name="Renamed hub", connectors=[{"type": "chademo", "power_kw": 50}])
    items.append(station_item(6))
    changed = await client.post(URL, json=items, headers=operator_headers)
    assert changed.json() == {"created": 1, "updated": 1, "unchanged": 4, "errors": []}
    after = await _stored(db)
    assert after["acme-2"]["id"] == stored["acme-2"]["id"]
    assert after["acme-2"]["name"] == "Renamed hub"
    assert after["acme-2"]["connectors"] == [("chademo", 50.0, "unknown")]
    assert after["acme-2"]["max_power_kw"] == 50.0


async def test_bad_items_are_reported_by_index_and_good_ones_written(
    client: httpx.AsyncClient, operator_headers: dict[str, str], db: Database, station_item: StationFactory
) -> None:
    items: list[Any] = [
        station_item(1),
        station_item(2, latitude=91),  # out of range
        "not an object",
        station_item(4, latitude="north"),  # wrong type
        station_item(5, external_id=None),  # no key to upsert by
        station_item(6, connectors=[{"type": "warp-drive"}]),
        {"name": "no coordinates", "external_id": "x"},
        station_item(8),
    ]
    response = await client.post(URL, json=items, headers=operator_headers)
    assert response.status_code == 200
    body = response.json()
    assert (body["created"], body["updated"], body["unchanged"]) == (2, 0, 0)
    errors = {e["index"]: e for e in body["errors"]}
    assert sorted(errors) == [1, 2, 3, 4, 5, 6]
    assert errors[1]["code"] == "validation_error" and errors[1]["message"].startswith("latitude:")
    assert errors[2]["message"] == "expected a JSON object"
    assert errors[3]["message"].startswith("latitude:")
    assert errors[4]["code"] == "missing_external_id"
    assert errors[5]["message"].startswith("connectors.0.type:")
    assert "latitude: Field required" in errors[6]["message"] and "longitude: Field required" in errors[6]["message"]
    assert sorted(await _stored(db)) == ["acme-1", "acme-8"]


async def test_a_valid_body_reports_missing_keys_by_index(
    client: httpx.AsyncClient, operator_headers: dict[str, str], db: Database, station_item: StationFactory
) -> None:
    """Every item is a valid station (the whole body validates at once); the keyless ones are still named."""
    items = [station_item(n) for n in range(5)]
    items[1] = station_item(1, external_id=None)
    items[4] = {k: v for k, v in station_item(4).items() if k != "external_id"}
    response = await client.post(URL, json=items, headers=operator_headers)
    assert response.json() == {
        "created": 3, "updated": 0, "unchanged": 0,
        "errors": [
            {"index": 1, "code": "missing_external_id", "message": "external_id is required to upsert"},
            {"index": 4, "code": "missing_external_id", "message": "external_id is required to upsert"},
        ],
    }  # fmt: skip
    assert sorted(await _stored(db)) == ["acme-0", "acme-2", "acme-3"]


async def test_only_writes_make_cached_answers_stale(
    client: httpx.AsyncClient, operator_headers: dict[str, str], station_item: StationFactory
) -> None:
    items = [station_item(n) for n in range(3)]
    assert (await client.post(URL, json=items, headers=operator_headers)).json()["created"] == 3
    before, _ = await cache.version("stations")
    assert (await client.post(URL, json=items, headers=operator_headers)).json()["unchanged"] == 3
    assert (await client.post(URL, json=[{"name": "no key"}], headers=operator_headers)).json()["errors"]
    assert (await cache.version("stations"))[0] == before
    assert (await client.post(URL, json=[station_item(0, name="Renamed")], headers=operator_headers)).json()[
        "updated"
    ] == 1
    assert (await cache.version("stations"))[0] > before


async def test_same_key_twice_last_wins(
    client: httpx.AsyncClient, operator_headers: dict[str, str], db: Database, station_item: StationFactory
) -> None:
    items = [station_item(1, name="first"), station_item(1, name="second")]
    response = await client.post(URL, json=items, headers=operator_headers)
    assert response.json() == {"created": 1, "updated": 0, "unchanged": 0, "errors": []}
    assert (await _stored(db))["acme-1"]["name"] == "second"


async def test_roles(
    client: httpx.AsyncClient, readonly_headers: dict[str, str], admin_headers: dict[str, str],
    station_item: StationFactory,
) -> None:
    assert (await client.post(URL, json=[station_item()])).status_code == 401
    assert (await client.post(URL, json=[station_item()], headers=readonly_headers)).status_code == 403
    response = await client.post(URL, json=[station_item()], headers=admin_headers)
    assert response.json()["created"] == 1


async def test_1000_items_pass_and_1001_are_refused(
    client: httpx.AsyncClient, operator_headers: dict[str, str], db: Database, station_item: StationFactory
) -> None:
    items = [station_item(n, latitude=-40 + n * 0.005) for n in range(1001)]
    refused = await client.post(URL, json=items, headers=operator_headers)
    assert refused.status_code == 413
    assert refused.json()["error"]["code"] == "payload_too_large"
    assert refused.json()["error"]["message"].startswith("at most 1000 items per request, got 1001")
    assert await db.fetch("SELECT count(*) FROM stations", {}) == [(0,)]

    accepted = await client.post(URL, json=items[:1000], headers=operator_headers)
    assert accepted.json() == {"created": 1000, "updated": 0, "unchanged": 0, "errors": []}
    assert await db.fetch("SELECT count(*) FROM connectors", {}) == [(2000,)]


async def test_not_an_array_and_not_json(client: httpx.AsyncClient, operator_headers: dict[str, str]) -> None:
    response = await client.post(URL, json={"name": "x"}, headers=operator_headers)
    assert response.status_code == 422
    assert response.json()["error"]["message"] == "the body must be a JSON array of items"
    response = await client.post(URL, content=b"[{", headers=operator_headers)
    assert response.status_code == 422
    assert response.json()["error"]["message"].startswith("the body is not valid JSON")


class _Body:
    """A 100 MB request body produced on demand, counting how much of it the server pulled."""

    def __init__(self, total: int, chunk: int = 64 * 1024) -> None:
        self.total, self.chunk, self.sent = total, chunk, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        piece = b"[" + b" " * (self.chunk - 1)
        while self.sent < self.total:
            self.sent += len(piece)
            yield piece
            piece = b" " * self.chunk


HUNDRED_MB = 100 * 1024 * 1024


async def test_100mb_body_with_length_is_refused_before_reading(
    client: httpx.AsyncClient, operator_headers: dict[str, str]
) -> None:
    body = _Body(HUNDRED_MB)
    headers = {**operator_headers, "Content-Length": str(HUNDRED_MB), "Content-Type": "application/json"}
    response = await client.post(URL, content=body, headers=headers)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    # httpx's ASGI transport pulls the body only when the app asks for it: nothing was read.
    assert body.sent <= body.chunk


async def test_100mb_chunked_body_is_cut_off_at_the_limit(
    client: httpx.AsyncClient, operator_headers: dict[str, str]
) -> None:
    body = _Body(HUNDRED_MB)
    response = await client.post(URL, content=body, headers={**operator_headers, "Content-Type": "application/json"})
    assert response.status_code == 413
    assert MAX_BODY_BYTES < body.sent <= MAX_BODY_BYTES + 2 * body.chunk


async def test_unauthenticated_large_body_is_not_read(client: httpx.AsyncClient) -> None:
    body = _Body(HUNDRED_MB)
    response = await client.post(URL, content=body)
    assert response.status_code == 401
    assert body.sent <= body.chunk


def test_openapi_documents_the_body(app: Any) -> None:
    operation = app.openapi()["paths"]["/api/v1/stations/bulk"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema["maxItems"] == 1000
    assert {"name", "latitude", "longitude", "external_id", "connectors"} <= set(schema["items"]["properties"])
    assert "413" in operation["responses"]
    assert orjson.dumps(schema).find(b"$ref") == -1


async def _import_rows(client: httpx.AsyncClient) -> dict[str, float]:
    """voltway_import_rows_total{source="api"} by result, read from /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    text = (await client.get("/metrics")).text
    return {
        sample.labels["result"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "voltway_import_rows_total" and sample.labels.get("source") == "api"
    }


async def test_bulk_writes_count_in_the_import_rows_metric(
    client: httpx.AsyncClient, operator_headers: dict[str, str], station_item: StationFactory
) -> None:
    before = await _import_rows(client)
    items = [station_item(1), station_item(2), station_item(3, latitude=91)]
    await client.post(URL, json=items, headers=operator_headers)
    await client.post(URL, json=items[:1], headers=operator_headers)
    after = await _import_rows(client)
    delta = {result: after.get(result, 0) - before.get(result, 0) for result in after}
    assert delta == {"created": 2, "updated": 0, "unchanged": 1, "rejected": 1}


async def test_a_write_that_cannot_get_the_sqlite_lock_is_a_503_to_retry(
    client: httpx.AsyncClient, operator_headers: dict[str, str], db: Database, station_item: StationFactory,
    database_url: str,
) -> None:
    if not db.is_sqlite:
        pytest.skip("PostgreSQL has no database-wide write lock")
    holder = sqlite3.connect(sqlite_path(database_url), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's long write, for longer than the busy timeout (10 s)
    try:
        response = await client.post(URL, json=[station_item(1)], headers=operator_headers)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "2"
    assert response.json()["error"]["code"] == "service_unavailable"
    retried = await client.post(URL, json=[station_item(1)], headers=operator_headers)
    assert retried.json()["created"] == 1

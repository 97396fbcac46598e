"""`Database.fetch`, the hot read path beside the ORM engine: parameters, results and read-only connections."""

import asyncio
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url
from tests.stations.station_factories import make_station

from voltway.core.db import Database, _positional

pytestmark = pytest.mark.usefixtures("backend")


def test_named_parameters_become_positional_ones_and_casts_stay() -> None:
    sql = "SELECT a::text, :x + :x, :y FROM t WHERE b = ANY(:ids) AND c = '12:30' AND d = :y"
    assert _positional(sql) == (
        "SELECT a::text, $1 + $1, $2 FROM t WHERE b = ANY($3) AND c = '12:30' AND d = $2",
        ("x", "y", "ids"),
    )


async def test_fetch_binds_by_name_and_returns_tuples(db: Database) -> None:
    condition, params = db.one_of("v", [3, 1])
    rows = await db.fetch(
        f"SELECT CAST(:a AS INTEGER) + :a, :b, '12:30' FROM (SELECT 1 AS v UNION ALL SELECT 3) t WHERE {condition}",
        {"a": 2, "b": "x", **params},
    )
    assert rows == [(4, "x", "12:30"), (4, "x", "12:30")]
    assert all(type(row) is tuple for row in rows)


async def test_fetch_cannot_write(client: httpx.AsyncClient, db: Database, operator_headers: dict[str, str]) -> None:
    created = await client.post("/api/v1/stations", json=make_station(), headers=operator_headers)
    station = {"id": created.json()["id"]}
    with pytest.raises((sqlite3.OperationalError, asyncpg.ReadOnlySQLTransactionError)):
        await db.fetch("DELETE FROM stations WHERE id = :id", station)
    assert await db.fetch("SELECT count(*) FROM stations WHERE id = :id", station) == [(1,)]


COUNT_TO = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < :n) SELECT count(*), sum(x) FROM c"


async def _ticks_during(db: Database, n: int, *, slow: bool) -> tuple[Sequence[Any], float, int]:
    """The rows of a long statement, its wall time and how often a 5 ms ticker ran on the loop meanwhile."""
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    ticks, started = 0, time.perf_counter()
    rows = await db.fetch(COUNT_TO, {"n": n}, slow=slow)
    elapsed, seen = time.perf_counter() - started, ticks
    task.cancel()
    return rows, elapsed, seen


async def test_a_slow_read_leaves_the_event_loop_serving(db: Database, backend: str) -> None:
    """`slow=True` runs a long SQLite statement on a thread of its own: the loop keeps running meanwhile, where
    the in-place path holds it for the whole statement (PostgreSQL's reads are awaited either way)."""
    n = 400_000
    rows, elapsed, seen = await _ticks_during(db, n, slow=True)
    assert [tuple(row) for row in rows] == [(n, n * (n + 1) // 2)]
    assert elapsed > 0.05  # long enough to tell: ten ticks or more on an idle machine
    assert seen >= 3
    rows, elapsed, seen = await _ticks_during(db, n, slow=False)
    assert [tuple(row) for row in rows] == [(n, n * (n + 1) // 2)]
    if backend == "sqlite":
        assert seen == 0


async def test_fetch_survives_the_server_dropping_its_connections(db: Database, backend: str) -> None:
    """A PostgreSQL restart or failover closes every pooled connection: the next read still answers.

    The race it guards against (a connection used while the server's goodbye is still in flight) is not
    forced: without the retry in `Database.fetch` this test failed in about a third of runs."""
    if backend != "postgresql":
        pytest.skip("the read pool is PostgreSQL's")
    await asyncio.gather(*(db.fetch("SELECT pg_sleep(0.05)", {}) for _ in range(4)))  # several pooled connections
    admin = await asyncpg.connect(make_url(db.url).set(drivername="postgresql").render_as_string(False))
    try:
        dropped = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = 'voltway-read' AND datname = current_database()"
        )
    finally:
        await admin.close()
    assert dropped >= 2
    # At once, on every pooled connection, while the server's goodbyes may still be in flight.
    answers = await asyncio.gather(*(db.fetch("SELECT :n * 2", {"n": n}) for n in range(6)))
    assert answers == [[(2 * n,)] for n in range(6)]

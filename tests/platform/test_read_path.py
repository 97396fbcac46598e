"""`Database.fetch`, the hot read path beside the ORM engine: parameters, results and read-only connections."""

import sqlite3

import asyncpg
import httpx
import pytest
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

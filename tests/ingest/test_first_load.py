"""A first import into an empty SQLite database builds the stations' indexes and R*Tree after the rows."""

import io
import json
import math
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from voltway.core.db import Database, sqlite_path, utcnow
from voltway.ingest.bulk import import_stations
from voltway.ingest.duplicates import link_duplicates_since
from voltway.ingest.first_load import (
    RTREE_CATCH_UP,
    indexes_after_first_load,
    linking_indexes_deferred,
    write_turn,
)
from voltway.ingest.ocm import parse_record
from voltway.ingest.reader import import_ocm_stream
from voltway.ingest.reference import bundled_reference
from voltway.ingest.rows import StationRow
from voltway.migrations import upgrade
from voltway.stations.map_cells import LEAF_LEVEL, cell_size
from voltway.stations.schemas import StationIn

from tests.conftest import fresh_sqlite_url
from tests.ingest.conftest import StationFactory
from tests.ingest.support import schema, synthetic_pois

DEFERRED = {  # every non-unique index of stations and connectors but one, the R*Tree's and map cells' insert triggers
    "ix_connectors_type_power", "ix_stations_country_status", "ix_stations_duplicate_of_id", "ix_stations_lat_lon",
    "ix_stations_map", "ix_stations_max_power_kw", "ix_stations_operator", "ix_stations_sort_power",
    "ix_stations_sort_rating", "ix_stations_updated_at", "stations_rtree_insert", "stations_map_insert",
}  # fmt: skip


def rtree_matches_stations(url: str) -> bool:
    with sqlite3.connect(sqlite_path(url)) as conn:
        # The R*Tree keeps 32-bit floats rounded outwards: compare each entry with its station's position.
        stations = conn.execute("SELECT id, latitude, longitude FROM stations ORDER BY id").fetchall()
        entries = conn.execute("SELECT * FROM station_rtree ORDER BY id").fetchall()  # id, lat range, lon range
    return [s[0] for s in stations] == [e[0] for e in entries] and all(
        e[1] <= s[1] <= e[2] and e[3] <= s[2] <= e[4] and e[2] - e[1] < 1e-4 and e[4] - e[3] < 1e-4
        for s, e in zip(stations, entries)
    )


async def import_watching(url: str, records: list[dict[str, Any]]) -> tuple[Any, list[set[str]]]:
    """Import `records`; also the names of the indexes and triggers missing after each committed chunk."""
    expected = set(schema(url))
    missing: list[set[str]] = []
    db = Database(url)
    try:
        body = io.BytesIO(json.dumps(records).encode())
        report = await import_ocm_stream(db, body, progress=lambda *_: missing.append(expected - set(schema(url))))
    finally:
        await db.dispose()
    return report, missing


@pytest.fixture
def url(sqlite_template: Path, tmp_path: Path) -> str:
    return fresh_sqlite_url(sqlite_template, tmp_path)


async def test_a_first_import_builds_the_indexes_after_the_rows(url: str) -> None:
    before = schema(url)
    report, missing = await import_watching(url, synthetic_pois(2500))
    assert (report.created, report.rejected) == (2500, [])
    assert missing == [DEFERRED, DEFERRED, DEFERRED]  # after each of the three chunks
    assert schema(url) == before
    assert rtree_matches_stations(url)
    with sqlite3.connect(sqlite_path(url)) as conn:
        assert conn.execute("SELECT count(*) FROM deferred_schema").fetchone() == (0,)
        # The map cells' trigger caught up (every station's cell marked) and the import built the cells.
        assert conn.execute("SELECT count(*) FROM map_dirty").fetchone() == (0,)
        leaves = set(conn.execute("SELECT gy, gx FROM map_cells WHERE level = ?", (LEAF_LEVEL,)))
        positions = conn.execute(
            "SELECT latitude, longitude FROM stations WHERE duplicate_of_id IS NULL AND status <> 'removed'"
        ).fetchall()
    leaf = cell_size(LEAF_LEVEL)
    assert leaves == {(math.floor(lat / leaf), math.floor(lon / leaf)) for lat, lon in positions}


async def test_an_import_into_a_database_with_stations_keeps_its_indexes(url: str) -> None:
    records = synthetic_pois(2500)
    await import_watching(url, records[:10])
    report, missing = await import_watching(url, records)
    assert (report.created, report.unchanged) == (2490, 10)
    assert missing == [set(), set(), set()]
    assert rtree_matches_stations(url)


async def test_a_first_import_that_stops_early_still_builds_its_indexes(url: str) -> None:
    before = schema(url)
    truncated = json.dumps(synthetic_pois(1500))[:-5000].encode()
    db = Database(url)
    try:
        report = await import_ocm_stream(db, io.BytesIO(truncated))
    finally:
        await db.dispose()
    assert report.error is not None and report.error.code == "truncated_json"
    assert report.created > 1000
    assert schema(url) == before
    assert rtree_matches_stations(url)


async def test_a_first_import_that_fails_still_builds_its_indexes(url: str) -> None:
    before = schema(url)
    db = Database(url)
    try:
        with pytest.raises(RuntimeError, match="stopped"):
            await import_ocm_stream(db, io.BytesIO(json.dumps(synthetic_pois(2500)).encode()), progress=_fail_after(2))
    finally:
        await db.dispose()
    assert schema(url) == before  # a killed import leaves them to the next start: tests/ingest/test_import_cli.py
    assert rtree_matches_stations(url)


def _fail_after(chunks: int) -> Any:
    seen = []

    def progress(*_: Any) -> None:
        seen.append(1)
        if len(seen) == chunks:
            raise RuntimeError("stopped")

    return progress


def test_the_next_migration_run_restores_what_a_killed_load_left_all_or_nothing(url: str) -> None:
    before = schema(url)
    with sqlite3.connect(sqlite_path(url), isolation_level=None) as conn:  # what a killed first load leaves
        conn.execute("BEGIN")
        for name in ("ix_stations_operator", "stations_rtree_insert"):
            sql = before[name]
            if name == "stations_rtree_insert":
                conn.execute("INSERT INTO deferred_schema (name, sql) VALUES (?, ?)", (name, RTREE_CATCH_UP[name]))
            conn.execute("INSERT INTO deferred_schema (name, sql) VALUES (?, ?)", (name, sql))
            conn.execute(f"DROP {'TRIGGER' if name.startswith('stations_') else 'INDEX'} {name}")
        conn.execute("INSERT INTO stations (source, external_id, name, latitude, longitude, x, y, z, status, "
                     "rating_count, created_at, updated_at) VALUES ('t', '1', 'T', 10, 20, 0, 0, 0, 'unknown', 0, "
                     "'2026-01-01 00:00:00.000000', '2026-01-01 00:00:00.000000')")  # fmt: skip
        conn.execute("COMMIT")
        broken = conn.execute("SELECT max(position) FROM deferred_schema").fetchone()[0] + 1
        conn.execute("INSERT INTO deferred_schema VALUES (?, 'bad', 'CREATE NONSENSE')", (broken,))
    with pytest.raises(Exception, match="NONSENSE"):
        upgrade(url)
    assert set(before) - set(schema(url)) == {"ix_stations_operator", "stations_rtree_insert"}  # nothing half-done
    with sqlite3.connect(sqlite_path(url)) as conn:
        conn.execute("DELETE FROM deferred_schema WHERE name = 'bad'")
    upgrade(url)
    assert schema(url) == before
    assert rtree_matches_stations(url)


async def test_stations_written_beside_a_first_load_reach_the_r_tree_when_it_ends(url: str) -> None:
    def write_beside(*_: Any) -> None:  # another writer, between two of the load's chunks
        with sqlite3.connect(sqlite_path(url)) as conn:
            conn.execute(
                "INSERT INTO stations (source, external_id, name, latitude, longitude, x, y, z, status, rating_count, "
                "created_at, updated_at) VALUES ('other', ?, 'Beside', -40, 175, 0, 0, 0, 'unknown', 0, "
                "'2026-01-01 00:00:00.000000', '2026-01-01 00:00:00.000000')",
                (str(len(written)),),
            )
            written.append(conn.execute("SELECT count(*) FROM station_rtree").fetchone()[0])

    written: list[int] = []
    db = Database(url)
    try:
        body = io.BytesIO(json.dumps(synthetic_pois(2500)).encode())
        report = await import_ocm_stream(db, body, progress=write_beside)
    finally:
        await db.dispose()
    assert report.created == 2500
    assert written == [0, 0, 0]  # no R*Tree entry while the load ran, not even for the other writer's
    assert rtree_matches_stations(url)  # 2,503 stations, each with its entry


async def test_a_writer_beside_a_first_load_leaves_duplicate_linking_to_it(
    url: str, station_item: StationFactory
) -> None:
    """Without the indexes, linking would read the whole table again and again (a bulk request took minutes and
    slowed the load sixfold); the load links every station written since it started."""
    twins = [  # the same site listed twice, ~8 m apart
        (i, StationIn.model_validate(station_item(1, external_id=f"twin-{i}", longitude=174.7633 + i * 0.0001)))
        for i in range(2)
    ]
    db = Database(url)
    try:
        started = utcnow()
        async with indexes_after_first_load(db) as deferred:
            assert deferred and await linking_indexes_deferred(db)
            report = await import_stations(db, twins, invalid=[], feed="api")
            assert (report.created, report.duplicates) == (2, [])
            assert await link_duplicates_since(db, started) == []  # as the bulk API's background linking
        assert not await linking_indexes_deferred(db)
        links = await link_duplicates_since(db, started)  # as the load does once its indexes are back
    finally:
        await db.dispose()
    assert [(link.station_id, link.duplicate_of_id) for link in links] == [(2, 1)]


async def test_a_first_load_links_its_duplicates_beside_the_rest_of_the_rebuild(url: str) -> None:
    before = schema(url)
    twins = [  # one site listed twice, ~6 m apart
        {"ID": 900_000 + i, "AddressInfo": {"Title": "Harbour Charging Hub", "CountryID": 168,
                                            "Latitude": -36.8485 + i * 0.00005, "Longitude": 174.7633}}  # fmt: skip
        for i in range(2)
    ]
    report, _missing = await import_watching(url, [*synthetic_pois(2500), *twins])
    assert report.created == 2502
    assert [(link.station_id, link.duplicate_of_id) for link in report.duplicates] == [(2502, 2501)]
    assert schema(url) == before
    assert rtree_matches_stations(url)


async def test_linking_writes_between_the_steps_of_the_rebuild(url: str) -> None:
    """A waiting SQLite writer polls and would find the lock taken again by the next step: `write_turn` queues
    linking's writes between the steps instead."""
    before = schema(url)
    db = Database(url)
    try:
        async with indexes_after_first_load(db) as load:
            assert load is not None
            await import_stations(db, enumerate(synthetic_pois_rows(2500)), invalid=[], feed="ocm", link=False)

            async def beside() -> int:
                assert not await linking_indexes_deferred(db)  # linking's indexes came back first
                async with write_turn(db), db.engine.begin() as conn:
                    await conn.exec_driver_sql("UPDATE stations SET duplicate_of_id = 2 WHERE id = 1")
                    return (await conn.exec_driver_sql("SELECT count(*) FROM deferred_schema")).scalar_one()

            left = await load.finish(beside=beside)
        assert left > 0  # written while the rebuild still had steps to go
        assert not await linking_indexes_deferred(db)
        assert await db.fetch("SELECT duplicate_of_id FROM stations WHERE id = 1", {}) == [(2,)]
    finally:
        await db.dispose()
    assert schema(url) == before
    assert rtree_matches_stations(url)


async def test_a_failure_beside_the_rebuild_still_builds_every_index(url: str) -> None:
    before = schema(url)
    db = Database(url)
    try:
        with pytest.raises(RuntimeError, match="linking failed"):
            async with indexes_after_first_load(db) as load:
                assert load is not None
                await import_stations(db, enumerate(synthetic_pois_rows(1500)), invalid=[], feed="ocm", link=False)

                async def beside() -> None:
                    raise RuntimeError("linking failed")

                await load.finish(beside=beside)
    finally:
        await db.dispose()
    assert schema(url) == before
    assert rtree_matches_stations(url)


def synthetic_pois_rows(n: int) -> list[StationRow]:
    return [parse_record(raw, bundled_reference()) for raw in synthetic_pois(n)]

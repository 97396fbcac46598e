"""The bulk upsert engine on both databases: classification, chunking, repeats, and a failing chunk."""

import contextlib
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from voltway.core.db import Database
from voltway.ingest.upsert import UpsertReport, upsert_stations
from voltway.stations.schemas import StationIn

pytestmark = pytest.mark.usefixtures("backend")


def make_station(n: int, **overrides: Any) -> StationIn:
    data: dict[str, Any] = {
        "source": "test",
        "external_id": f"s{n}",
        "name": f"Station {n}",
        "country": "NZ",
        "latitude": -40 + (n % 500) * 0.01,
        "longitude": 170 + (n // 500) * 0.01,
        "status": "available",
        "connectors": [
            {"type": "ccs2", "power_kw": 50 + n % 3, "current": "DC", "quantity": 2},
            {"type": "type2", "power_kw": 22, "current": "AC"},
        ],
    }
    data.update(overrides)
    return StationIn.model_validate(data)


def numbered(stations: list[StationIn]) -> Iterator[tuple[int, StationIn]]:
    return iter(enumerate(stations))


def counts(report: UpsertReport) -> tuple[int, int, int, list[int]]:
    return report.created, report.updated, report.unchanged, [e.index for e in report.rejected]


async def scalar(db: Database, sql: str, **params: Any) -> Any:
    return (await db.fetch(sql, params))[0][0]


async def test_created_unchanged_updated_across_chunks(db: Database) -> None:
    stations = [make_station(n) for n in range(2500)]
    progress: list[int] = []
    first = await upsert_stations(db, numbered(stations), chunk_size=1000, progress=progress.append)
    assert counts(first) == (2500, 0, 0, [])
    assert progress == [1000, 2000, 2500]
    assert await scalar(db, "SELECT count(*) FROM connectors") == 5000

    again = await upsert_stations(db, numbered(stations), chunk_size=1000)
    assert counts(again) == (0, 0, 2500, [])

    stations[10] = make_station(10, name="Renamed", connectors=[{"type": "chademo", "power_kw": 62.5}])
    stations[2400] = make_station(2400, latitude=-41.5)
    changed = await upsert_stations(db, numbered(stations), chunk_size=1000)
    assert counts(changed) == (0, 2, 2498, [])
    assert await db.fetch(
        "SELECT s.name, s.max_power_kw, c.type, c.power_kw FROM stations s JOIN connectors c ON c.station_id = s.id "
        "WHERE s.external_id = 's10'",
        {},
    ) == [("Renamed", 62.5, "chademo", 62.5)]
    assert await scalar(db, "SELECT count(*) FROM connectors") == 4999
    assert await scalar(db, "SELECT count(*) FROM stations") == 2500
    if db.is_sqlite:
        assert await scalar(db, "SELECT count(*) FROM station_rtree") == 2500
        assert await scalar(
            db, "SELECT r.min_lat FROM station_rtree r JOIN stations s ON s.id = r.id WHERE s.external_id = 's2400'"
        ) == pytest.approx(-41.5)


async def test_async_items_and_the_same_key_twice(db: Database) -> None:
    async def items() -> Any:
        yield 0, make_station(1)
        yield 1, make_station(2)
        yield 2, make_station(1, name="Second copy")  # same chunk as index 0: replaces it before writing
        yield 3, make_station(3)
        yield 4, make_station(3, name="Third copy")  # next chunk: index 3 was already written

    report = await upsert_stations(db, items(), chunk_size=3)
    assert counts(report) == (3, 0, 0, [])
    assert [(r.index, r.external_id, r.replaced_by) for r in report.repeated] == [(0, "s1", 2), (3, "s3", 4)]
    names = await db.fetch("SELECT external_id, name FROM stations ORDER BY external_id", {})
    assert names == [("s1", "Second copy"), ("s2", "Station 2"), ("s3", "Third copy")]


async def test_items_without_external_id_are_always_created(db: Database) -> None:
    keyless = [make_station(n, external_id=None, source="voltway") for n in range(3)]
    assert counts(await upsert_stations(db, numbered(keyless))) == (3, 0, 0, [])
    assert counts(await upsert_stations(db, numbered(keyless))) == (3, 0, 0, [])
    assert await scalar(db, "SELECT count(*) FROM connectors") == 12


async def _install_failing_trigger(db: Database, external_id: str) -> None:
    """A trigger that makes the database refuse one station, as a constraint would."""
    async with db.engine.begin() as conn:
        if db.is_sqlite:
            await conn.exec_driver_sql(
                f"CREATE TRIGGER refuse_station BEFORE INSERT ON stations WHEN new.external_id = '{external_id}' "
                "BEGIN SELECT RAISE(ABORT, 'station refused by test trigger'); END"
            )
        else:
            await conn.exec_driver_sql(
                "CREATE FUNCTION refuse_station() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.external_id = '{external_id}' THEN RAISE EXCEPTION 'station refused by test trigger'; "
                "END IF; RETURN NEW; END $$"
            )
            await conn.exec_driver_sql(
                "CREATE TRIGGER refuse_station BEFORE INSERT ON stations FOR EACH ROW EXECUTE FUNCTION refuse_station()"
            )


@pytest.fixture
async def failing_trigger(db: Database) -> Any:
    yield lambda external_id: _install_failing_trigger(db, external_id)
    async with db.engine.begin() as conn:
        await conn.exec_driver_sql("DROP TRIGGER IF EXISTS refuse_station" + ("" if db.is_sqlite else " ON stations"))
        if not db.is_sqlite:
            await conn.exec_driver_sql("DROP FUNCTION IF EXISTS refuse_station()")


async def test_a_failing_row_is_isolated_and_only_it_is_rejected(db: Database, failing_trigger: Any) -> None:
    await failing_trigger("s1234")
    stations = [make_station(n) for n in range(2000)]
    report = await upsert_stations(db, numbered(stations), chunk_size=1000)

    assert counts(report) == (1999, 0, 0, [1234])
    assert report.rejected[0].code == "database_error"
    assert "station refused by test trigger" in report.rejected[0].message
    assert await scalar(db, "SELECT count(*) FROM stations") == 1999
    assert await scalar(db, "SELECT count(*) FROM stations WHERE external_id = 's1234'") == 0
    assert await scalar(db, "SELECT count(*) FROM connectors") == 3998  # no connectors left behind
    if db.is_sqlite:
        assert await scalar(db, "SELECT count(*) FROM station_rtree") == 1999


async def test_a_constraint_violation_rejects_only_that_row(db: Database) -> None:
    # Longer than the column allows: PostgreSQL refuses it (SQLite does not enforce VARCHAR lengths).
    if db.is_sqlite:
        async with db.engine.begin() as conn:
            await conn.exec_driver_sql(
                "CREATE TRIGGER long_name BEFORE INSERT ON stations WHEN length(new.postcode) > 32 "
                "BEGIN SELECT RAISE(ABORT, 'value too long for postcode'); END"
            )
    bad = make_station(5).model_copy(update={"postcode": "9" * 40})  # past the schema, as a buggy caller could
    stations = [make_station(n) for n in range(10)]
    stations[5] = bad
    report = await upsert_stations(db, numbered(stations), chunk_size=4)
    assert counts(report) == (9, 0, 0, [5])
    assert "too long" in report.rejected[0].message


async def test_a_source_failing_midway_keeps_the_chunks_already_handed_over(db: Database) -> None:
    async def items() -> Any:
        for n in range(1500):
            yield n, make_station(n)
        raise ConnectionError("the source went away")

    with pytest.raises(ConnectionError):
        await upsert_stations(db, items(), chunk_size=1000)
    assert await scalar(db, "SELECT count(*) FROM stations") == 1000  # the first chunk, whole
    assert await scalar(db, "SELECT count(*) FROM connectors") == 2000


async def test_the_import_connection_settings_are_restored(db: Database) -> None:
    """The engine changes its connection's settings while it writes (no mmap on SQLite, per-execution plans on
    PostgreSQL); the connection goes back to the pool as it came."""
    setting = "PRAGMA mmap_size" if db.is_sqlite else "SHOW plan_cache_mode"

    async def current() -> set[Any]:
        """The setting on every idle pooled connection, the engine's among them."""
        async with contextlib.AsyncExitStack() as stack:
            idle = max(1, db.engine.pool.checkedin())  # type: ignore[attr-defined]
            conns = [await stack.enter_async_context(db.engine.connect()) for _ in range(idle)]
            return {(await conn.exec_driver_sql(setting)).scalar_one() for conn in conns}

    assert await current() == {268435456 if db.is_sqlite else "auto"}
    await upsert_stations(db, numbered([make_station(n) for n in range(3)]))
    assert await current() == {268435456 if db.is_sqlite else "auto"}


async def test_connectors_are_stored_and_rendered_in_the_items_order(db: Database) -> None:
    """A chunk's connectors go in with one statement on PostgreSQL (arrays), an executemany on SQLite."""
    stations = [make_station(n, connectors=[{"type": t, "power_kw": p} for t, p in (("ccs2", 150.5), ("chademo", 50))])
                for n in range(1500)]  # fmt: skip
    await upsert_stations(db, numbered(stations), chunk_size=1000)
    rows = await db.fetch("SELECT external_id, connectors_json FROM stations WHERE external_id IN ('s0', 's1499')", {})
    for _external_id, text in rows:
        assert [(c["type"], c["power_kw"]) for c in orjson.loads(text)] == [("ccs2", 150.5), ("chademo", 50)]
    assert await scalar(db, "SELECT count(*) FROM connectors") == 3000

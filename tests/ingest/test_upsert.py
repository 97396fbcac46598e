"""The bulk upsert engine on both databases: classification, chunking, repeats, and a failing chunk."""

import asyncio
import contextlib
import math
import sqlite3
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from voltway.core.db import SQLITE_CACHE_KIB, SQLITE_MMAP_BYTES, SQLITE_ONE_PASS_CACHE_KIB, Database
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


async def test_a_repeated_key_rewritten_in_a_later_chunk_counts_once_but_is_written(db: Database) -> None:
    await upsert_stations(db, numbered([make_station(1)]))
    report = await upsert_stations(db, numbered([make_station(1), make_station(1, name="Renamed")]), chunk_size=1)
    assert counts(report) == (0, 0, 1, [])  # the key counts once: its first item found it unchanged
    assert report.wrote  # so importers link and invalidate after it
    assert await scalar(db, "SELECT name FROM stations WHERE external_id = 's1'") == "Renamed"
    assert not (await upsert_stations(db, numbered([make_station(1, name="Renamed")]))).wrote


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


async def test_the_sqlite_write_connection_settings_are_restored(db: Database) -> None:
    """On SQLite the engine writes through the database's write connection, which a first load switches to no
    mmap and a small page cache, and back."""
    if not db.is_sqlite:
        pytest.skip("the write connection is SQLite's")

    def settings(conn: sqlite3.Connection) -> tuple[int, int]:
        return conn.execute("PRAGMA mmap_size").fetchone()[0], conn.execute("PRAGMA cache_size").fetchone()[0]

    defaults = (SQLITE_MMAP_BYTES, -SQLITE_CACHE_KIB)
    assert await db.sqlite_write(settings) == defaults
    seen: list[tuple[int, int]] = []

    async def items() -> Any:
        for n in range(3):
            yield n, make_station(n)
        seen.append(await db.sqlite_write(settings))

    await upsert_stations(db, items(), first_load=True)
    assert seen == [(0, -SQLITE_ONE_PASS_CACHE_KIB)]
    assert await db.sqlite_write(settings) == defaults


async def test_connectors_are_stored_and_rendered_in_the_items_order(db: Database) -> None:
    """A chunk's connectors go in with one statement on PostgreSQL (arrays), an executemany on SQLite."""
    stations = [make_station(n, connectors=[{"type": t, "power_kw": p} for t, p in (("ccs2", 150.5), ("chademo", 50))])
                for n in range(1500)]  # fmt: skip
    await upsert_stations(db, numbered(stations), chunk_size=1000)
    rows = await db.fetch("SELECT external_id, connectors_json FROM stations WHERE external_id IN ('s0', 's1499')", {})
    for _external_id, text in rows:
        assert [(c["type"], c["power_kw"]) for c in orjson.loads(text)] == [("ccs2", 150.5), ("chademo", 50)]
    assert await scalar(db, "SELECT count(*) FROM connectors") == 3000


CONNECTOR_FIELDS = ("id", "type", "type_name", "power_kw", "current", "quantity", "status")


async def _connectors_by_station(db: Database) -> dict[int, list[dict[str, Any]]]:
    """Every station's connectors read from the connectors table, in id order."""
    stations = await db.fetch("SELECT id FROM stations", {})
    rows = await db.fetch(f"SELECT station_id, {', '.join(CONNECTOR_FIELDS)} FROM connectors ORDER BY id", {})
    out: dict[int, list[dict[str, Any]]] = {station_id: [] for (station_id,) in stations}
    for station_id, *values in rows:
        out[station_id].append(dict(zip(CONNECTOR_FIELDS, values, strict=True)))
    return out


# The connectors of the row `stations` as the SQLite triggers render them (migrations 0007 and 0012).
SQLITE_CONNECTORS_JSON = (
    "(SELECT json_group_array(json_object('id', c.id, 'type', c.type, 'type_name', c.type_name, "
    "'power_kw', c.power_kw, 'current', c.current, 'quantity', c.quantity, 'status', c.status)) "
    "FROM (SELECT * FROM connectors WHERE station_id = stations.id ORDER BY id) c)"
)
# The same as the PostgreSQL triggers render them (migrations 0007 and 0014).
POSTGRESQL_CONNECTORS_JSON = (
    "(SELECT coalesce(json_agg(json_build_object('id', c.id, 'type', c.type, 'type_name', c.type_name, "
    "'power_kw', c.power_kw, 'current', c.current, 'quantity', c.quantity, 'status', c.status) ORDER BY c.id), "
    "'[]')::text FROM connectors c WHERE c.station_id = stations.id)"
)


async def test_stored_connectors_json_is_the_connectors_table(db: Database, connector_triggers: dict[str, str]) -> None:
    """The engine writes `connectors_json` itself, with the connector ids it allots (migrations 0012 and 0014):
    it holds exactly the connectors table's rows, in the very text the triggers render."""
    odd = [
        {"type": "ccs2", "type_name": 'Quote " back \\ tab \t nl \n ctl \x01 ümlaut 中 \u2028', "power_kw": 0.1 + 0.2,
         "current": "DC", "quantity": 3, "status": "occupied"},
        {"type": "type2", "power_kw": 1999.9999999999998},
        {"type": "other", "type_name": None, "power_kw": None, "current": None},
        {"type": "chademo", "power_kw": -0.0},
        {"type": "nacs", "power_kw": 22},
    ]
    stations = [make_station(n) for n in range(5)]
    stations[2] = make_station(2, connectors=odd)
    stations[3] = make_station(3, connectors=[])
    keyless = make_station(99, external_id=None, connectors=odd[:2])
    await upsert_stations(db, numbered([*stations, keyless]))
    first_ids = await db.fetch("SELECT id FROM connectors ORDER BY id", {})
    # Updated: other connectors (more, fewer, none), and new stations after them.
    stations[0] = make_station(0, connectors=[*odd, *odd])
    stations[2] = make_station(2, connectors=odd[4:])
    stations[4] = make_station(4, connectors=[])
    report = await upsert_stations(db, numbered([*stations, make_station(5, connectors=odd)]))
    assert counts(report) == (1, 3, 2, [])

    truth = await _connectors_by_station(db)
    if db.is_sqlite:  # SQLite's JSON prints REALs with 15 significant digits (0.30000000000000004 as 0.3)
        for connectors in truth.values():
            for c in connectors:
                c["power_kw"] = None if c["power_kw"] is None else float(f"{c['power_kw']:.15g}")
    rows = await db.fetch("SELECT id, external_id, coalesce(connectors_json, '[]') FROM stations ORDER BY id", {})
    assert len(rows) == 7
    for station_id, _external_id, text in rows:
        assert orjson.loads(text) == truth[station_id]
    by_key = {external_id: orjson.loads(text) for _id, external_id, text in rows}
    assert [len(by_key[f"s{n}"]) for n in range(6)] == [10, 2, 1, 0, 0, 5]
    assert by_key["s2"][0]["power_kw"] == 22
    assert by_key["s5"][0]["type_name"] == odd[0]["type_name"]
    # The second write's 16 connectors (s0: 10, s2: 1, s5: 5) follow the first write's.
    ids = {c["id"] for connectors in truth.values() for c in connectors}
    last = first_ids[-1][0]
    assert {i for i in ids if i > last} == set(range(last + 1, last + 17))
    rendering = SQLITE_CONNECTORS_JSON if db.is_sqlite else POSTGRESQL_CONNECTORS_JSON
    rendered = await db.fetch(f"SELECT connectors_json, {rendering} FROM stations", {})
    assert [stored for stored, _ in rendered] == [by_trigger for _, by_trigger in rendered]
    assert await _connector_triggers(db) == connector_triggers


async def _connector_triggers(db: Database) -> dict[str, str]:
    """The connector triggers' definitions on SQLite, where the engine drops them inside its transactions."""
    if not db.is_sqlite:
        return {}
    rows = await db.fetch("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'connectors'", {})
    return {name: sql for name, sql in rows}


@pytest.fixture
async def connector_triggers(db: Database) -> dict[str, str]:
    """The connector triggers as the migrations left them, before the test writes anything."""
    return await _connector_triggers(db)


@pytest.fixture
async def json_rewrites(db: Database) -> Any:
    """A log of every UPDATE that sets `stations.connectors_json` (the ids), removed after the test."""
    statements = (
        ["CREATE TRIGGER log_json AFTER UPDATE OF connectors_json ON stations "
         "BEGIN INSERT INTO json_rewrites VALUES (new.id); END"]
        if db.is_sqlite else
        ["CREATE FUNCTION log_json() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
         "INSERT INTO json_rewrites VALUES (NEW.id); RETURN NULL; END $$",
         "CREATE TRIGGER log_json AFTER UPDATE OF connectors_json ON stations FOR EACH ROW EXECUTE FUNCTION log_json()"]
    )  # fmt: skip
    async with db.engine.begin() as conn:
        await conn.exec_driver_sql("CREATE TABLE json_rewrites (station_id INTEGER)")
        for statement in statements:
            await conn.exec_driver_sql(statement)
    yield lambda: scalar(db, "SELECT count(*) FROM json_rewrites")
    async with db.engine.begin() as conn:
        await conn.exec_driver_sql("DROP TRIGGER log_json" + ("" if db.is_sqlite else " ON stations"))
        if not db.is_sqlite:
            await conn.exec_driver_sql("DROP FUNCTION log_json()")
        await conn.exec_driver_sql("DROP TABLE json_rewrites")


async def test_the_triggers_stay_idle_inside_the_engine(db: Database, json_rewrites: Any) -> None:
    """New stations go in with their JSON and are not updated again by the connector triggers (migrations 0012
    and 0014: on PostgreSQL that second version of every row was about a third of an import's time)."""
    report = await upsert_stations(db, numbered([make_station(n) for n in range(30)]), chunk_size=10)
    assert counts(report) == (30, 0, 0, [])
    assert await json_rewrites() == 0
    # Another writer's connector insert still has the station's JSON rendered again.
    station_id = await scalar(db, "SELECT id FROM stations WHERE external_id = 's7'")
    async with db.engine.begin() as conn:
        await conn.exec_driver_sql(
            f"INSERT INTO connectors (station_id, type, quantity, status) VALUES ({station_id}, 'schuko', 1, 'available')"
        )
    assert await json_rewrites() == 1
    stored = orjson.loads(await scalar(db, "SELECT connectors_json FROM stations WHERE id = :id", id=station_id))
    assert stored == (await _connectors_by_station(db))[station_id]


async def test_a_station_created_meanwhile_by_another_writer_is_updated_whole(db: Database) -> None:
    """Another transaction inserts the same key after the engine looked its chunk up and commits while the engine
    waits on it (PostgreSQL; SQLite's chunks hold the write lock from the start): the engine's station replaces
    that one, connectors included, instead of adding its connectors to the other writer's."""
    if db.is_sqlite:
        pytest.skip("SQLite's chunks take the write lock before they look up their keys")
    async with db.engine.connect() as other:
        await other.begin()
        station_id = (await other.exec_driver_sql(
            "INSERT INTO stations (source, external_id, name, latitude, longitude, x, y, z, status, rating_count, "
            "created_at, updated_at) VALUES ('test', 's1', 'Theirs', 0, 0, 1, 0, 0, 'unknown', 0, now(), now()) RETURNING id"
        )).scalar_one()  # fmt: skip
        await other.exec_driver_sql(
            f"INSERT INTO connectors (station_id, type, quantity, status) VALUES ({station_id}, 'schuko', 1, 'available')"
        )
        engine = asyncio.create_task(upsert_stations(db, numbered([make_station(0), make_station(1)])))
        await asyncio.sleep(0.5)  # the engine has classified s1 as new and waits on the uncommitted row
        assert not engine.done()
        await other.commit()
        report = await engine
    assert counts(report) == (1, 1, 0, [])
    truth = await _connectors_by_station(db)
    assert [c["type"] for c in truth[station_id]] == [c.type.value for c in make_station(1).connectors]
    stored = await scalar(db, "SELECT connectors_json FROM stations WHERE id = :id", id=station_id)
    assert orjson.loads(stored) == truth[station_id]
    assert await scalar(db, "SELECT name FROM stations WHERE id = :id", id=station_id) == "Station 1"


async def test_other_writers_still_render_connectors_json_after_the_engine(
    db: Database, failing_trigger: Any, connector_triggers: dict[str, str]
) -> None:
    """The triggers step aside only inside the engine's own transaction, also when a chunk fails."""
    await failing_trigger("s2")
    report = await upsert_stations(db, numbered([make_station(n) for n in range(4)]), chunk_size=4)
    assert counts(report) == (3, 0, 0, [2])
    assert await _connector_triggers(db) == connector_triggers
    station_id = await scalar(db, "SELECT id FROM stations WHERE external_id = 's1'")
    async with db.engine.begin() as conn:
        await conn.exec_driver_sql(
            "INSERT INTO connectors (station_id, type, quantity, status) VALUES "
            f"({station_id}, 'schuko', 1, 'available')"
        )
        await conn.exec_driver_sql(f"DELETE FROM connectors WHERE station_id = {station_id} AND type = 'ccs2'")
    stored = orjson.loads(await scalar(db, "SELECT connectors_json FROM stations WHERE id = :id", id=station_id))
    assert [c["type"] for c in stored] == ["type2", "schuko"]
    assert stored == (await _connectors_by_station(db))[station_id]


async def test_a_chunk_failing_among_its_connectors_gives_the_connector_triggers_back(
    db: Database, connector_triggers: dict[str, str]
) -> None:
    """SQLite drops the connector triggers around a chunk's connector writes; a failure there rolls the drop
    back with the chunk, and the retried halves drop and create them again."""
    if not db.is_sqlite:
        pytest.skip("the engine drops triggers on SQLite only")
    async with db.engine.begin() as conn:
        await conn.exec_driver_sql(
            "CREATE TRIGGER refuse_connector BEFORE INSERT ON connectors WHEN new.type = 'chademo' "
            "BEGIN SELECT RAISE(ABORT, 'connector refused by test trigger'); END"
        )
    try:
        stations = [make_station(0), make_station(1, connectors=[{"type": "chademo", "power_kw": 50}]), make_station(2)]
        report = await upsert_stations(db, numbered(stations), chunk_size=3)
    finally:
        async with db.engine.begin() as conn:
            await conn.exec_driver_sql("DROP TRIGGER refuse_connector")
    assert counts(report) == (2, 0, 0, [1])
    assert "connector refused" in report.rejected[0].message
    assert await _connector_triggers(db) == connector_triggers
    rendering = await db.fetch(f"SELECT connectors_json, {SQLITE_CONNECTORS_JSON} FROM stations", {})
    assert len(rendering) == 2 and all(stored == by_trigger for stored, by_trigger in rendering)


async def test_the_rtree_follows_moved_stations(db: Database) -> None:
    """An upsert names the coordinates of every updated station; the R*Tree entry moves only with them."""
    if not db.is_sqlite:
        pytest.skip("the R*Tree is SQLite's")
    stations = [make_station(n) for n in range(3)]
    await upsert_stations(db, numbered(stations))
    stations[0] = make_station(0, latitude=-45.25, longitude=168.5)  # moved
    stations[1] = make_station(1, name="Renamed")  # not moved
    assert counts(await upsert_stations(db, numbered(stations))) == (0, 2, 1, [])
    async with db.engine.begin() as conn:  # another writer moving a station
        await conn.exec_driver_sql("UPDATE stations SET latitude = -46.0 WHERE external_id = 's2'")
    boxes = await db.fetch(
        "SELECT s.external_id, s.latitude, s.longitude, r.min_lat, r.max_lat, r.min_lon, r.max_lon "
        "FROM stations s JOIN station_rtree r ON r.id = s.id ORDER BY s.external_id", {}
    )
    assert [row[:3] for row in boxes] == [("s0", -45.25, 168.5), ("s1", -40.0 + 0.01, 170.0), ("s2", -46.0, 170.0)]
    for _key, lat, lon, min_lat, max_lat, min_lon, max_lon in boxes:  # 32-bit boxes around the position
        assert min_lat <= lat <= max_lat and max_lat - min_lat < 1e-5
        assert min_lon <= lon <= max_lon and max_lon - min_lon < 1e-4


async def test_an_update_writes_every_changed_column(db: Database) -> None:
    """SQLite sets only the columns that changed (one UPDATE per set of them); the stored rows are the same."""
    price = {"currency": "NZD", "per_kwh": 0.45, "per_minute": None, "per_session": None, "free": False}
    stations = [make_station(n, address="1 Quay St", usage_cost="0.45 NZD/kWh", price=price) for n in range(5)]
    await upsert_stations(db, numbered(stations))
    before = dict(await db.fetch("SELECT external_id, updated_at FROM stations", {}))
    stations[0] = make_station(0, name="Renamed", address=None, usage_cost="0.45 NZD/kWh", price=price)
    stations[1] = make_station(1, latitude=-44.5, longitude=171.25, country="AU", address="1 Quay St",
                               usage_cost="0.45 NZD/kWh", price=price)  # fmt: skip
    stations[2] = make_station(2, status="out_of_service", address="1 Quay St", usage_cost="free", price=None)
    stations[3] = make_station(3, address="1 Quay St", usage_cost="0.45 NZD/kWh", price=price,
                               connectors=[{"type": "ccs2", "power_kw": 350}])  # fmt: skip
    assert counts(await upsert_stations(db, numbered(stations))) == (0, 4, 1, [])
    assert counts(await upsert_stations(db, numbered(stations))) == (0, 0, 5, [])

    rows = await db.fetch(
        "SELECT external_id, name, address, country, latitude, longitude, x, y, z, status, usage_cost, price, "
        "max_power_kw, updated_at FROM stations ORDER BY external_id", {}
    )
    stored = {row[0]: row[1:] for row in rows}
    lat, lon = math.radians(-44.5), math.radians(171.25)
    x, y, z = math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon), math.sin(lat)
    assert stored["s0"][:3] == ("Renamed", None, "NZ")
    assert stored["s1"][2:8] == ("AU", -44.5, 171.25, pytest.approx(x), pytest.approx(y), pytest.approx(z))
    assert (stored["s2"][8], stored["s2"][9], stored["s2"][10]) == ("out_of_service", "free", None)
    assert stored["s3"][11] == 350.0
    assert {key: orjson.loads(row[10]) if isinstance(row[10], str) else row[10] for key, row in stored.items()
            if key != "s2"} == dict.fromkeys(("s0", "s1", "s3", "s4"), price)  # fmt: skip
    changed = {key for key, row in stored.items() if str(row[12]) != str(before[key])}
    assert changed == {"s0", "s1", "s2", "s3"}
    if db.is_sqlite:
        box = await db.fetch("SELECT min_lat, max_lat FROM station_rtree r JOIN stations s ON s.id = r.id "
                             "WHERE s.external_id = 's1'", {})  # fmt: skip
        assert box[0][0] <= -44.5 <= box[0][1]


async def test_an_update_keeps_connectors_that_did_not_change(db: Database) -> None:
    """Same connectors in the same order: the rows stay (their ids, and whatever refers to them); otherwise all
    of the station's connectors are replaced."""
    stations = [make_station(n) for n in range(4)]
    await upsert_stations(db, numbered(stations))
    before = await _connectors_by_station(db)
    ids = dict(await db.fetch("SELECT external_id, id FROM stations", {}))
    stations[0] = make_station(0, name="Renamed")  # connectors as they were
    stations[1] = make_station(1, connectors=[{"type": "ccs2", "power_kw": 51.0, "current": "DC", "quantity": 2},
                                              {"type": "type2", "power_kw": 22.0, "current": "AC"}])  # fmt: skip
    stations[2] = make_station(2, connectors=[{"type": "type2", "power_kw": 22, "current": "AC"}])  # one fewer
    assert counts(await upsert_stations(db, numbered(stations))) == (0, 2, 2, [])  # s1: same values, same row
    after = await _connectors_by_station(db)
    assert after[ids["s0"]] == before[ids["s0"]]  # kept, ids and all
    assert after[ids["s1"]] == before[ids["s1"]]
    assert [c["type"] for c in after[ids["s2"]]] == ["type2"]
    assert after[ids["s2"]][0]["id"] > max(c["id"] for cs in before.values() for c in cs)  # replaced
    assert await scalar(db, "SELECT name FROM stations WHERE external_id = 's0'") == "Renamed"
    for station_id, text in await db.fetch("SELECT id, coalesce(connectors_json, '[]') FROM stations", {}):
        assert orjson.loads(text) == after[station_id]

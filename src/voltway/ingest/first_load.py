"""A first import into an empty SQLite database builds the stations' indexes and R*Tree after its rows.

See `core/deferred_indexes.py` for the mechanism and why (an import of 300,000 stations spent most of its
SQLite time maintaining indexes row by row). PostgreSQL keeps its indexes: nothing happens there.

At the end of a load, the indexes that duplicate linking reads (`LINKING_INDEXES`) come back first. Linking then
runs beside the rest of the rebuild, which is SQLite's own work on a thread of its own: for 300,000 stations,
6.6 s of rebuild followed by 5.1 s of linking became ~6 s for both. Each remaining index, and each range of
the R*Tree's fill (`RTREE_FILL_IDS`), is a transaction of its own, and linking's writes take turns with them
(`write_turn`): a SQLite writer waiting for the lock polls, and would find it taken again by the next step.
With the R*Tree filled in one transaction, linking waited 3.3 s for it.
"""

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from voltway.core.db import SQLITE_NO_MMAP, SQLITE_SMALL_CACHE, Database, null_pool_engine, to_the_end
from voltway.core.deferred_indexes import TABLE as DEFERRED_TABLE
from voltway.core.deferred_indexes import defer, deferred, restore
from voltway.stations.map_cells import MAP_MARK_TRIGGER, MARK_EVERY_CELL

T = TypeVar("T")

STATION_TABLES = ("stations", "connectors")
# Read while loading (the engine looks up a station's connectors when a file repeats a key), and cheap to keep:
# connectors arrive in station order, so their entries are appended.
KEPT_INDEXES = ("ix_connectors_station_id",)
# The R*Tree's entries for the stations after its highest id: the stations' ids only grow (the largest plus one),
# and the load fills the R*Tree in ascending ranges, each committed, so those are the ones it lacks. (Checking
# every station, `NOT EXISTS` in the R*Tree, read the whole table: 0.4-0.6 s at 300,000 stations.)
RTREE_CATCH_UP = {
    "stations_rtree_insert": "INSERT INTO station_rtree SELECT id, latitude, latitude, longitude, longitude "
    "FROM stations WHERE id > (SELECT coalesce(max(id), 0) FROM station_rtree)",
}
# The triggers a first load drops: the R*Tree's, and the one that marks map cells (every cell is marked once at
# the end instead, and the import's refresh builds them all in one pass: `ingest/bulk.py`).
DEFERRED_TRIGGERS = {**RTREE_CATCH_UP, MAP_MARK_TRIGGER: MARK_EVERY_CELL}
# The R*Tree is filled by ranges of this many ids before its trigger comes back (a transaction each, ~0.4 s).
RTREE_FILL_IDS = 40_000
# What duplicate linking reads by (`duplicates.py`): position, time written, canonical station.
LINKING_INDEXES = ("ix_stations_lat_lon", "ix_stations_updated_at", "ix_stations_duplicate_of_id")

# By Database (id), while a load's rebuild runs beside linking: whose turn it is to write.
_turns: dict[int, asyncio.Lock] = {}


@contextlib.asynccontextmanager
async def write_turn(db: Database) -> AsyncIterator[None]:
    """Around a write transaction that may run beside a first load's rebuild (duplicate linking's)."""
    lock = _turns.get(id(db))
    if lock is None:
        yield
        return
    async with lock:
        yield


@contextlib.asynccontextmanager
async def _builder(db: Database) -> AsyncIterator[AsyncConnection]:
    """A connection of its own: building an index sorts every row, and the pool's connections would sort in
    memory (temp_store=MEMORY) and read through memory-mapped pages, hundreds of MB of resident memory."""
    engine = null_pool_engine(db.url)
    try:
        async with engine.connect() as conn:
            for pragma in ("PRAGMA temp_store=FILE", SQLITE_NO_MMAP[0], SQLITE_SMALL_CACHE[0]):
                await conn.exec_driver_sql(pragma)
            await conn.commit()
            yield conn
    finally:
        await engine.dispose()


async def _transaction(db: Database, conn: AsyncConnection, action: Callable[[Connection], list[str]]) -> list[str]:
    async def run() -> list[str]:
        async with write_turn(db), conn.begin():
            await conn.exec_driver_sql("BEGIN IMMEDIATE")
            return await conn.run_sync(action)

    return await to_the_end(run())


async def _write(db: Database, action: Callable[[Connection], list[str]]) -> list[str]:
    async with _builder(db) as conn:
        return await _transaction(db, conn, action)


def _fill_rtree(conn: Connection, ids: tuple[int, int]) -> list[str]:
    """One range of the R*Tree's fill, in 1° strips of latitude by longitude: an entry then lands beside the
    previous one's, in pages the cache holds, instead of anywhere in the tree (300,000 stations in the order of
    their ids: 3.3-3.5 s; in strips: 2.5-2.6 s, and the same time to query the tree)."""
    conn.exec_driver_sql(
        "INSERT INTO station_rtree SELECT id, latitude, latitude, longitude, longitude FROM stations "
        "WHERE id > ? AND id <= ? ORDER BY CAST(latitude AS INTEGER), longitude",
        ids,
    )
    return []


def _defer_if_empty(conn: Connection) -> list[str]:
    restore(conn)  # what a killed first load left deferred
    if conn.exec_driver_sql("SELECT 1 FROM stations LIMIT 1").first() is not None:
        return []
    return defer(conn, tables=STATION_TABLES, keep=KEPT_INDEXES, triggers=DEFERRED_TRIGGERS)


async def linking_indexes_deferred(db: Database) -> bool:
    """Whether a first load has the indexes duplicate linking reads deferred (SQLite): linking waits for it."""
    if not db.is_sqlite:
        return False
    marks = ", ".join(f"'{name}'" for name in LINKING_INDEXES)
    return bool(await db.fetch(f"SELECT 1 FROM {DEFERRED_TABLE} WHERE name IN ({marks}) LIMIT 1", {}))


class FirstLoad:
    """A first load whose indexes are deferred until `finish` (or until the load ends, if it fails)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.finished = False

    async def finish(self, beside: Callable[[], Awaitable[T]]) -> T:
        """Restore the indexes; run `beside` (duplicate linking) once LINKING_INDEXES are back, alongside the
        rest of the rebuild. Its result."""
        db = self.db
        async with _builder(db) as conn:
            await _transaction(db, conn, functools.partial(restore, names=LINKING_INDEXES))
            _turns[id(db)] = asyncio.Lock()
            rebuild = asyncio.create_task(self._rebuild_rest(conn))
            try:
                result = await beside()
            finally:
                try:
                    await rebuild  # also when `beside` failed: the indexes are needed anyway
                finally:
                    del _turns[id(db)]
        self.finished = True
        return result

    async def _rebuild_rest(self, conn: AsyncConnection) -> None:
        names = await conn.run_sync(deferred)
        top = (await conn.exec_driver_sql("SELECT max(id) FROM stations")).scalar_one() or 0
        await conn.rollback()  # end the reads' transaction
        for start in range(0, top if RTREE_CATCH_UP.keys() & set(names) else 0, RTREE_FILL_IDS):
            await _transaction(self.db, conn, functools.partial(_fill_rtree, ids=(start, start + RTREE_FILL_IDS)))
        for name in names:  # the R*Tree's trigger catches up on what was written since, if anything
            await _transaction(self.db, conn, functools.partial(restore, names=(name,)))


@contextlib.asynccontextmanager
async def indexes_after_first_load(db: Database) -> AsyncIterator[FirstLoad | None]:
    """Around an import: on SQLite with no station yet, defer the stations' indexes. Yields the FirstLoad to
    `finish` once the rows are written (None when nothing was deferred); its indexes are restored at the end in
    any case, also when the import fails."""
    load = FirstLoad(db) if db.is_sqlite and await _write(db, _defer_if_empty) else None
    try:
        yield load
    finally:
        if load is not None and not load.finished:
            await _write(db, restore)

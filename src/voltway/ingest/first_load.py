"""A first import into an empty SQLite database builds the stations' indexes and R*Tree after its rows.

See `core/deferred_indexes.py` for the mechanism and why (an import of 300,000 stations spent most of its
SQLite time maintaining indexes row by row). PostgreSQL keeps its indexes: nothing happens there.
"""

import contextlib
from collections.abc import AsyncIterator, Callable

from sqlalchemy.engine import Connection

from voltway.core.db import Database, null_pool_engine
from voltway.core.deferred_indexes import TABLE as DEFERRED_TABLE
from voltway.core.deferred_indexes import defer, restore

STATION_TABLES = ("stations", "connectors")
# Read while loading (the engine looks up a station's connectors when a file repeats a key), and cheap to keep:
# connectors arrive in station order, so their entries are appended.
KEPT_INDEXES = ("ix_connectors_station_id",)
RTREE_CATCH_UP = {
    "stations_rtree_insert": "INSERT INTO station_rtree SELECT id, latitude, latitude, longitude, longitude "
    "FROM stations s WHERE NOT EXISTS (SELECT 1 FROM station_rtree r WHERE r.id = s.id)",
}


async def _write(db: Database, action: Callable[[Connection], list[str]]) -> list[str]:
    """`action` in one write transaction, on a connection of its own: building an index sorts every row, and
    the pool's connections would sort in memory (temp_store=MEMORY) and read through memory-mapped pages,
    hundreds of MB of resident memory."""
    engine = null_pool_engine(db.url)
    try:
        async with engine.connect() as conn:
            for pragma in ("temp_store=FILE", "mmap_size=0", "cache_size=-8192"):
                await conn.exec_driver_sql(f"PRAGMA {pragma}")
            await conn.commit()
            async with conn.begin():
                await conn.exec_driver_sql("BEGIN IMMEDIATE")
                return await conn.run_sync(action)
    finally:
        await engine.dispose()


def _defer_if_empty(conn: Connection) -> list[str]:
    restore(conn)  # what a killed first load left deferred
    if conn.exec_driver_sql("SELECT 1 FROM stations LIMIT 1").first() is not None:
        return []
    return defer(conn, tables=STATION_TABLES, keep=KEPT_INDEXES, triggers=RTREE_CATCH_UP)


async def first_load_running(db: Database) -> bool:
    """Whether a first load has the stations' indexes deferred (SQLite): duplicate linking waits for it."""
    if not db.is_sqlite:
        return False
    return bool(await db.fetch(f"SELECT 1 FROM {DEFERRED_TABLE} LIMIT 1", {}))


@contextlib.asynccontextmanager
async def indexes_after_first_load(db: Database) -> AsyncIterator[bool]:
    """Around an import: on SQLite with no station yet, defer the stations' indexes and build them at the end
    (also when the import fails). Yields whether they were deferred."""
    deferred = await _write(db, _defer_if_empty) if db.is_sqlite else []
    try:
        yield bool(deferred)
    finally:
        if deferred:
            await _write(db, restore)

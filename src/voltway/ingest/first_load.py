"""A first import into an empty SQLite database builds the stations' indexes and R*Tree after its rows.

See `core/deferred_indexes.py` for the mechanism and why (an import of 300,000 stations spends most of its
SQLite time maintaining indexes row by row). PostgreSQL keeps its indexes: nothing happens there.
"""

import contextlib
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncConnection

from voltway.core.db import Database, null_pool_engine
from voltway.core.deferred_indexes import defer, restore

STATION_TABLES = ("stations", "connectors")
# Read while loading (the engine looks up a station's connectors when a file repeats a key), and cheap to keep:
# connectors arrive in station order, so their entries are appended.
KEPT_INDEXES = ("ix_connectors_station_id",)
RTREE_CATCH_UP = {
    "stations_rtree_insert": "INSERT INTO station_rtree SELECT id, latitude, latitude, longitude, longitude "
    "FROM stations s WHERE NOT EXISTS (SELECT 1 FROM station_rtree r WHERE r.id = s.id)",
}


async def _in_write_transaction(db: Database, action: str) -> list[str]:
    # A connection of its own: building an index sorts every row, and the pool's connections would sort in
    # memory (temp_store=MEMORY) and read through memory-mapped pages, hundreds of MB of resident memory.
    engine = null_pool_engine(db.url)
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql("PRAGMA temp_store=FILE")
            await conn.exec_driver_sql("PRAGMA mmap_size=0")
            await conn.exec_driver_sql("PRAGMA cache_size=-8192")
            await conn.commit()
            return await _deferral(conn, action)
    finally:
        await engine.dispose()


async def _deferral(conn: AsyncConnection, action: str) -> list[str]:
    async with conn.begin():
        await conn.exec_driver_sql("BEGIN IMMEDIATE")
        if action == "restore":
            return await conn.run_sync(restore)
        await conn.run_sync(restore)  # what a killed first load left deferred
        if (await conn.exec_driver_sql("SELECT 1 FROM stations LIMIT 1")).first() is not None:
            return []
        return await conn.run_sync(
            lambda sync: defer(sync, tables=STATION_TABLES, keep=KEPT_INDEXES, triggers=RTREE_CATCH_UP)
        )


@contextlib.asynccontextmanager
async def indexes_after_first_load(db: Database) -> AsyncIterator[bool]:
    """Around an import: on SQLite with no station yet, defer the stations' indexes and build them at the end
    (also when the import fails). Yields whether they were deferred."""
    deferred = await _in_write_transaction(db, "defer") if db.is_sqlite else []
    try:
        yield bool(deferred)
    finally:
        if deferred:
            await _in_write_transaction(db, "restore")

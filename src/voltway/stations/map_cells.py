"""Map cells: every searchable station counted into the cells of the clusters' grid at levels 0 to LEAF_LEVEL.

Level k is the grid of cells of 360 / 2**k degrees; a cell (gy, gx) splits into the four cells (2gy + i, 2gx + j)
at level k + 1, so a cell's rows are the sums of its four children's, and a map view at low zoom reads a few
hundred rows of `map_cells` (migration 0016) instead of every station of a continent. A cell has a row for each
status of its stations: a view sums them, or reads one status alone (the map's "available now").

Writes mark the level-LEAF_LEVEL cells a station leaves or enters in `map_dirty` (triggers, whatever wrote).
`refresh` folds them in: the marked cells again from their stations, then each level above from its children,
in one transaction; with many cells marked (a first import) it rebuilds every level, one pass over the
stations. A view is read from the cells only once nothing is marked (`view_cells`): it refreshes first, waiting
`REFRESH_WAIT` at most, so it is exact; a refresh that takes longer goes on in the background and the view is
grouped from the stations themselves, as every view with other filters is. (During a first load on SQLite the
cells, like the search's R*Tree, do not show the new stations until it ends: `ingest/first_load.py`.)
"""

import asyncio
import logging
import sqlite3
import time
import weakref
from collections.abc import Sequence
from typing import Any

import asyncpg

from voltway.core.db import SQLITE_NO_MMAP, SQLITE_SMALL_CACHE, Database
from voltway.core.metrics import MAP_CELLS_REFRESH

log = logging.getLogger(__name__)

LEAF_LEVEL = 12  # cells of 0.088 degrees (~10 km); the triggers of migration 0016 mark cells of this level
# Beyond about this many marked cells, one pass over every station beats a lookup per cell (at 300,000 stations
# on SQLite: ~0.85 ms a marked cell against ~1.3 s for the pass; bench/clusters.py --refresh).
REBUILD_AT = 1_500
# How long a view waits for a refresh before it groups the stations itself.
REFRESH_WAIT = 0.25
PG_LOCK_TIMEOUT_MS = 500

# What a cell holds of its stations of one status (its key: level, gy, gx, status).
AGGREGATES = (
    "stations", "min_id", "max_power_kw", "sum_lat", "sum_lon", "min_lat", "min_lon", "max_lat", "max_lon",
)  # fmt: skip
COLUMNS = ", ".join(("level", "gy", "gx", "status", *AGGREGATES))
SEARCHABLE = "s.duplicate_of_id IS NULL AND s.status <> 'removed'"
# Stations' aggregates and children's, in AGGREGATES order.
FROM_STATIONS = (
    "count(*), min(s.id), max(s.max_power_kw), sum(s.latitude), sum(s.longitude), min(s.latitude), "
    "min(s.longitude), max(s.latitude), max(s.longitude)"
)
FROM_CHILDREN = (
    "sum(c.stations), min(c.min_id), max(c.max_power_kw), sum(c.sum_lat), sum(c.sum_lon), min(c.min_lat), "
    "min(c.min_lon), max(c.max_lat), max(c.max_lon)"
)
# A cell's statuses together, in the row shape of the clusters' grouping (after gy, gx): stations, available,
# lowest id, lowest status (a cell of one station: its own), highest power, sums and bounds of the positions.
OF_A_CELL = (
    "sum(stations), sum(CASE WHEN status = 'available' THEN stations ELSE 0 END), min(min_id), min(status), "
    "max(max_power_kw), sum(sum_lat), sum(sum_lon), min(min_lat), min(min_lon), max(max_lat), max(max_lon)"
)


def cell_size(level: int) -> float:
    return 360.0 / 2.0**level


def _station_cell(level: int) -> tuple[str, str]:
    """The (gy, gx) of station `s` at `level`, as SQL: the clusters query's own expressions."""
    cell = repr(cell_size(level))
    return f"CAST(floor(s.latitude / {cell}) AS INTEGER)", f"CAST(floor(s.longitude / {cell}) AS INTEGER)"


GY, GX = _station_cell(LEAF_LEVEL)
# The trigger that marks the cells of new stations (migration 0016), and a statement that marks every station's.
MAP_MARK_TRIGGER = "stations_map_insert"
# (`WHERE true`: SQLite would read ON CONFLICT as a join's ON.)
MARK_EVERY_CELL = (
    f"INSERT INTO map_dirty (gy, gx) SELECT DISTINCT {GY}, {GX} FROM stations s WHERE true ON CONFLICT DO NOTHING"
)


def _marked(shift: int) -> str:
    """The marked cells as cells `shift` levels up (their ancestors), as a subquery of (gy, gx)."""
    return f"SELECT DISTINCT gy >> {shift} AS gy, gx >> {shift} AS gx FROM map_dirty"


def _marked_leaves(dialect: str) -> str:
    """The SELECT of the marked leaf cells' new lines: the stations of each marked cell through an index's range on
    latitude, one cell after the other (with a margin: the cell test itself is floor(), as in the clusters query).
    Left to themselves, the planners would rather read every station and look its cell up (SQLite without
    statistics, PostgreSQL from a marks table it guesses far larger): SQLite's CROSS JOIN keeps the marks
    outside, PostgreSQL's LATERAL runs the stations' subquery once per mark."""
    leaf, margin = cell_size(LEAF_LEVEL), 1e-9
    in_cell = (
        f"s.latitude BETWEEN d.gy * {leaf!r} - {margin} AND (d.gy + 1) * {leaf!r} + {margin} "
        f"AND s.longitude BETWEEN d.gx * {leaf!r} - {margin} AND (d.gx + 1) * {leaf!r} + {margin} "
        f"AND {SEARCHABLE} AND {GY} = d.gy AND {GX} = d.gx"
    )
    if dialect == "sqlite":
        return (
            f"SELECT {LEAF_LEVEL}, d.gy, d.gx, s.status, {FROM_STATIONS} FROM map_dirty d CROSS JOIN stations s "
            f"ON {in_cell} GROUP BY d.gy, d.gx, s.status"
        )
    return (
        f"SELECT {LEAF_LEVEL}, d.gy, d.gx, a.* FROM map_dirty d CROSS JOIN LATERAL "
        f"(SELECT s.status, {FROM_STATIONS} FROM stations s WHERE {in_cell} GROUP BY s.status) a"
    )


def refresh_statements(dialect: str, *, rebuild: bool) -> list[str]:
    """The SQL of a refresh: every level from the leaves up, only the marked cells' lines unless `rebuild`."""
    insert = f"INSERT INTO map_cells ({COLUMNS})"
    if rebuild:
        # The whole range of latitudes, always true, has the planner walk ix_stations_map rather than
        # ix_stations_duplicate_of_id: 0.52 against 0.73 s for this statement at 300,000 stations.
        statements = [
            "DELETE FROM map_cells",
            f"{insert} SELECT {LEAF_LEVEL}, {GY}, {GX}, s.status, {FROM_STATIONS} FROM stations s "
            f"WHERE s.latitude BETWEEN -90.0 AND 90.0 AND {SEARCHABLE} GROUP BY {GY}, {GX}, s.status",
        ]
        for level in range(LEAF_LEVEL - 1, -1, -1):
            statements.append(
                f"{insert} SELECT {level}, c.gy >> 1, c.gx >> 1, c.status, {FROM_CHILDREN} FROM map_cells c "
                f"WHERE c.level = {level + 1} GROUP BY c.gy >> 1, c.gx >> 1, c.status"
            )
    else:
        statements = [
            f"DELETE FROM map_cells WHERE level = {LEAF_LEVEL} AND (gy, gx) IN ({_marked(0)})",
            f"{insert} {_marked_leaves(dialect)}",
        ]
        for level in range(LEAF_LEVEL - 1, -1, -1):
            shift = LEAF_LEVEL - level
            statements += [
                f"DELETE FROM map_cells WHERE level = {level} AND (gy, gx) IN ({_marked(shift)})",
                f"{insert} SELECT {level}, p.gy, p.gx, c.status, {FROM_CHILDREN} FROM ({_marked(shift)}) p "
                f"JOIN map_cells c ON c.level = {level + 1} AND c.gy BETWEEN 2 * p.gy AND 2 * p.gy + 1 "
                f"AND c.gx BETWEEN 2 * p.gx AND 2 * p.gx + 1 GROUP BY p.gy, p.gx, c.status",
            ]
    return [*statements, "DELETE FROM map_dirty"]


# The marks, counted up to one more than REBUILD_AT.
COUNT_MARKS = f"SELECT count(*) FROM (SELECT 1 FROM map_dirty LIMIT {REBUILD_AT + 1}) m"


def _refresh_sqlite(conn: sqlite3.Connection) -> int:
    # Without the memory map, with a small page cache: a rebuild passes over every station once, and through the
    # map the kernel counted ~100 MB of the database's pages into the process's resident memory.
    for one_pass, _default in (SQLITE_NO_MMAP, SQLITE_SMALL_CACHE):
        conn.execute(one_pass)
    try:
        conn.execute("BEGIN IMMEDIATE")  # holds the write lock throughout: no mark is added meanwhile
        try:
            marked = conn.execute(COUNT_MARKS).fetchone()[0]
            if marked:
                for statement in refresh_statements("sqlite", rebuild=marked > REBUILD_AT):
                    conn.execute(statement)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        for _one_pass, default in (SQLITE_NO_MMAP, SQLITE_SMALL_CACHE):
            conn.execute(default)
    return marked


async def _refresh_postgresql(db: Database) -> int:
    """On asyncpg's connection itself: its simple query protocol sends the refresh's statements in one round trip
    (one at a time through the engine, a refresh of one mark took ~22 ms, most of it waiting)."""
    async with db.engine.connect() as conn:
        raw: asyncpg.Connection = (await conn.get_raw_connection()).driver_connection  # type: ignore[assignment]
        async with raw.transaction():
            # The lock waits for the writers that marked cells to commit, and holds new marks until this commits:
            # every mark it deletes is of a write its statements see. It gives up before PostgreSQL's deadlock
            # check (1 s) would pick a victim (a writer that marked cells, then waits for another writer queued
            # behind this lock). The marks' statistics as they are now (a few ms): the upper levels' plans follow
            # their number. No JIT: compiling took longer (~15 ms a statement) than running them.
            await raw.execute(
                f"SET LOCAL lock_timeout = '{PG_LOCK_TIMEOUT_MS}ms'; LOCK TABLE map_dirty IN SHARE ROW EXCLUSIVE MODE; "
                "ANALYZE map_dirty; SET LOCAL jit = off"
            )
            marked: int = await raw.fetchval(COUNT_MARKS)
            if marked:
                await raw.execute("; ".join(refresh_statements(db.dialect, rebuild=marked > REBUILD_AT)))
    return marked


async def refresh(db: Database) -> int:
    """Fold the marked cells into `map_cells` (see the module docstring); returns how many were marked, counted
    up to REBUILD_AT + 1."""
    started = time.perf_counter()
    marked = await (db.sqlite_write(_refresh_sqlite) if db.is_sqlite else _refresh_postgresql(db))
    if marked:
        kind = "rebuild" if marked > REBUILD_AT else "marked"
        MAP_CELLS_REFRESH.labels(kind=kind).observe(time.perf_counter() - started)
    return marked


async def try_refresh(db: Database) -> bool:
    """`refresh`, logged rather than raised when it fails (a lock it waited for too long): the views that wait for
    it group the stations themselves, and the next one tries again. Whether it succeeded."""
    try:
        await refresh(db)
    except Exception:  # noqa: BLE001
        log.warning("map cells refresh failed", exc_info=True)
        return False
    return True


# By database: the refresh under way, which every view that needs it waits for.
_refreshes: "weakref.WeakKeyDictionary[Database, asyncio.Task[bool]]" = weakref.WeakKeyDictionary()


async def _fresh(db: Database) -> bool:
    """Whether nothing is marked, once a refresh (this one's or one under way) had REFRESH_WAIT to end."""
    if not await db.fetch("SELECT 1 FROM map_dirty LIMIT 1", {}):
        return True
    task = _refreshes.get(db)
    if task is None or task.done():
        task = _refreshes[db] = db.keep_until_disposed(try_refresh(db))
    try:
        return await asyncio.wait_for(asyncio.shield(task), REFRESH_WAIT)
    except TimeoutError:
        return False


async def view_cells(
    db: Database, level: int, rows: tuple[int, int], cols: Sequence[tuple[int, int]], *, status: str | None = None
) -> Sequence[Sequence[Any]] | None:
    """The cells of `level` in rows `rows` and column ranges `cols`, of the stations of `status` or of every
    searchable station, in (gy, gx) order, each (gy, gx) and OF_A_CELL; None when they could not be brought up to
    date in time (see the module docstring)."""
    if not await _fresh(db):
        return None
    params: dict[str, Any] = {"level": level, "r0": rows[0], "r1": rows[1]}
    where = ["level = :level", "gy BETWEEN :r0 AND :r1"]
    ranges = []
    for i, (first, last) in enumerate(cols):
        params[f"c{i}"], params[f"d{i}"] = first, last
        ranges.append(f"gx BETWEEN :c{i} AND :d{i}")
    where.append(f"({' OR '.join(ranges)})")
    if status is not None:
        params["status"] = status
        where.append("status = :status")
    return await db.fetch(
        f"SELECT gy, gx, {OF_A_CELL} FROM map_cells WHERE {' AND '.join(where)} GROUP BY gy, gx ORDER BY gy, gx",
        params,
    )

"""The bulk upsert engine: the one write path of imports and of the bulk API.

Items are `(index, StationIn)` or `(index, StationRow)` pairs; `index` is the caller's position (record number
in a file, item number in a request) and is what every report entry names. A `StationRow` is a station already
shaped into its stored values with their content hash: the OCM reader makes rows directly, other callers'
StationIn items are shaped on arrival. Items are written in chunks (1,000 by default), one transaction per
chunk, with set-based statements:

1. one SELECT of the chunk's existing `(source, external_id) -> (id, content_hash)`;
2. items are classified `created` (no such key), `unchanged` (same content hash: blake2b over the orjson
   dump of the row's values, see StationRow) or `updated`;
3. PostgreSQL: one `INSERT ... ON CONFLICT (source, external_id) DO UPDATE` for created and updated items,
   one statement over arrays, returning each station's id and whether it was inserted (a key another writer
   created after step 1 makes an update: see `_write_postgresql`). SQLite: an executemany of value
   tuples inserting the created items, with the ids the engine allots, and one UPDATE executemany per set of
   changed columns for the updated ones (the R*Tree triggers fire for inserted rows and moved stations);
4. one DELETE of the old connectors of the updated stations whose connectors changed (the others keep
   theirs, see `_Writer._stored_connectors`) and one INSERT of the new connectors (the same way).

The engine writes each station's `connectors_json` with its row; inside its transaction the connector triggers
are dropped (SQLite) or idle (PostgreSQL): see `_write_sqlite`, `_write_postgresql`, migrations 0014 and 0015.

On SQLite a chunk runs whole, statements and the Python between them, on the database's write thread and
connection (`Database.sqlite_write`): one hop from the event loop a chunk instead of about 25 through
aiosqlite, so that the next chunk is read while this one is written rather than in turns (a bulk request of
1,000 new stations: 68-72 -> 60-61 ms of server time).

A database error inside a chunk rolls the chunk back and the chunk is retried in halves (bisection) until
the failing items are isolated: only they are rejected, every other item is written. A chunk is committed or
not at all, so a process killed mid-import leaves whole chunks behind and running the import again completes
it (the committed chunks come back `unchanged`).

The same key twice in one run: the last item wins, and each earlier one is listed in `repeated`; the counts
count each key once. Items without `external_id` cannot be matched and are always created.
"""

import asyncio
import contextlib
import functools
import math
import sqlite3
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from voltway.core.db import (
    SQLITE_NO_MMAP,
    SQLITE_SMALL_CACHE,
    Database,
    stored_time,
    to_the_end,
    utcnow,
)
from voltway.core.gc_tuning import fewer_collections
from voltway.core.metrics import observe_query
from voltway.ingest.duplicates import DuplicateLink
from voltway.ingest.rows import ItemError, StationRow, price_text
from voltway.stations.schemas import StationIn
from voltway.stations.service import derived_columns

# While a chunk is being written, reading yields to it every this many items.
YIELD_EVERY = 25

# Columns an upsert overwrites on an existing station; id, created_at and the rating are kept.
UPDATED_COLUMNS = (
    "name", "address", "town", "postcode", "country", "latitude", "longitude", "x", "y", "z", "operator",
    "usage", "status", "usage_cost", "price", "max_power_kw", "content_hash", "updated_at",
)  # fmt: skip


class Repeat(BaseModel):
    """An item superseded by a later item with the same (source, external_id) in the same run."""

    index: int
    external_id: str
    replaced_by: int


class UpsertReport(BaseModel):
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[ItemError] = Field(default_factory=list)
    repeated: list[Repeat] = Field(default_factory=list)
    # Links made by duplicate detection over the written stations (filled by the importers, see duplicates.py).
    duplicates: list[DuplicateLink] = Field(default_factory=list)

    @property
    def wrote(self) -> bool:
        """Whether any station may have been written. A repeated key's later item can rewrite a station that
        its first item left unchanged, uncounted (each key counts once)."""
        return bool(self.created or self.updated or self.repeated)


# The columns an import writes, in the order of the value tuples below.
INSERTED_COLUMNS = (
    "source", "external_id", "name", "address", "town", "postcode", "country", "latitude", "longitude", "x", "y",
    "z", "operator", "usage", "status", "usage_cost", "price", "max_power_kw", "rating_count", "content_hash",
    "created_at", "updated_at",
)  # fmt: skip
CONNECTOR_COLUMNS = ("station_id", "type", "type_name", "power_kw", "current", "quantity", "status")


def station_row(item: StationIn) -> StationRow:
    """A validated station shaped into the engine's row."""
    # Enum members' `_value_` is a plain attribute; `.value` is a Python-level property call (about a
    # fifth of this function's time with a dozen of them a station).
    derived = derived_columns(item.latitude, item.longitude, item.connectors)
    values = (
        item.source, item.external_id, item.name, item.address, item.town, item.postcode, item.country,
        item.latitude, item.longitude, derived["x"], derived["y"], derived["z"], item.operator, item.usage,
        item.status._value_, item.usage_cost, price_text(item.price), derived["max_power_kw"],
    )  # fmt: skip
    connectors = tuple(
        (c.type._value_, c.type_name, c.power_kw, c.current._value_ if c.current is not None else None,
         c.quantity, c.status._value_)  # fmt: skip
        for c in item.connectors
    )
    return StationRow.build(values, connectors)


# `(index, station)` pairs, the station validated (StationIn) or already shaped (StationRow).
Items = AsyncIterable[tuple[int, StationIn | StationRow]] | Iterable[tuple[int, StationIn | StationRow]]


@dataclass(slots=True)
class _Entry:
    index: int
    row: StationRow
    key: tuple[str, str] | None
    # True when an earlier item of this run already wrote the same key: not counted again.
    again: bool = False
    station_id: int = 0


# SQLite: the connector triggers that refresh a station's `connectors_json` row by row (0012, 0015). The engine
# writes the JSON itself, and its chunks go without them (`_connector_triggers_dropped`).
CONNECTOR_TRIGGERS = ("connectors_json_insert", "connectors_json_delete")


@contextlib.contextmanager
def _connector_triggers_dropped(conn: sqlite3.Connection) -> Iterator[None]:
    """Inside a chunk's transaction: the connector triggers dropped around its connector writes, then created
    again from their own stored definitions before it commits.

    SQLite has one writer at a time and nobody sees uncommitted schema changes, so no other writer ever goes
    without them; a failed chunk's rollback restores them. A trigger that does nothing still costs its call:
    600,000 connectors of a first load took 1.46-1.48 s with an idle trigger, 0.88 s without (migration 0012's
    guard table kept them idle before)."""
    names = ", ".join(f"'{name}'" for name in CONNECTOR_TRIGGERS)
    stored = _execute(conn, f"SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name IN ({names})")
    definitions = [row[0] for row in stored]
    for name in CONNECTOR_TRIGGERS:
        _execute(conn, f"DROP TRIGGER IF EXISTS {name}")
    yield
    for definition in definitions:
        _execute(conn, definition)


def _sqlite_real(value: float | None) -> float | None:
    """A REAL as SQLite's JSON functions print it: rounded to 15 significant digits, -0.0 stored as 0.0."""
    return None if value is None else float(f"{value:.15g}") + 0.0


@lru_cache(maxsize=1 << 12)  # connectors repeat: 837 kinds among 100,000 synthetic stations, 221 among OCM's 1,046
def _sqlite_connector_template(connector: tuple[Any, ...]) -> str:
    """A connector's JSON object with `%d` for its id."""
    kind, name, power, current, quantity, status = connector
    fields = {"type": kind, "type_name": name, "power_kw": _sqlite_real(power), "current": current,
              "quantity": quantity, "status": status}  # fmt: skip
    return '{"id":%d,' + orjson.dumps(fields).decode()[1:].replace("%", "%%")


def sqlite_connectors_json(first_id: int, connectors: Sequence[tuple[Any, ...]]) -> str:
    """The `connectors_json` of connectors stored with ids `first_id`, `first_id + 1`, ...: the text the SQLite
    triggers render (json_group_array of json_object: key order, escapes, REALs to 15 digits). Only powers
    below 0.0001 or from 1e15 kW read differently (SQLite writes 1.0e-05 for orjson's 1e-05): the same number.

    Each kind of connector is rendered once (`_sqlite_connector_template`), then given its id: a first load of
    300,000 stations spent 1.6 s of the importing thread rendering every connector."""
    template = ",".join(map(_sqlite_connector_template, connectors))
    return f"[{template}]" % tuple(range(first_id, first_id + len(connectors)))


def _pg_json_number(value: float | None) -> str:
    """A float8 as PostgreSQL's JSON functions print it: the shortest form that reads back the same, like
    Python's repr, but an integral value without ".0" (22.0 as 22, -0.0 as -0). From 1e15 PostgreSQL switches
    to exponents where repr does not: connector powers stop at 2,000 kW."""
    if value is None:
        return "null"
    if value.is_integer():
        return f"{int(value)}" if math.copysign(1.0, value) > 0 else f"-{int(-value)}"
    return repr(value)


def _pg_json_text(value: str | None) -> str:
    # PostgreSQL escapes what orjson escapes: the quote, the backslash and control characters (\n or \u00XX).
    return orjson.dumps(value).decode()


def postgresql_connectors_json(ids: Sequence[int], connectors: Sequence[tuple[Any, ...]]) -> str:
    """The `connectors_json` of connectors stored with `ids`: the text the PostgreSQL triggers render
    (json_agg of json_build_object: `"key" : value`, ", " between pairs and between objects)."""
    return "[" + ", ".join(
        f'{{"id" : {connector_id}, "type" : {_pg_json_text(kind)}, "type_name" : {_pg_json_text(name)}, '
        f'"power_kw" : {_pg_json_number(power)}, "current" : {_pg_json_text(current)}, "quantity" : {quantity}, '
        f'"status" : {_pg_json_text(status)}}}'
        for connector_id, (kind, name, power, current, quantity, status) in zip(ids, connectors, strict=True)
    ) + "]"


# PostgreSQL: inside the engine's transaction, the connector triggers leave `connectors_json` to it (0014);
# the ids of a chunk's connectors, taken from their sequence in one statement.
PG_WRITER_ON = "SET LOCAL voltway.connectors_json_writer = 'on'"
ALLOT_CONNECTOR_IDS = "SELECT nextval(pg_get_serial_sequence('connectors', 'id')) FROM generate_series(1, $1) ORDER BY 1"


# PostgreSQL element types of the written columns: the arrays of its one-statement writes (see _statements).
PG_TYPES = {
    **dict.fromkeys(("latitude", "longitude", "x", "y", "z", "max_power_kw", "power_kw"), "float8"),
    **dict.fromkeys(("id", "rating_count", "station_id", "quantity"), "int4"),
    "price": "json", "created_at": "timestamptz", "updated_at": "timestamptz",
}  # fmt: skip


def _placeholders(db: Database, count: int) -> str:
    return ", ".join("?" if db.is_sqlite else f"${i}" for i in range(1, count + 1))


def _rows(db: Database, columns: Sequence[str]) -> str:
    """The rows source of a chunk's INSERT: `VALUES (?, ...)` run per row (executemany) on SQLite;
    `SELECT * FROM unnest($1::type[], ...)`, one array per column, on PostgreSQL."""
    if db.is_sqlite:
        return f"VALUES ({_placeholders(db, len(columns))})"
    arrays = ", ".join(f"${i}::{PG_TYPES.get(name, 'text')}[]" for i, name in enumerate(columns, 1))
    return f"SELECT * FROM unnest({arrays})"


def _statements(db: Database) -> tuple[str, str, str]:
    """(upsert, plain insert, connector insert) as driver SQL with positional parameters.

    The inserts take the station's `connectors_json` and the connectors' ids, on SQLite also the station's id,
    and the upsert is not used there (see `_Writer._write_sqlite`); on PostgreSQL the plain insert, for keyless
    stations, returns the id, and the upsert keeps the stored `connectors_json` where it is given none and
    returns each row's key, id and whether it was inserted.

    The hot path hands value tuples straight to the driver: SQLAlchemy's per-row parameter processing cost
    more than SQLite's own work. Values are therefore given in the stored form: JSON as text, timestamps as
    SQLAlchemy stores them on SQLite (naive UTC text) and as datetimes on PostgreSQL. SQLite runs its inserts
    and updates per row (executemany; its triggers are per row anyway). PostgreSQL runs the upsert and the
    connector insert each as
    one statement over arrays (`_arrays`): an executemany there is one statement per row, and the
    statement-level connector triggers of migration 0007 re-rendered `connectors_json` once per connector row
    instead of once per chunk (importing 30,000 stations: connectors 15.2 s as an executemany, 8.2 s so).
    """
    station_columns, returning = (*INSERTED_COLUMNS, "connectors_json"), " RETURNING id"
    if db.is_sqlite:
        station_columns, returning = ("id", *station_columns), ""
    connector_columns = ("id", *CONNECTOR_COLUMNS)
    columns = ", ".join(station_columns)
    updates = ", ".join(f"{name} = excluded.{name}" for name in UPDATED_COLUMNS)
    updates += ", connectors_json = coalesce(excluded.connectors_json, stations.connectors_json)"
    return (
        f"INSERT INTO stations ({columns}) {_rows(db, station_columns)} "
        f"ON CONFLICT (source, external_id) DO UPDATE SET {updates} "
        "RETURNING source, external_id, id, xmax = 0",  # xmax is 0 on a row this statement inserted
        f"INSERT INTO stations ({columns}) VALUES ({_placeholders(db, len(station_columns))}){returning}",
        f"INSERT INTO connectors ({', '.join(connector_columns)}) {_rows(db, connector_columns)}",
    )


# The stored columns an update compares (all it overwrites but the hash and the time), and their positions in
# StationRow.values.
COMPARED_COLUMNS = UPDATED_COLUMNS[:-2]
COMPARED_POSITIONS = tuple(INSERTED_COLUMNS.index(name) for name in COMPARED_COLUMNS)
STORED_VALUES_SQL = f"SELECT id, {', '.join(COMPARED_COLUMNS)} FROM stations WHERE "


def _sqlite_update(columns: tuple[str, ...], connectors: bool) -> str:
    """The UPDATE of a station's changed `columns`, its hash and time, and with new `connectors` their JSON."""
    names = (*columns, "content_hash", "updated_at", *(("connectors_json",) if connectors else ()))
    return f"UPDATE stations SET {', '.join(f'{name} = ?' for name in names)} WHERE id = ?"


def _arrays(rows: list[tuple[Any, ...]]) -> tuple[list[Any], ...]:
    """One list per column: the parameters of a PostgreSQL chunk statement over arrays."""
    return tuple(list(column) for column in zip(*rows, strict=True))


def _station_values(entry: _Entry, now: object) -> tuple[Any, ...]:
    return (*entry.row.values, 0, entry.row.content_hash, now, now)


def _classify(
    entries: Sequence[_Entry], existing: dict[tuple[str, str], tuple[int, str | None]]
) -> tuple[list[_Entry], list[_Entry], int]:
    """(created, updated, unchanged count) of a chunk by the stations that exist: (source, external_id) -> (id,
    content_hash). An updated entry takes its station's id."""
    created: list[_Entry] = []
    updated: list[_Entry] = []
    unchanged = 0
    for entry in entries:
        found = existing.get(entry.key) if entry.key is not None else None
        if found is None:
            created.append(entry)
        elif found[1] == entry.row.content_hash:
            unchanged += not entry.again
        else:
            entry.station_id = found[0]
            updated.append(entry)
    return created, updated, unchanged


def _counts(created: list[_Entry], updated: list[_Entry], unchanged: int) -> tuple[int, int, int]:
    """A written chunk's counts: an entry whose key an earlier item of the run wrote is not counted again."""
    return sum(not e.again for e in created), sum(not e.again for e in updated), unchanged


def _kept(updated: list[_Entry], stored_rows: Iterable[Sequence[Any]]) -> set[int]:
    """The updated stations whose stored connectors (`station_id, *CONNECTOR_COLUMNS[1:]` rows in id order)
    are the new ones, in order."""
    stored: dict[int, list[tuple[Any, ...]]] = {}
    for station_id, *values in stored_rows:
        stored.setdefault(station_id, []).append(tuple(values))
    return {e.station_id for e in updated if tuple(stored.get(e.station_id, ())) == e.row.connectors}


def _execute(conn: sqlite3.Connection, sql: str, params: Any = (), *, many: bool = False) -> sqlite3.Cursor:
    """A statement on SQLite's write connection, timed into the database metrics as the engine's statements are."""
    started = time.perf_counter()
    cursor = conn.executemany(sql, params) if many else conn.execute(sql, params)
    observe_query(sql, time.perf_counter() - started)
    return cursor


def _run_all(conn: sqlite3.Connection, statements: Sequence[str]) -> None:
    for statement in statements:
        conn.execute(statement)


class _Writer:
    """Writes chunks: on SQLite each whole on the database's write thread and connection (`Database.sqlite_write`,
    one hop from the event loop a chunk), on PostgreSQL through the engine's connection `conn`."""

    def __init__(self, db: Database, conn: AsyncConnection | None, report: UpsertReport) -> None:
        self.db = db
        self.conn = conn
        self.report = report
        self.upsert_sql, self.insert_sql, self.connectors_sql = _statements(db)

    def _now(self) -> object:
        # SQLAlchemy's SQLite DateTime storage format, so that its comparisons keep working on these rows.
        return stored_time(utcnow(), sqlite=self.db.is_sqlite)

    async def write(self, entries: Sequence[_Entry]) -> None:
        """Write a chunk in one transaction; on a database error, bisect to reject only the failing items."""
        if not entries:
            return
        try:
            if self.conn is None:
                counts = await self.db.sqlite_write(functools.partial(self._sqlite_chunk, entries=entries))
            else:
                async with self.conn.begin():
                    counts = await self._postgresql_chunk(entries)
        except (DBAPIError, sqlite3.Error) as exc:
            error = exc.orig if isinstance(exc, DBAPIError) else exc
            if getattr(exc, "connection_invalidated", False) or "database is locked" in str(error):
                raise
            if len(entries) == 1:
                message = str(error).strip().splitlines()[0] if error is not None else str(exc)
                self.report.rejected.append(ItemError(index=entries[0].index, code="database_error", message=message))
                return
            middle = len(entries) // 2
            await self.write(entries[:middle])
            await self.write(entries[middle:])
            return
        self.report.created += counts[0]
        self.report.updated += counts[1]
        self.report.unchanged += counts[2]

    def _key_lookups(self, entries: Sequence[_Entry]) -> list[tuple[str, str, tuple[Any, ...]]]:
        """(source, SQL, parameters) selecting `external_id, id, content_hash` of the chunk's stations that exist.

        One statement per source with the external ids as a single array parameter (`json_each` on SQLite,
        `= ANY` on PostgreSQL): both use the (source, external_id) unique index, and nothing is compiled per
        chunk (expanding a thousand-item IN list cost more than the lookup itself).
        """
        by_source: dict[str, list[str]] = {}
        for entry in entries:
            if entry.key is not None:
                by_source.setdefault(entry.key[0], []).append(entry.key[1])
        first, second = ("?", "?") if self.db.is_sqlite else ("$1", "$2")
        lookups = []
        for source, ids in by_source.items():
            among, values = self.db.any_of("external_id", ids, second)
            sql = f"SELECT external_id, id, content_hash FROM stations WHERE source = {first} AND {among}"
            lookups.append((source, sql, (source, values)))
        return lookups

    def _of_stations(self, entries: Sequence[_Entry], column: str = "station_id") -> tuple[str, tuple[Any, ...]]:
        """`column` is one of the entries' stations: a condition with one array parameter (as in `_key_lookups`)."""
        placeholder = "?" if self.db.is_sqlite else "$1::int4[]"
        condition, value = self.db.any_of(column, (e.station_id for e in entries), placeholder)
        return condition, (value,)

    def _stored_connectors(self, updated: list[_Entry]) -> tuple[str, tuple[Any, ...]]:
        """The stored connectors of `updated` stations, for `_kept`.

        Stations whose connectors did not change keep them: replacing them would give them new ids, delete
        their reservations and detach their charging sessions and check-ins (the foreign keys cascade or set
        null), for nothing; and an update that leaves the connectors alone (a renamed station, a new price)
        writes no connector row at all.
        """
        condition, params = self._of_stations(updated)
        columns = ", ".join(CONNECTOR_COLUMNS)
        return f"SELECT {columns} FROM connectors WHERE {condition} ORDER BY station_id, id", params

    def _old_connectors(self, replaced: list[_Entry]) -> tuple[str, tuple[Any, ...]]:
        """The DELETE of the old connectors of `replaced` stations (before the chunk's new ones go in)."""
        condition, params = self._of_stations(replaced)
        return f"DELETE FROM connectors WHERE {condition}", params

    # ------------------------------------------------------------------------------------------- SQLite
    def _sqlite_chunk(self, conn: sqlite3.Connection, entries: Sequence[_Entry]) -> tuple[int, int, int]:
        """A chunk in one transaction, on the write thread. BEGIN IMMEDIATE takes the write lock up front (waiting
        up to busy_timeout) instead of failing on upgrade; it also makes the chunk's id allotment safe."""
        _execute(conn, "BEGIN IMMEDIATE")
        try:
            existing = {
                (source, row[0]): (row[1], row[2])
                for source, sql, params in self._key_lookups(entries)
                for row in _execute(conn, sql, params)
            }
            created, updated, unchanged = _classify(entries, existing)
            if created or updated:
                self._write_sqlite(conn, created, updated)
            _execute(conn, "COMMIT")
        except BaseException:
            if conn.in_transaction:
                _execute(conn, "ROLLBACK")
            raise
        return _counts(created, updated, unchanged)

    def _write_sqlite(self, conn: sqlite3.Connection, created: list[_Entry], updated: list[_Entry]) -> None:
        """New stations inserted and updated stations changed, each with its `connectors_json`, then their
        connectors, without the connector triggers (`_connector_triggers_dropped`).

        The chunk holds the write lock (BEGIN IMMEDIATE), so the new rows' ids are allotted here: max(id) + 1
        onwards, the ids SQLite itself would have given. Knowing the connectors' ids, their JSON is rendered
        with the station rows instead of by one more UPDATE of every station (0009's 'pending' mark) or by the
        triggers once per connector row: ~4 ms less for 1,000 new stations, and one lookup of their ids less.

        An updated station is compared with its stored row and only the changed columns are set: SQLite
        rewrites the entries of every index over a column an UPDATE names, changed or not (renaming 1,000
        stations: 27 ms with every column named, as an upsert does, 9 ms with the changed ones). Its connectors
        and their JSON stay as they are when they did not change (`_kept`).
        """
        station_id, connector_id = _execute(
            conn, "SELECT (SELECT coalesce(max(id), 0) FROM stations), (SELECT coalesce(max(id), 0) FROM connectors)"
        ).fetchone()
        stored: dict[int, Sequence[Any]] = {}
        kept: set[int] = set()
        if updated:
            condition, params = self._of_stations(updated, "id")
            stored = {row[0]: row[1:] for row in _execute(conn, STORED_VALUES_SQL + condition, params)}
            kept = _kept(updated, _execute(conn, *self._stored_connectors(updated)))
        now = self._now()
        for entry in created:
            station_id += 1
            entry.station_id = station_id
        inserts: list[tuple[Any, ...]] = []
        updates: dict[tuple[tuple[str, ...], bool], list[tuple[Any, ...]]] = {}
        connectors: list[tuple[Any, ...]] = []
        for entry in (*created, *updated):
            rendered: tuple[str, ...] = ()
            if entry.station_id not in kept:
                first = connector_id + 1
                connector_id += len(entry.row.connectors)
                rendered = (sqlite_connectors_json(first, entry.row.connectors),)
                connectors += [(first + i, entry.station_id, *c) for i, c in enumerate(entry.row.connectors)]
            old = stored.get(entry.station_id)
            if old is None:  # a new station (every updated one was read above)
                inserts.append((entry.station_id, *_station_values(entry, now), *rendered))
                continue
            values = entry.row.values
            changed = [i for i, position in enumerate(COMPARED_POSITIONS) if values[position] != old[i]]
            update = updates.setdefault((tuple(COMPARED_COLUMNS[i] for i in changed), bool(rendered)), [])
            update.append((*(values[COMPARED_POSITIONS[i]] for i in changed), entry.row.content_hash, now, *rendered,
                           entry.station_id))  # fmt: skip
        if inserts:
            _execute(conn, self.insert_sql, inserts, many=True)
        for (columns, with_connectors), rows in updates.items():
            _execute(conn, _sqlite_update(columns, with_connectors), rows, many=True)
        replaced = [e for e in updated if e.station_id not in kept]
        if replaced or connectors:
            with _connector_triggers_dropped(conn):
                if replaced:
                    _execute(conn, *self._old_connectors(replaced))
                if connectors:
                    _execute(conn, self.connectors_sql, connectors, many=True)

    # --------------------------------------------------------------------------------------- PostgreSQL
    async def _postgresql_chunk(self, entries: Sequence[_Entry]) -> tuple[int, int, int]:
        conn = self.conn
        assert conn is not None
        existing = {
            (source, row[0]): (row[1], row[2])
            for source, sql, params in self._key_lookups(entries)
            for row in await conn.exec_driver_sql(sql, params)
        }
        created, updated, unchanged = _classify(entries, existing)
        if created or updated:
            await self._write_postgresql(created, updated)  # may move created entries to updated
        return _counts(created, updated, unchanged)

    async def _write_postgresql(self, created: list[_Entry], updated: list[_Entry]) -> None:
        """Stations with their `connectors_json`, their ids, then their connectors, the connector triggers idle.

        The connectors' ids are taken from their sequence first, one statement for the chunk, so that their
        JSON goes in with the station rows: the triggers rendered it by updating every station of the chunk
        once more (a second version of each row and of its index entries). Stations whose connectors did not
        change keep theirs and their JSON (`_kept`; the upsert is given NULL for them).

        A key classified new may have been inserted by another writer since the chunk looked it up: the upsert
        waits for that transaction, then updates the row. Such a station is counted and treated as updated,
        its other connectors replaced, so that it never ends up with both writers' connectors.
        """
        conn = self.conn
        assert conn is not None
        await conn.exec_driver_sql(PG_WRITER_ON)
        now = self._now()
        kept = _kept(updated, await conn.exec_driver_sql(*self._stored_connectors(updated))) if updated else set()
        replaced = [e for e in updated if e.station_id not in kept]
        written = [*created, *replaced]
        count = sum(len(e.row.connectors) for e in written)
        allotted = iter(
            [row[0] for row in await conn.exec_driver_sql(ALLOT_CONNECTOR_IDS, (count,))] if count else []
        )
        connector_ids: dict[int, list[int]] = {}  # item index -> its connectors' ids
        rendered: dict[int, str] = {}
        for e in written:
            connector_ids[e.index] = [next(allotted) for _ in e.row.connectors]
            rendered[e.index] = postgresql_connectors_json(connector_ids[e.index], e.row.connectors)

        def values(entry: _Entry) -> tuple[Any, ...]:
            return (*_station_values(entry, now), rendered.get(entry.index))

        keyed = [e for e in (*created, *updated) if e.key is not None]
        written_ids: dict[tuple[str, str], tuple[int, bool]] = {}
        if keyed:
            result = await conn.exec_driver_sql(self.upsert_sql, _arrays([values(e) for e in keyed]))
            written_ids = {(source, external_id): (sid, inserted) for source, external_id, sid, inserted in result}
        for e in list(created):
            if e.key is None:  # nothing to match on: a plain insert, one row at a time
                result = await conn.exec_driver_sql(self.insert_sql, values(e))
                e.station_id = result.scalar_one()
                continue
            e.station_id, inserted = written_ids[e.key]
            if not inserted:  # another writer created it meanwhile
                created.remove(e)
                updated.append(e)
                replaced.append(e)
        connectors = [
            (connector_id, e.station_id, *c)
            for e in written
            for connector_id, c in zip(connector_ids[e.index], e.row.connectors, strict=True)
        ]
        if replaced:
            await conn.exec_driver_sql(*self._old_connectors(replaced))
        if connectors:
            await conn.exec_driver_sql(self.connectors_sql, _arrays(connectors))


async def _aiter(
    items: Items,
) -> AsyncIterator[tuple[int, StationIn | StationRow]]:
    if isinstance(items, AsyncIterable):
        async for pair in items:
            yield pair
    else:
        for pair in items:
            yield pair


@contextlib.asynccontextmanager
async def _import_connection(db: Database, *, first_load: bool) -> AsyncIterator[AsyncConnection | None]:
    """The connection an import writes through, with its settings for the import, restored afterwards.

    SQLite: None, the chunks go through the database's write connection (`Database.sqlite_write`), which reads
    through the page cache rather than memory-mapped I/O. A bulk import touches every index page; mapped pages
    count in the process's resident memory, so a re-import of 300,000 stations would otherwise show the mapped
    database file (up to `mmap_size`) on top of the page cache. A first load (`first_load.py`: the indexes
    deferred, the rows appended) also keeps a small page cache: it rereads little, and the 64 MB cache filled
    up with pages written once (300,000 stations: 11.6 s either way, peak RSS 206 -> 146 MB).

    PostgreSQL: one of the engine's connections, planning each statement for its parameters
    (`plan_cache_mode = force_custom_plan`). asyncpg prepares statements, and after five runs PostgreSQL may
    keep a generic plan; made while an import's table was still small, the lookup of a chunk's keys stayed a
    sequential scan as the table grew (40 of the 60 s of importing 30,000 stations into an empty table; 2 s
    with per-execution plans). It goes back to the pool as it came.
    """
    if db.is_sqlite:
        switches = (SQLITE_NO_MMAP, SQLITE_SMALL_CACHE) if first_load else (SQLITE_NO_MMAP,)
        await db.sqlite_write(functools.partial(_run_all, statements=[one_pass for one_pass, _ in switches]))
        try:
            yield None
        finally:
            await db.sqlite_write(functools.partial(_run_all, statements=[default for _, default in switches]))
        return
    async with db.engine.connect() as conn:
        await conn.exec_driver_sql("SET plan_cache_mode = force_custom_plan")
        await conn.commit()
        try:
            yield conn
        finally:
            await conn.exec_driver_sql("RESET plan_cache_mode")
            await conn.commit()


async def upsert_stations(
    db: Database,
    items: Items,
    *,
    chunk_size: int = 1000,
    progress: Callable[[int], None] | None = None,
    first_load: bool = False,
) -> UpsertReport:
    """Upsert `(index, station)` items by (source, external_id), chunk by chunk; see the module docstring.

    `progress`, when given, is called after each committed chunk with the number of items handled so far.
    While a chunk is written, the next one is read (the database works in its own thread or process), so a
    file import parses and writes at the same time; at most two chunks are in memory. `first_load`: the
    stations' indexes are deferred (`first_load.py`), so the rows are appended.
    """
    with fewer_collections():
        return await _upsert(db, items, chunk_size=chunk_size, progress=progress, first_load=first_load)


async def _upsert(
    db: Database,
    items: Items,
    *,
    chunk_size: int,
    progress: Callable[[int], None] | None,
    first_load: bool,
) -> UpsertReport:
    report = UpsertReport()
    # hash((source, external_id)) -> index of the last item with that key, across the whole run.
    seen: dict[int, int] = {}
    chunk: dict[object, _Entry] = {}
    handled = 0
    writing: asyncio.Task[None] | None = None

    async def finish_write() -> None:
        nonlocal writing
        if writing is not None:
            await to_the_end(writing)  # a cancelled import lets its chunk in flight commit or roll back
            writing = None

    async with _import_connection(db, first_load=first_load) as conn:
        writer = _Writer(db, conn, report)

        async def write(entries: list[_Entry], done: int) -> None:
            await writer.write(entries)
            if progress is not None:
                progress(done)

        try:
            async for index, item in _aiter(items):
                row = item if isinstance(item, StationRow) else station_row(item)
                key = row.key
                entry = _Entry(index, row, key)
                slot: object = ("", index)
                if key is not None:
                    slot = hash(key)
                    previous = seen.get(slot)  # type: ignore[arg-type]
                    if previous is not None:
                        report.repeated.append(Repeat(index=previous, external_id=key[1], replaced_by=index))
                        if slot in chunk:
                            del chunk[slot]  # not yet written: the later item simply takes its place
                        else:
                            entry.again = True
                    seen[slot] = index  # type: ignore[index]
                chunk[slot] = entry
                handled += 1
                if len(chunk) >= chunk_size:
                    await finish_write()
                    writing = asyncio.create_task(write(list(chunk.values()), handled))
                    chunk = {}
                elif writing is not None and handled % YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # let the write in flight issue its next statement
            await finish_write()
            writing = asyncio.create_task(write(list(chunk.values()), handled))
            await finish_write()
        finally:
            if writing is not None:  # reading failed: let the chunk in flight commit (its own errors aside)
                with contextlib.suppress(Exception):
                    await writing
    report.rejected.sort(key=lambda e: e.index)
    return report

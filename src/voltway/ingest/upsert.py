"""The bulk upsert engine: the one write path of imports and of the bulk API.

Items are `(index, StationIn)` pairs; `index` is the caller's position (record number in a file, item number
in a request) and is what every report entry names. Items are written in chunks (1,000 by default), one
transaction per chunk, with set-based statements:

1. one SELECT of the chunk's existing `(source, external_id) -> (id, content_hash)`;
2. items are classified `created` (no such key), `unchanged` (same content hash) or `updated`;
3. one `INSERT ... ON CONFLICT (source, external_id) DO UPDATE ... RETURNING` for created and updated items
   (on SQLite the R*Tree triggers fire for the inserted rows and for changed coordinates);
4. one DELETE of the updated stations' connectors and one multi-row INSERT of the new connectors.

A database error inside a chunk rolls the chunk back and the chunk is retried in halves (bisection) until
the failing items are isolated: only they are rejected, every other item is written. A chunk is committed or
not at all, so a process killed mid-import leaves whole chunks behind and running the import again completes
it (the committed chunks come back `unchanged`).

The same key twice in one run: the last item wins, and each earlier one is listed in `repeated`; the counts
count each key once. Items without `external_id` cannot be matched and are always created.
"""

import hashlib
from collections.abc import AsyncIterable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Table, delete, insert, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from voltway.core.db import Database, utcnow
from voltway.ingest.duplicates import DuplicateLink
from voltway.stations.models import Connector, Station
from voltway.stations.schemas import StationIn
from voltway.stations.service import derived_columns

STATIONS: Table = Station.__table__  # type: ignore[assignment]
CONNECTORS: Table = Connector.__table__  # type: ignore[assignment]

# Columns an upsert overwrites on an existing station; id, created_at and the rating are kept.
UPDATED_COLUMNS = (
    "name", "address", "town", "postcode", "country", "latitude", "longitude", "x", "y", "z", "operator",
    "usage", "status", "usage_cost", "price", "max_power_kw", "content_hash", "updated_at",
)  # fmt: skip


class ItemError(BaseModel):
    """An item that was not written: its index, a machine-readable code and the reason."""

    index: int
    code: str
    message: str


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


@dataclass(slots=True)
class _Entry:
    index: int
    item: StationIn
    content_hash: str
    # True when an earlier item of this run already wrote the same key: not counted again.
    again: bool = False
    station_id: int = 0


def content_hash(item: StationIn) -> str:
    """A digest of everything an import writes; equal digests mean re-writing would change nothing."""
    return hashlib.blake2b(item.model_dump_json().encode(), digest_size=16).hexdigest()


def _station_row(entry: _Entry, now: datetime) -> dict[str, Any]:
    item = entry.item
    return {
        "source": item.source,
        "external_id": item.external_id,
        "name": item.name,
        "address": item.address,
        "town": item.town,
        "postcode": item.postcode,
        "country": item.country,
        "latitude": item.latitude,
        "longitude": item.longitude,
        **derived_columns(item.latitude, item.longitude, item.connectors),
        "operator": item.operator,
        "usage": item.usage,
        "status": item.status.value,
        "usage_cost": item.usage_cost,
        "price": item.price.model_dump() if item.price is not None else None,
        "rating_count": 0,
        "content_hash": entry.content_hash,
        "created_at": now,
        "updated_at": now,
    }


def _connector_rows(station_id: int, item: StationIn) -> list[dict[str, Any]]:
    return [
        {
            "station_id": station_id,
            "type": c.type.value,
            "type_name": c.type_name,
            "power_kw": c.power_kw,
            "current": c.current.value if c.current is not None else None,
            "quantity": c.quantity,
            "status": c.status.value,
        }
        for c in item.connectors
    ]


class _Writer:
    def __init__(self, db: Database, conn: AsyncConnection, report: UpsertReport) -> None:
        self.db = db
        self.conn = conn
        self.report = report
        insert_fn = sqlite_insert if db.is_sqlite else pg_insert
        stmt = insert_fn(STATIONS)
        self.upsert = stmt.on_conflict_do_update(
            index_elements=[STATIONS.c.source, STATIONS.c.external_id],
            set_={name: stmt.excluded[name] for name in UPDATED_COLUMNS},
        )

    async def write(self, entries: Sequence[_Entry]) -> None:
        """Write a chunk in one transaction; on a database error, bisect to reject only the failing items."""
        if not entries:
            return
        try:
            async with self.conn.begin():
                if self.db.is_sqlite:
                    # Take the write lock up front (waiting up to busy_timeout) instead of failing on upgrade.
                    await self.conn.exec_driver_sql("BEGIN IMMEDIATE")
                counts = await self._write_chunk(entries)
        except DBAPIError as exc:
            if exc.connection_invalidated or "database is locked" in str(exc.orig):
                raise
            if len(entries) == 1:
                message = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
                self.report.rejected.append(ItemError(index=entries[0].index, code="database_error", message=message))
                return
            middle = len(entries) // 2
            await self.write(entries[:middle])
            await self.write(entries[middle:])
            return
        self.report.created += counts[0]
        self.report.updated += counts[1]
        self.report.unchanged += counts[2]

    async def _write_chunk(self, entries: Sequence[_Entry]) -> tuple[int, int, int]:
        keys = [(e.item.source, e.item.external_id) for e in entries if e.item.external_id is not None]
        existing: dict[tuple[str, str], tuple[int, str | None]] = {}
        if keys:
            rows = await self.conn.execute(
                select(STATIONS.c.source, STATIONS.c.external_id, STATIONS.c.id, STATIONS.c.content_hash).where(
                    tuple_(STATIONS.c.source, STATIONS.c.external_id).in_(keys)
                )
            )
            existing = {(r[0], r[1]): (r[2], r[3]) for r in rows}
        created: list[_Entry] = []
        updated: list[_Entry] = []
        unchanged = 0
        for entry in entries:
            found = existing.get((entry.item.source, entry.item.external_id or ""))
            if found is None:
                created.append(entry)
            elif found[1] == entry.content_hash:
                unchanged += not entry.again
            else:
                updated.append(entry)
        to_write = created + updated
        if to_write:
            now = utcnow()
            keyed = [e for e in to_write if e.item.external_id is not None]
            if keyed:
                await self.conn.execute(self.upsert, [_station_row(e, now) for e in keyed])
            for e in updated:
                e.station_id = existing[(e.item.source, e.item.external_id or "")][0]
            new_keyed = [e for e in created if e.item.external_id is not None]
            if new_keyed:
                rows = await self.conn.execute(
                    select(STATIONS.c.source, STATIONS.c.external_id, STATIONS.c.id).where(
                        tuple_(STATIONS.c.source, STATIONS.c.external_id).in_(
                            [(e.item.source, e.item.external_id) for e in new_keyed]
                        )
                    )
                )
                by_key = {(r[0], r[1]): r[2] for r in rows}
                for e in new_keyed:
                    e.station_id = by_key[(e.item.source, e.item.external_id)]
            for e in created:
                if e.item.external_id is None:  # nothing to match on: a plain insert, one row at a time
                    e.station_id = (
                        await self.conn.execute(insert(STATIONS).returning(STATIONS.c.id), _station_row(e, now))
                    ).scalar_one()
            if updated:
                await self.conn.execute(
                    delete(CONNECTORS).where(CONNECTORS.c.station_id.in_([e.station_id for e in updated]))
                )
            connector_rows = [row for e in to_write for row in _connector_rows(e.station_id, e.item)]
            if connector_rows:
                await self.conn.execute(insert(CONNECTORS), connector_rows)
        return (
            sum(not e.again for e in created),
            sum(not e.again for e in updated),
            unchanged,
        )


async def _aiter(items: AsyncIterable[tuple[int, StationIn]] | Iterable[tuple[int, StationIn]]):  # type: ignore[no-untyped-def]
    if isinstance(items, AsyncIterable):
        async for pair in items:
            yield pair
    else:
        for pair in items:
            yield pair


async def upsert_stations(
    db: Database,
    items: AsyncIterable[tuple[int, StationIn]] | Iterable[tuple[int, StationIn]],
    *,
    chunk_size: int = 1000,
    progress: Callable[[int], None] | None = None,
) -> UpsertReport:
    """Upsert `(index, station)` items by (source, external_id), chunk by chunk; see the module docstring.

    `progress`, when given, is called after each chunk with the number of items handled so far.
    """
    report = UpsertReport()
    # hash((source, external_id)) -> index of the last item with that key, across the whole run.
    seen: dict[int, int] = {}
    chunk: dict[object, _Entry] = {}
    handled = 0
    async with db.engine.connect() as conn:
        writer = _Writer(db, conn, report)
        async for index, item in _aiter(items):
            entry = _Entry(index, item, content_hash(item))
            key: object = ("", index)
            if item.external_id is not None:
                key = hash((item.source, item.external_id))
                previous = seen.get(key)  # type: ignore[arg-type]
                if previous is not None:
                    report.repeated.append(Repeat(index=previous, external_id=item.external_id, replaced_by=index))
                    if key in chunk:
                        del chunk[key]  # not yet written: the later item simply takes its place
                    else:
                        entry.again = True
                seen[key] = index  # type: ignore[index]
            chunk[key] = entry
            handled += 1
            if len(chunk) >= chunk_size:
                await writer.write(list(chunk.values()))
                chunk.clear()
                if progress is not None:
                    progress(handled)
        await writer.write(list(chunk.values()))
        if progress is not None:
            progress(handled)
    report.rejected.sort(key=lambda e: e.index)
    return report

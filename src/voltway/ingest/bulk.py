"""Bulk writes from API clients: station upserts and status updates, each item validated and reported on its own.

Items without `external_id` are rejected (`missing_external_id`): an upsert needs the key, and creating them
anyway would make a retried request create the same stations twice. `POST /api/v1/stations` creates a
station without one.
"""

import contextlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import Annotated, Any, TypeVar

import orjson
from pydantic import BaseModel, Field, TypeAdapter, ValidationError, model_validator
from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from voltway.charging.status import record_status_changes
from voltway.core.cache import invalidate
from voltway.core.db import Database, utcnow
from voltway.core.errors import InvalidInput, PayloadTooLarge
from voltway.core.gc_tuning import fewer_collections
from voltway.core.metrics import IMPORT_ROWS
from voltway.ingest.duplicates import DuplicateLink, link_duplicates_since
from voltway.ingest.first_load import indexes_after_first_load
from voltway.ingest.rows import ItemError
from voltway.ingest.upsert import Items, UpsertReport, upsert_stations
from voltway.stations.map_cells import try_refresh
from voltway.stations.models import Station
from voltway.stations.schemas import StationIn, StationStatus

MAX_BULK_ITEMS = 1000
M = TypeVar("M", bound=BaseModel)


# ------------------------------------------------------------------------------------------ the body
def json_items(body: bytes) -> list[Any]:
    """The body as a JSON array of at most MAX_BULK_ITEMS items (422 / 413 for the body as a whole)."""
    try:
        items = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}", details=[{"field": "body", "in": "body"}]) from None
    if not isinstance(items, list):
        raise InvalidInput(
            "the body must be a JSON array of items",
            details=[{"field": "body", "in": "body", "message": "not an array"}],
        )
    if len(items) > MAX_BULK_ITEMS:
        raise PayloadTooLarge(
            f"at most {MAX_BULK_ITEMS} items per request, got {len(items)}; split the batch",
            details={"max_items": MAX_BULK_ITEMS, "items": len(items)},
        )
    return items


# ------------------------------------------------------------------------------------------ validation
def validation_message(exc: ValidationError) -> str:
    """`field: reason; field: reason` for every problem pydantic found."""
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"])
        parts.append(f"{field}: {err['msg']}" if field else err["msg"])
    return "; ".join(parts)


def validate_item(model: type[M], data: Any, *, index: int, prefix: str = "") -> M | ItemError:
    """One raw item as `model`, or the error naming every bad field."""
    if not isinstance(data, dict):
        return ItemError(index=index, code="validation_error", message=f"{prefix}expected a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        return ItemError(index=index, code="validation_error", message=prefix + validation_message(exc))


def _keyed(station: StationIn | ItemError, *, index: int, prefix: str = "") -> StationIn | ItemError:
    if isinstance(station, StationIn) and station.external_id is None:
        return ItemError(
            index=index, code="missing_external_id", message=f"{prefix}external_id is required to upsert"
        )
    return station


def validate_station(data: Any, *, index: int, prefix: str = "") -> StationIn | ItemError:
    """One raw item as an upsertable station (it needs `external_id`), or the error naming why not."""
    return _keyed(validate_item(StationIn, data, index=index, prefix=prefix), index=index, prefix=prefix)


# A whole bulk body validated by one call, straight from the JSON bytes (no intermediate dicts).
_STATION_LIST = TypeAdapter(Annotated[list[StationIn], Field(max_length=MAX_BULK_ITEMS)])


def validate_stations(body: bytes) -> list[StationIn | ItemError]:
    """Each item of a bulk body as an upsertable station or the error naming why not, in body order.

    The whole body is validated at once from its bytes (1,000 stations: 4.4 ms of CPU, against 1.5 ms to parse
    the JSON and 5.4 ms to validate each item), with no intermediate dicts for the garbage collector. Only when
    that fails is the body parsed and each item validated on its own, so that the errors name their items by
    index (and a body that is no array, or too long, is refused as a whole by `json_items`).
    """
    try:
        stations: list[StationIn | ItemError] = list(_STATION_LIST.validate_json(body))
    except ValidationError:
        return [validate_station(data, index=index) for index, data in enumerate(json_items(body))]
    return [_keyed(station, index=index) for index, station in enumerate(stations)]


# --------------------------------------------------------------------------------------- station upsert
async def import_stations(
    db: Database,
    items: Items,
    *,
    invalid: list[ItemError],
    feed: str,
    progress: Callable[[int], None] | None = None,
    link: bool = True,
    first_load: bool = False,
) -> UpsertReport:
    """Upsert valid items, then (unless `link` is false) link duplicates among the stations written.

    `invalid` holds the items the caller rejected before the engine saw them (it may fill while `items` is
    read); they join the engine's own rejections in the report, by index. `feed` (ocm, csv, api) labels the
    import-rows metric. `first_load`: an import of a file, whose indexes are built after its rows when the
    database has no station yet (`ingest/first_load.py`).
    """
    started = utcnow()  # the engine stamps what it writes with the same clock
    async with indexes_after_first_load(db) if first_load else contextlib.nullcontext(None) as load:
        report = await upsert_stations(db, items, progress=progress, first_load=load is not None)
        if link and report.wrote:  # nothing to link when every item was unchanged or rejected

            def linking() -> Awaitable[list[DuplicateLink]]:
                return link_duplicates_since(db, started)

            report.duplicates = await (load.finish(beside=linking) if load is not None else linking())
    if report.wrote:  # the map's cells, so that its first view after a large import need not wait for them
        await try_refresh(db)
    report.rejected = sorted([*invalid, *report.rejected], key=lambda e: e.index)
    for result, rows in (("created", report.created), ("updated", report.updated),
                         ("unchanged", report.unchanged), ("rejected", len(report.rejected))):
        IMPORT_ROWS.labels(source=feed, result=result).inc(rows)
    if report.wrote:
        await invalidate("stations")  # cached station answers must show what was written
    return report


class BulkResult(BaseModel):
    created: int
    updated: int
    unchanged: int
    errors: list[ItemError]


async def bulk_upsert(db: Database, *, body: bytes) -> tuple[BulkResult, datetime | None]:
    """Validate the items of a bulk body (a JSON array) and upsert the valid ones.

    Returns the answer and, when stations were written, the time to run the duplicate rule from (the
    router runs it after the response: the answer does not depend on it).
    """
    # Validation allocates as much as the write (see fewer_collections), so the collector is held back for
    # both. The request's objects are released when `_bulk_upsert` returns, before the thresholds are restored:
    # freed, they no longer count towards a collection and none is promoted to an older generation. (With
    # the default thresholds, 1,000 stations cost ~20 young collections and, every few requests, a full one
    # of the server's heap: 13-50 ms.)
    with fewer_collections():
        return await _bulk_upsert(db, body)


async def _bulk_upsert(db: Database, body: bytes) -> tuple[BulkResult, datetime | None]:
    errors: list[ItemError] = []
    valid: list[tuple[int, StationIn]] = []
    for index, checked in enumerate(validate_stations(body)):
        if isinstance(checked, ItemError):
            errors.append(checked)
        else:
            valid.append((index, checked))
    started = utcnow()
    report = await import_stations(db, valid, invalid=errors, feed="api", link=False)
    result = BulkResult(
        created=report.created, updated=report.updated, unchanged=report.unchanged, errors=report.rejected
    )
    return result, started if report.wrote else None


# ---------------------------------------------------------------------------------------- status updates
class ConnectorStatusIn(BaseModel):
    id: int = Field(description="The connector's id (from the station's `connectors`)")
    status: StationStatus


class StatusItem(BaseModel):
    """A station named by `station_id` or by (`source`, `external_id`); its status and/or connector statuses."""

    station_id: int | None = None
    source: str = Field("voltway", min_length=1, max_length=32)
    external_id: str | None = Field(None, min_length=1, max_length=64)
    status: StationStatus | None = None
    connectors: list[ConnectorStatusIn] = Field(default_factory=list, max_length=200)

    @model_validator(mode="after")
    def _named_and_not_empty(self) -> "StatusItem":
        if self.station_id is None and self.external_id is None:
            raise ValueError("give station_id or external_id (with source) to name the station")
        if self.status is None and not self.connectors:
            raise ValueError("give status or connectors: there is nothing to change")
        return self


class StatusResult(BaseModel):
    updated: int = Field(description="Items that changed at least one status")
    unchanged: int = Field(description="Items whose statuses were already as asked")
    errors: list[ItemError]


def _parse_status_items(items: Iterable[Any], errors: list[ItemError]) -> list[tuple[int, StatusItem]]:
    parsed = []
    for index, data in enumerate(items):
        item = validate_item(StatusItem, data, index=index)
        if isinstance(item, ItemError):
            errors.append(item)
        else:
            parsed.append((index, item))
    return parsed


async def _load_stations(session: AsyncSession, items: Sequence[StatusItem]) -> list[Station]:
    """The named stations with their connectors, in two queries (they stay in the session's identity map)."""
    ids = {i.station_id for i in items if i.station_id is not None}
    keys = {(i.source, i.external_id) for i in items if i.station_id is None}
    stations: list[Station] = []
    if ids:
        stations += (await session.scalars(select(Station).where(Station.id.in_(ids)))).all()
    if keys:
        query = select(Station).where(tuple_(Station.source, Station.external_id).in_(keys))
        stations += (await session.scalars(query)).all()
    return stations


async def bulk_status(session: AsyncSession, *, items: Sequence[Any]) -> StatusResult:
    """Set the statuses of many stations and connectors in the request's transaction.

    An item naming an unknown station, or a connector of another station, is rejected whole and the other
    items are applied. The changes are written set-based by `record_status_changes`, with the status history.
    """
    errors: list[ItemError] = []
    parsed = _parse_status_items(items, errors)
    stations = await _load_stations(session, [item for _, item in parsed])
    by_id = {s.id: s for s in stations}
    by_key = {(s.source, s.external_id): s for s in stations}
    accepted: list[tuple[Station, StatusItem]] = []
    for index, item in parsed:
        if item.station_id is not None:
            station = by_id.get(item.station_id)
        else:
            station = by_key.get((item.source, item.external_id))
        if station is None:
            name = f"id {item.station_id}" if item.station_id is not None else f"{item.source}/{item.external_id}"
            errors.append(ItemError(index=index, code="station_not_found", message=f"station {name} does not exist"))
            continue
        own = {c.id for c in station.connectors}
        foreign = [c.id for c in item.connectors if c.id not in own]
        if foreign:
            errors.append(ItemError(
                index=index, code="connector_not_found",
                message=f"station {station.id} has no connector {', '.join(map(str, foreign))}",
            ))
            continue
        accepted.append((station, item))
    changes = [
        (station.id, connector_id, status.value)
        for station, item in accepted
        for connector_id, status in [(None, item.status), *((c.id, c.status) for c in item.connectors)]
        if status is not None
    ]
    history = await record_status_changes(session, changes=changes, source="bulk")
    changed_stations = {row["station_id"] for row in history}
    updated = sum(station.id in changed_stations for station, _ in accepted)
    errors.sort(key=lambda e: e.index)
    return StatusResult(updated=updated, unchanged=len(accepted) - updated, errors=errors)

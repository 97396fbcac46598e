"""Bulk writes from API clients: station upserts and status updates, each item validated and reported on its own.

Items without `external_id` are rejected (`missing_external_id`): an upsert needs the key, and creating them
anyway would make a retried request create the same stations twice. `POST /api/v1/stations` creates a
station without one.
"""

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, Field, ValidationError, model_validator
from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from voltway.charging.status import record_status_changes
from voltway.core.cache import invalidate
from voltway.core.db import Database, utcnow
from voltway.core.metrics import IMPORT_ROWS
from voltway.ingest.duplicates import link_duplicates_since
from voltway.ingest.upsert import ItemError, Items, UpsertReport, upsert_stations
from voltway.stations.models import Station
from voltway.stations.schemas import StationIn, StationStatus

MAX_BULK_ITEMS = 1000
M = TypeVar("M", bound=BaseModel)


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


def validate_station(data: Any, *, index: int, prefix: str = "") -> StationIn | ItemError:
    """One raw item as an upsertable station (it needs `external_id`), or the error naming why not."""
    station = validate_item(StationIn, data, index=index, prefix=prefix)
    if isinstance(station, StationIn) and station.external_id is None:
        return ItemError(
            index=index, code="missing_external_id", message=f"{prefix}external_id is required to upsert"
        )
    return station


# --------------------------------------------------------------------------------------- station upsert
async def import_stations(
    db: Database,
    items: Items,
    *,
    invalid: list[ItemError],
    feed: str,
    progress: Callable[[int], None] | None = None,
    link: bool = True,
) -> UpsertReport:
    """Upsert valid items, then (unless `link` is false) link duplicates among the stations written.

    `invalid` holds the items the caller rejected before the engine saw them (it may fill while `items` is
    read); they join the engine's own rejections in the report, by index. `feed` (ocm, csv, api) labels the
    import-rows metric.
    """
    started = utcnow()  # the engine stamps what it writes with the same clock
    report = await upsert_stations(db, items, progress=progress)
    report.rejected = sorted([*invalid, *report.rejected], key=lambda e: e.index)
    for result, rows in (("created", report.created), ("updated", report.updated),
                         ("unchanged", report.unchanged), ("rejected", len(report.rejected))):
        IMPORT_ROWS.labels(source=feed, result=result).inc(rows)
    if link and (report.created or report.updated):
        report.duplicates = await link_duplicates_since(db, started)
    await invalidate("stations")  # cached station answers must show what was written
    return report


class BulkResult(BaseModel):
    created: int
    updated: int
    unchanged: int
    errors: list[ItemError]


async def bulk_upsert(db: Database, *, items: Sequence[Any]) -> tuple[BulkResult, datetime | None]:
    """Validate each raw item on its own and upsert the valid ones.

    Returns the answer and, when stations were written, the time to run the duplicate rule from (the
    router runs it after the response: the answer does not depend on it).
    """
    errors: list[ItemError] = []
    valid: list[tuple[int, StationIn]] = []
    for index, data in enumerate(items):
        checked = validate_station(data, index=index)
        if isinstance(checked, ItemError):
            errors.append(checked)
        else:
            valid.append((index, checked))
    started = utcnow()
    report = await import_stations(db, valid, invalid=errors, feed="api", link=False)
    result = BulkResult(
        created=report.created, updated=report.updated, unchanged=report.unchanged, errors=report.rejected
    )
    return result, started if report.created or report.updated else None


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

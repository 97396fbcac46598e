"""Station service: the contract's station dict, lookups and writes.

Reads on the hot path run hand-written SQL (see `stations/search.py`) and shape rows into plain dicts with
`station_dict`; writes go through the ORM in the request's session.
"""

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from voltway.charging.status import record_status_change
from voltway.core.db import Database, utcnow
from voltway.core.errors import Conflict, InvalidInput, NotFound
from voltway.core.geo import haversine_from, unit_vector
from voltway.stations.models import Connector, Station
from voltway.stations.schemas import ConnectorIn, StationIn, StationPatch


class StationNotFound(NotFound):
    code = "station_not_found"


def derived_columns(
    latitude: float, longitude: float, connectors: Iterable[ConnectorIn | Mapping[str, Any]]
) -> dict[str, float | None]:
    """The stored columns computed from a station's fields: its unit vector and its highest connector power."""
    x, y, z = unit_vector(latitude, longitude)
    powers = [
        p
        for p in (c.power_kw if isinstance(c, ConnectorIn) else c.get("power_kw") for c in connectors)
        if p is not None
    ]
    return {"x": x, "y": y, "z": z, "max_power_kw": max(powers) if powers else None}


# ------------------------------------------------------------------------------------- row shaping
# The columns every station read selects, in the order `station_dict` expects them; `connectors_json` (kept
# by triggers, migration 0007) is the connectors' JSON text, embedded in answers as it is.
STATION_COLUMNS = (
    "s.id, s.source, s.external_id, s.name, s.address, s.town, s.postcode, s.country, s.latitude, s.longitude, "
    "s.operator, s.usage, s.status, s.usage_cost, s.price, s.max_power_kw, s.rating_average, s.rating_count, "
    "s.updated_at, coalesce(s.connectors_json, '[]')"
)


def _json_value(value: Any) -> Any:
    # SQLite hands JSON columns back as text; asyncpg may already have decoded them.
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def _timestamp(value: Any) -> datetime | str:
    """ISO 8601 with the UTC offset. SQLite keeps timestamps as UTC text without an offset
    ("2026-11-28 12:00:00.123456", SQLAlchemy's format: rewritten as a string, 10x cheaper than parsing);
    PostgreSQL returns aware datetimes."""
    if isinstance(value, str):
        if value[10:11] == " " and len(value) in (19, 26):
            return f"{value[:10]}T{value[11:]}+00:00"
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def station_dict(
    row: Sequence[Any], connectors: list[dict[str, Any]] | orjson.Fragment, *, distance: Callable[[float, float], float] | None = None
) -> dict[str, Any]:
    """A station row (STATION_COLUMNS) and its connectors as the contract's Station dict.

    With `distance` (`core.geo.haversine_from(lat, lon)`) the dict carries `distance_km`, rounded to metres.
    """
    station = {
        "id": row[0],
        "source": row[1],
        "external_id": row[2],
        "name": row[3],
        "address": row[4],
        "town": row[5],
        "postcode": row[6],
        "country": row[7],
        "latitude": row[8],
        "longitude": row[9],
        "operator": row[10],
        "usage": row[11],
        "status": row[12],
        "usage_cost": row[13],
        "price": _json_value(row[14]),
        "connectors": connectors,
        "max_power_kw": row[15],
        "rating": {"average": row[16], "count": row[17]},
        "updated_at": _timestamp(row[18]),
    }
    if distance is not None:
        station["distance_km"] = round(distance(row[8], row[9]), 3)
    return station


def stored_station_dicts(
    rows: Sequence[Sequence[Any]], *, origin: tuple[float, float] | None = None, embed: bool = False
) -> list[dict[str, Any]]:
    """Station rows (STATION_COLUMNS, anything may follow) as Station dicts with their stored connectors:
    parsed into lists, or with `embed` the JSON text as an `orjson.Fragment`, for dicts only rendered by orjson."""
    distance = haversine_from(*origin) if origin is not None else None
    connectors = orjson.Fragment if embed else orjson.loads
    return [station_dict(row, connectors(row[19]), distance=distance) for row in rows]


# ----------------------------------------------------------------------------------------- lookups
async def get_station_dict(db: Database, *, station_id: int) -> dict[str, Any]:
    """The Station dict of one station (linked duplicates included); StationNotFound when there is none."""
    rows = await db.fetch(f"SELECT {STATION_COLUMNS} FROM stations s WHERE s.id = :id", {"id": station_id})
    if not rows:
        raise StationNotFound(f"station {station_id} does not exist", details={"station_id": station_id})
    return stored_station_dicts(rows)[0]


async def session_station_dict(session: AsyncSession, *, station_id: int) -> dict[str, Any]:
    """The Station dict as the session sees it (including its own uncommitted writes)."""
    rows = (
        await session.execute(text(f"SELECT {STATION_COLUMNS} FROM stations s WHERE s.id = :id"), {"id": station_id})
    ).all()
    return stored_station_dicts(rows)[0]


async def get_station(session: AsyncSession, *, station_id: int) -> Station:
    """The Station row; StationNotFound when there is none."""
    station = await session.get(Station, station_id)
    if station is None:
        raise StationNotFound(f"station {station_id} does not exist", details={"station_id": station_id})
    return station


# ------------------------------------------------------------------------------------------ writes
def _connector_rows(connectors: Iterable[ConnectorIn]) -> list[Connector]:
    return [Connector(**c.model_dump(mode="json")) for c in connectors]


def _clash(source: str, external_id: str | None) -> Conflict:
    return Conflict(
        f"a station with source {source!r} and external_id {external_id!r} already exists",
        details={"source": source, "external_id": external_id},
    )


async def _flush_or_conflict(session: AsyncSession, source: str, external_id: str | None) -> None:
    """Flush; a unique violation that slipped past `_clash_check` (a concurrent write) is a 409 too."""
    try:
        await session.flush()
    except IntegrityError as exc:
        raise _clash(source, external_id) from exc


async def _clash_check(session: AsyncSession, *, source: str, external_id: str | None, station_id: int | None) -> None:
    """Raise Conflict when another station already has (source, external_id)."""
    if external_id is None:
        return
    query = select(Station.id).where(Station.source == source, Station.external_id == external_id)
    if station_id is not None:
        query = query.where(Station.id != station_id)
    if await session.scalar(query) is not None:
        raise _clash(source, external_id)


async def create_station(session: AsyncSession, *, data: StationIn) -> dict[str, Any]:
    """Insert a station with its connectors; returns its Station dict."""
    await _clash_check(session, source=data.source, external_id=data.external_id, station_id=None)
    fields = data.model_dump(mode="json", exclude={"connectors"})
    station = Station(
        **fields,
        **derived_columns(data.latitude, data.longitude, data.connectors),
        rating_count=0,
        connectors=_connector_rows(data.connectors),
    )
    session.add(station)
    await _flush_or_conflict(session, data.source, data.external_id)
    return await session_station_dict(session, station_id=station.id)


async def update_station(session: AsyncSession, *, station: Station, patch: StationPatch) -> dict[str, Any]:
    """Apply the fields present in `patch`; derived columns follow. A status change goes through
    `record_status_change` (history and live event). Returns the new Station dict."""
    changes = patch.model_dump(mode="json", exclude_unset=True, exclude={"connectors"})
    nulled = [f for f in ("name", "latitude", "longitude", "status") if f in changes and changes[f] is None]
    if nulled:
        raise InvalidInput(
            f"invalid input: {', '.join(nulled)} (cannot be null)",
            details=[{"field": f, "in": "body", "message": "cannot be null"} for f in nulled],
        )
    if "external_id" in changes:
        await _clash_check(
            session, source=station.source, external_id=changes["external_id"], station_id=station.id
        )
    new_status = changes.pop("status", None)
    if new_status is not None:
        # First: record_status_change re-reads the row, which would drop attributes assigned before it.
        await record_status_change(session, station_id=station.id, connector_id=None, status=new_status, source="api")
    for field, value in changes.items():
        setattr(station, field, value)
    connectors: list[ConnectorIn | Mapping[str, Any]]
    if patch.connectors is not None:
        station.connectors = _connector_rows(patch.connectors)
        connectors = list(patch.connectors)
    else:
        connectors = [{"power_kw": c.power_kw} for c in station.connectors]
    for column, value in derived_columns(station.latitude, station.longitude, connectors).items():
        setattr(station, column, value)
    station.updated_at = utcnow()
    await _flush_or_conflict(session, station.source, station.external_id)
    return await session_station_dict(session, station_id=station.id)


async def delete_station(session: AsyncSession, *, station: Station) -> None:
    await session.delete(station)
    await session.flush()

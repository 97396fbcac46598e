"""The one way to change the status of a station or a connector: set it and record it in the history.

Every writer (charging sessions, the station PATCH, bulk status updates, imports) calls
`record_status_change` (or its set-based form `record_status_changes`) instead of assigning `.status`
itself, so that the history behind the analytics (utilization) and the live map is complete.
"""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from voltway.charging.models import StatusChange
from voltway.core.db import utcnow
from voltway.core.errors import NotFound
from voltway.realtime.notify import announce_status_change
from voltway.stations.models import Connector, Station


async def record_status_change(
    session: AsyncSession, *, station_id: int, connector_id: int | None, status: str, source: str
) -> StatusChange | None:
    """Set the status of connector `connector_id` of the station (or of the station itself when
    `connector_id` is None) and add a history row. Returns the row, or None when the status was already
    `status` (nothing is written then). Raises NotFound for an unknown station or connector."""
    # Re-read and lock the row: the status in the identity map may predate a concurrent change.
    target: Station | Connector | None
    if connector_id is None:
        target = await session.get(Station, station_id, populate_existing=True, with_for_update=True)
    else:
        target = await session.get(Connector, connector_id, populate_existing=True, with_for_update=True)
        if target is not None and target.station_id != station_id:
            target = None
    if target is None:
        what = "station" if connector_id is None else "connector"
        raise NotFound(f"{what} {connector_id if connector_id is not None else station_id} not found")
    previous = target.status
    if previous == status:
        return None
    target.status = status
    change = StatusChange(
        station_id=station_id,
        connector_id=connector_id,
        status=status,
        previous_status=previous,
        changed_at=utcnow(),
        source=source,
    )
    session.add(change)
    await session.flush()
    # Live map clients get the change once the transaction commits.
    await announce_status_change(
        session, station_id=station_id, connector_id=connector_id, status=status, at=change.changed_at
    )
    return change


async def record_status_changes(
    session: AsyncSession, *, changes: Sequence[tuple[int, int | None, str]], source: str
) -> list[dict[str, Any]]:
    """The set-based form of `record_status_change` for bulk writers: `changes` are (station_id,
    connector_id or None, status) of targets the caller has checked exist (a connector with its station).

    The targets are locked and read in two queries, the changed ones written with one UPDATE per table and
    one INSERT into the history; targets already at their status are skipped. Returns the history rows.
    Announcing each change reads its station from the session, so callers that loaded the stations pay nothing.
    """
    station_ids = {s for s, c, _ in changes if c is None}
    connector_ids = {c for _, c, _ in changes if c is not None}
    current: dict[tuple[str, int], str] = {}
    if station_ids:
        rows = await session.execute(
            select(Station.id, Station.status).where(Station.id.in_(station_ids)).with_for_update()
        )
        current.update((("station", sid), status) for sid, status in rows)
    if connector_ids:
        rows = await session.execute(
            select(Connector.id, Connector.status).where(Connector.id.in_(connector_ids)).with_for_update()
        )
        current.update((("connector", cid), status) for cid, status in rows)
    now = utcnow()
    history: list[dict[str, Any]] = []
    changed: set[tuple[str, int]] = set()
    for station_id, connector_id, status in changes:
        key = ("station", station_id) if connector_id is None else ("connector", connector_id)
        previous = current[key]
        if previous == status:
            continue
        current[key] = status
        changed.add(key)
        history.append({
            "station_id": station_id, "connector_id": connector_id, "status": status, "previous_status": previous,
            "changed_at": now, "source": source,
        })
    if not history:
        return []
    # Core statements (executemany), not ORM bulk operations: an order of magnitude faster for thousands of rows.
    tables = (("station", Station.__table__, {"updated_at": now}), ("connector", Connector.__table__, {}))
    for kind, table, extra in tables:
        rows = [{"target": i, "new_status": current[(k, i)]} for k, i in changed if k == kind]
        if rows:
            statement = update(table).where(table.c.id == bindparam("target"))
            await session.execute(statement.values(status=bindparam("new_status"), **extra), rows)
    await session.execute(insert(StatusChange.__table__), history)
    for row in history:
        await announce_status_change(
            session, station_id=row["station_id"], connector_id=row["connector_id"], status=row["status"], at=now
        )
    return history

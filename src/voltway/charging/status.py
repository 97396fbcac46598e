"""The one way to change the status of a station or a connector: set it and record it in the history.

Every writer (charging sessions, the station PATCH, bulk status updates, imports) calls
`record_status_change` instead of assigning `.status` itself, so that the history behind the analytics
(utilization) and the live map is complete.
"""

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

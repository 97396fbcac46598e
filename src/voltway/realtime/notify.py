"""Status changes reach live clients only once their transaction has committed.

`announce_status_change` (called by `charging.status.record_status_change`) keeps the event on the session;
the session's `after_commit` hands the kept events to the hub, and a rollback drops them, so a client never
sees a status that was not written.
"""

from datetime import datetime

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from voltway.realtime.hub import StatusEvent, hub
from voltway.stations.models import Station

PENDING_KEY = "voltway.realtime.pending"


async def announce_status_change(
    session: AsyncSession, *, station_id: int, connector_id: int | None, status: str, at: datetime
) -> None:
    station = await session.get(Station, station_id)
    if station is None:
        return
    pending: list[StatusEvent] = session.info.setdefault(PENDING_KEY, [])
    pending.append(StatusEvent(station_id, connector_id, status, at, station.latitude, station.longitude))


@event.listens_for(Session, "after_commit")
def _publish_pending(session: Session) -> None:
    for status_event in session.info.pop(PENDING_KEY, ()):
        hub.publish(status_event)


@event.listens_for(Session, "after_transaction_end")
def _drop_rolled_back(session: Session, transaction: SessionTransaction) -> None:
    # After a commit the list is already gone; what is left at the end of the outermost transaction was
    # rolled back.
    if transaction.parent is None:
        session.info.pop(PENDING_KEY, None)

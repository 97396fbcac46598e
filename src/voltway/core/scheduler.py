"""Periodic jobs on cron-like times (croniter syntax, UTC), each slot fired once across all processes.

Every process that runs the scheduler (the app, `voltway worker`) ticks; the first to insert the row
(schedule name, slot) into `schedule_runs` enqueues the job in the same transaction, the others hit the
unique key and move on. Only slots that begin after the scheduler started fire (no burst of catch-up runs).

    schedule("analytics-rollup-hourly", "5 * * * *", kind="analytics.rollup")
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from croniter import croniter
from sqlalchemy.exc import IntegrityError

from voltway.core.db import Database, to_the_end, utcnow
from voltway.core.jobs import ScheduleRun, enqueue
from voltway.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Schedule:
    name: str
    cron: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    # Fire only when this is true of the settings (e.g. an API key is configured).
    enabled: Callable[[Settings], bool] | None = None


SCHEDULES: dict[str, Schedule] = {}


def schedule(
    name: str, cron: str, *, kind: str, params: dict[str, Any] | None = None,
    enabled: Callable[[Settings], bool] | None = None,
) -> Schedule:
    """Register a periodic job. `cron`: 5 fields (minute resolution) or 6 (a trailing seconds field)."""
    if not croniter.is_valid(cron):
        raise ValueError(f"schedule {name!r}: invalid cron expression {cron!r}")
    SCHEDULES[name] = entry = Schedule(name, cron, kind, params or {}, enabled)
    return entry


def latest_slot(entry: Schedule, now: datetime) -> datetime:
    """The most recent slot at or before `now`."""
    return croniter(entry.cron, now.replace(microsecond=0) + timedelta(seconds=1)).get_prev(datetime)


async def fire(db: Database, entry: Schedule, slot: datetime) -> int | None:
    """Enqueue `entry`'s job for `slot` unless a process already did; returns the job id when this one did."""
    try:
        async with db.sessionmaker.begin() as session:
            run = ScheduleRun(name=entry.name, slot=slot, created_at=utcnow())
            session.add(run)
            await session.flush()
            run.job_id = job_id = await enqueue(entry.kind, entry.params, session=session)
    except IntegrityError:
        return None
    log.info("schedule %s fired for %s: job %s", entry.name, slot.isoformat(), job_id, extra={"job_id": job_id})
    return job_id


class Scheduler:
    """Ticks in one process; the database decides which process fires a slot."""

    def __init__(self, db: Database, settings: Settings, *, tick: float = 1.0) -> None:
        self.db = db
        self.settings = settings
        self.tick = tick
        self.started = utcnow().replace(microsecond=0)
        self._last: dict[str, datetime] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="voltway-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def run_due(self, now: datetime | None = None) -> list[int]:
        """Fire every enabled schedule whose latest slot is new to this process; returns the jobs it enqueued."""
        now = now or utcnow()
        fired = []
        for entry in list(SCHEDULES.values()):
            if entry.enabled is not None and not entry.enabled(self.settings):
                continue
            slot = latest_slot(entry, now)
            if slot <= self.started or self._last.get(entry.name) == slot:
                continue
            self._last[entry.name] = slot
            job_id = await fire(self.db, entry, slot)
            if job_id is not None:
                fired.append(job_id)
        return fired

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            try:
                # Stopped (cancelled) mid-tick, the tick's statements finish first: a statement cancelled half-way
                # leaves its aiosqlite thread to answer a loop that may be closed by then.
                await to_the_end(self.run_due())
            except Exception:  # noqa: BLE001 - a failed tick (database restarting) must not stop the scheduler
                log.exception("scheduler tick failed")

"""Running jobs: claim a record, run its handler with a heartbeat and a timeout, record the outcome.

The job record in the database is the source of truth. Whatever delivers a job id (the in-process poller in
embedded mode, an SAQ queue on Redis at scale), `execute()` first claims the record with one conditional
UPDATE — pending and due, or running with an expired lease (its process died) — so a duplicate delivery is
harmless and a job runs once per attempt. Failures are retried with exponential backoff up to the kind's
`max_attempts`; a heartbeat keeps the lease and notices a cancellation (`DELETE /api/v1/jobs/{id}`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError
from sqlalchemy import and_, event, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from voltway.core.db import Database, to_the_end, utcnow
from voltway.core.jobs.models import Job, JobStatus
from voltway.core.metrics import JOB_DURATION, JOBS, QUEUE_DEPTH
from voltway.settings import Settings

if TYPE_CHECKING:
    from saq import Queue

log = logging.getLogger(__name__)

Handler = Callable[["JobContext", dict[str, Any]], Awaitable[dict[str, Any] | None]]
BACKOFF_BASE = 2.0
BACKOFF_MAX = 300.0


@dataclass(frozen=True)
class JobSpec:
    kind: str
    handler: Handler
    timeout: float
    max_attempts: int


REGISTRY: dict[str, JobSpec] = {}


def job(kind: str, *, timeout: float = 600, max_attempts: int = 3) -> Callable[[Handler], Handler]:
    """Register `handler(ctx, params) -> result dict | None` as the job kind `kind`."""

    def register(handler: Handler) -> Handler:
        if kind in REGISTRY and REGISTRY[kind].handler is not handler:
            raise ValueError(f"job kind {kind!r} is already registered")
        REGISTRY[kind] = JobSpec(kind, handler, timeout, max_attempts)
        return handler

    return register


def backoff(attempt: int) -> float:
    """Seconds to wait before retrying after failed attempt number `attempt` (1-based): 2, 4, 8, ... 300."""
    return min(BACKOFF_BASE ** attempt, BACKOFF_MAX)


class JobCancelled(Exception):
    """The job was cancelled (or taken over after its lease expired) while it ran."""


class JobContext:
    """What a handler gets: its record's id and attempt, the database, the settings, progress reporting."""

    def __init__(self, *, job_id: int, kind: str, params: dict[str, Any], attempt: int, runtime: JobRuntime):
        self.job_id = job_id
        self.kind = kind
        self.params = params
        self.attempt = attempt
        self.db: Database = runtime.db
        self.settings: Settings = runtime.settings

    def session(self) -> AsyncSession:
        """A new session of the job's own; commit it yourself."""
        return self.db.sessionmaker()

    async def progress(self, value: float) -> None:
        """Record progress (0..1) and renew the lease; raises JobCancelled if the job was cancelled."""
        if not await _touch(self.db, self.job_id, self.attempt, progress=max(0.0, min(1.0, value))):
            raise JobCancelled(f"job {self.job_id} was cancelled")


async def _touch(db: Database, job_id: int, attempt: int, **values: Any) -> bool:
    """Update the running attempt's record; False when it is no longer ours (cancelled or taken over)."""
    async with db.engine.begin() as conn:
        result = await conn.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.running, Job.attempts == attempt)
            .values(heartbeat_at=utcnow(), **values)
        )
    return result.rowcount == 1


def _due(now: datetime, lease: float) -> Any:
    """Jobs that may be claimed now: pending and due, or running with an expired lease."""
    return or_(
        and_(Job.status == JobStatus.pending, Job.run_after <= now),
        and_(Job.status == JobStatus.running, Job.heartbeat_at < now - timedelta(seconds=lease)),
    )


class JobRuntime:
    """The jobs machinery of one process: delivery (in-process poller or SAQ) and execution."""

    def __init__(self, db: Database, settings: Settings, *, poll_interval: float = 1.0) -> None:
        self.db = db
        self.settings = settings
        self.lease = settings.job_lease_seconds
        self.heartbeat_interval = min(5.0, self.lease / 4)
        self.poll_interval = poll_interval
        self.queue: Queue | None = None
        self._wake = asyncio.Event()
        self._running: dict[int, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._poller: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------------------- delivery
    async def start(self, *, run_jobs: bool) -> None:
        """Connect the queue (Redis mode); with `run_jobs`, poll the database and run jobs in this process."""
        if self.settings.redis_url:
            from saq import Queue

            self.queue = Queue.from_url(self.settings.redis_url, name=f"{self.settings.redis_prefix}:jobs")
            await self.queue.connect()
        if run_jobs:
            self._poller = asyncio.create_task(self._poll_loop(), name="voltway-jobs-poller")

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
        for task in [*self._running.values(), *self._tasks]:
            task.cancel()
        await asyncio.gather(*self._running.values(), *self._tasks, return_exceptions=True)
        if self._poller is not None:
            await asyncio.gather(self._poller, return_exceptions=True)
        if self.queue is not None:
            try:
                await self.queue.disconnect()
            except (OSError, RedisError) as exc:  # Redis already gone: nothing left to close cleanly
                log.warning("job queue: Redis unreachable at shutdown (%s)", exc)

    def deliver_soon(self, job_id: int, attempts: int = 0, delay: float = 0.0) -> None:
        """Hand a committed job to whoever runs jobs: the local poller, else the Redis queue."""
        if self._poller is not None:
            loop = asyncio.get_running_loop()
            loop.call_later(delay, self._wake.set) if delay else self._wake.set()
        elif self.queue is not None:
            self._spawn(self._push(job_id, attempts, delay))

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _push(self, job_id: int, attempts: int, delay: float) -> None:
        assert self.queue is not None
        spec = await self._spec_of(job_id)
        try:
            await self.queue.enqueue(
                "run_job",
                job_id=job_id,
                # One queue entry per attempt: re-deliveries of the same attempt collapse while it is queued.
                key=f"{job_id}.{attempts}",
                scheduled=int(time.time() + delay + 0.999) if delay else 0,
                timeout=int((spec.timeout if spec else 600) + 60),
                retries=1,
                ttl=1,
            )
        except Exception as exc:  # noqa: BLE001 - Redis down: the sweeper re-delivers from the database
            log.warning("could not queue job %s: %s", job_id, exc, extra={"job_id": job_id})

    async def _spec_of(self, job_id: int) -> JobSpec | None:
        async with self.db.sessionmaker() as session:
            kind = await session.scalar(select(Job.kind).where(Job.id == job_id))
        return REGISTRY.get(kind) if kind else None

    async def _poll_loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await to_the_end(self._claim_free_slots())  # as the scheduler's tick (core/scheduler.py)
            except Exception:  # noqa: BLE001 - a failed poll (database restarting) must not stop the runner
                log.exception("job poll failed")

    async def report_depth(self) -> None:
        """Set the queue-depth gauge to the number of pending jobs (the database is the queue's truth)."""
        async with self.db.sessionmaker() as session:
            pending = await session.scalar(select(func.count()).select_from(Job).where(Job.status == JobStatus.pending))
        QUEUE_DEPTH.labels(queue="default").set(pending or 0)

    async def _claim_free_slots(self) -> None:
        await self.report_depth()
        free = self.settings.max_workers - len(self._running)
        if free <= 0:
            return
        for job_id in await self.due_jobs(limit=free, exclude=list(self._running)):
            task = asyncio.create_task(self.execute(job_id), name=f"voltway-job-{job_id}")
            self._running[job_id] = task
            task.add_done_callback(lambda _t, i=job_id: (self._running.pop(i, None), self._wake.set()))

    async def due_jobs(self, *, limit: int, exclude: list[int] | None = None, grace: float = 0.0) -> list[int]:
        now = utcnow() - timedelta(seconds=grace)
        query = select(Job.id).where(_due(now, self.lease)).order_by(Job.run_after, Job.id).limit(limit)
        if exclude:
            query = query.where(Job.id.not_in(exclude))
        async with self.db.sessionmaker() as session:
            return list((await session.scalars(query)).all())

    async def sweep(self) -> int:
        """Re-deliver jobs the queue lost (Redis was down at enqueue) or whose worker died; returns how many."""
        await self.report_depth()
        ids = await self.due_jobs(limit=100, grace=self.heartbeat_interval)
        async with self.db.sessionmaker() as session:
            rows = (await session.execute(select(Job.id, Job.attempts).where(Job.id.in_(ids)))).all()
        for job_id, attempts in rows:
            await self._push(job_id, attempts, 0.0)
        return len(rows)

    # --------------------------------------------------------------------------- execution
    async def _claim(self, job_id: int) -> Job | None:
        now = utcnow()
        async with self.db.engine.begin() as conn:
            claimed = await conn.execute(
                update(Job)
                .where(Job.id == job_id, _due(now, self.lease))
                .values(status=JobStatus.running, attempts=Job.attempts + 1, started_at=now, heartbeat_at=now)
            )
        if claimed.rowcount != 1:
            return None
        async with self.db.sessionmaker() as session:
            return await session.get(Job, job_id)

    async def execute(self, job_id: int) -> None:
        """Claim and run one job attempt; a no-op when the job is not due or another process holds it."""
        record = await self._claim(job_id)
        if record is None:
            return
        attempt, kind = record.attempts, record.kind
        spec = REGISTRY.get(kind)
        if spec is None:
            await self._finish(job_id, attempt, JobStatus.failed, error=f"unknown job kind {kind!r}")
            return
        if attempt > record.max_attempts:  # its last attempt's process died
            await self._finish(job_id, attempt, JobStatus.failed, error="the worker running it stopped; no attempts left")
            return
        JOBS.labels(kind=kind, status="started").inc()
        ctx = JobContext(job_id=job_id, kind=kind, params=record.params, attempt=attempt, runtime=self)
        handler = asyncio.create_task(spec.handler(ctx, record.params))
        lost = asyncio.Event()
        heartbeat = asyncio.create_task(self._heartbeat(job_id, attempt, handler, lost))
        started = time.perf_counter()
        try:
            result = await asyncio.wait_for(handler, spec.timeout)
        except TimeoutError:
            await self._failed(spec, job_id, attempt, f"timed out after {spec.timeout:g} s")
        except JobCancelled:
            log.info("job %s stopped: cancelled", job_id, extra={"job_id": job_id})
        except asyncio.CancelledError:
            if not lost.is_set():
                raise  # this process is shutting down: the lease expires and another process retries
            log.info("job %s stopped: cancelled or taken over", job_id, extra={"job_id": job_id})
        except Exception as exc:  # noqa: BLE001 - any handler failure is recorded and retried
            log.warning("job %s (%s) attempt %s failed: %r", job_id, kind, attempt, exc, extra={"job_id": job_id})
            await self._failed(spec, job_id, attempt, f"{type(exc).__name__}: {exc}")
        else:
            if await self._finish(job_id, attempt, JobStatus.completed, result=result):
                JOBS.labels(kind=kind, status="completed").inc()
        finally:
            heartbeat.cancel()
            JOB_DURATION.labels(kind=kind).observe(time.perf_counter() - started)

    async def _heartbeat(self, job_id: int, attempt: int, handler: asyncio.Task[Any], lost: asyncio.Event) -> None:
        while not handler.done():
            await asyncio.sleep(self.heartbeat_interval)
            if not await _touch(self.db, job_id, attempt):
                lost.set()
                handler.cancel()
                return

    async def _failed(self, spec: JobSpec, job_id: int, attempt: int, error: str) -> None:
        if attempt < spec.max_attempts:
            delay = backoff(attempt)
            retried = await self._finish(
                job_id, attempt, JobStatus.pending, error=error, run_after=utcnow() + timedelta(seconds=delay)
            )
            if retried:
                JOBS.labels(kind=spec.kind, status="retried").inc()
                self.deliver_soon(job_id, attempt, delay)
        elif await self._finish(job_id, attempt, JobStatus.failed, error=error):
            JOBS.labels(kind=spec.kind, status="failed").inc()

    async def _finish(self, job_id: int, attempt: int, status: JobStatus, **values: Any) -> bool:
        """Record an attempt's outcome, unless the job was cancelled or taken over meanwhile."""
        if status in (JobStatus.completed, JobStatus.failed):
            values["finished_at"] = utcnow()
        if status is JobStatus.completed:
            values["progress"] = 1.0
        async with self.db.engine.begin() as conn:
            result = await conn.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == JobStatus.running, Job.attempts == attempt)
                .values(status=status, **values)
            )
        return result.rowcount == 1


_runtime: JobRuntime | None = None


def set_runtime(runtime: JobRuntime | None) -> None:
    global _runtime
    _runtime = runtime


def get_runtime() -> JobRuntime | None:
    return _runtime


async def enqueue(
    kind: str, params: dict[str, Any] | None = None, *, session: AsyncSession | None = None,
    db: Database | None = None,
) -> int:
    """Record a job and return its id; it is delivered once the transaction commits.

    With `session`, the record joins that transaction (a rollback means the job never runs); otherwise the
    record is committed at once through `db` (default: this process's runtime database).
    """
    spec = REGISTRY.get(kind)
    if spec is None:
        raise ValueError(f"unknown job kind {kind!r}")
    record = Job(kind=kind, params=params or {}, status=JobStatus.pending, max_attempts=spec.max_attempts,
                 progress=0.0, attempts=0, created_at=utcnow(), run_after=utcnow())
    if session is None:
        database = db or (_runtime.db if _runtime else None)
        if database is None:
            raise RuntimeError("enqueue() needs a session or a database outside a running app")
        async with database.sessionmaker.begin() as own:
            own.add(record)
        _after_commit(record.id)
    else:
        session.add(record)
        await session.flush()
        job_id = record.id
        event.listen(session.sync_session, "after_commit", lambda _s: _after_commit(job_id), once=True)
    JOBS.labels(kind=kind, status="enqueued").inc()
    return record.id


def _after_commit(job_id: int) -> None:
    if _runtime is not None:
        _runtime.deliver_soon(job_id)

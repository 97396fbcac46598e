"""Background jobs: named kinds with timeouts and retries, records in the database, delivered after commit.

    @job("analytics.rollup", timeout=300, max_attempts=3)
    async def rollup(ctx: JobContext, params: dict) -> dict | None: ...

    job_id = await enqueue("analytics.rollup", {"day": "2026-11-28"}, session=session)
"""

from voltway.core.jobs.models import FINISHED, Job, JobStatus, ScheduleRun
from voltway.core.jobs.runtime import (
    REGISTRY,
    JobCancelled,
    JobContext,
    JobRuntime,
    JobSpec,
    backoff,
    enqueue,
    get_runtime,
    job,
    set_runtime,
)

__all__ = [
    "FINISHED",
    "REGISTRY",
    "Job",
    "JobCancelled",
    "JobContext",
    "JobRuntime",
    "JobSpec",
    "JobStatus",
    "ScheduleRun",
    "backoff",
    "enqueue",
    "get_runtime",
    "job",
    "set_runtime",
]

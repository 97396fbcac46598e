"""Starting and stopping the platform layer of one process: cache, rate limiter, jobs, scheduler."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from voltway.core.cache import cache, configure_cache
from voltway.core.db import Database
from voltway.core.jobs import JobRuntime, set_runtime
from voltway.core.ratelimit import limiter
from voltway.core.scheduler import Scheduler
from voltway.jobs import handlers  # noqa: F401 - registers every job kind and schedule
from voltway.settings import Settings


@asynccontextmanager
async def run_platform(db: Database, settings: Settings, *, run_jobs: bool) -> AsyncIterator[JobRuntime]:
    """Configure the cache and the limiter, start the job runtime (running jobs here when `run_jobs`) and
    the scheduler; undo it all on exit."""
    configure_cache(settings)
    cache.start()
    limiter.configure(redis_url=settings.redis_url, prefix=settings.redis_prefix, overrides=settings.rate_limits)
    runtime = JobRuntime(db, settings)
    await runtime.start(run_jobs=run_jobs)
    set_runtime(runtime)
    scheduler = Scheduler(db, settings)
    scheduler.start()
    try:
        yield runtime
    finally:
        await scheduler.stop()
        await runtime.stop()
        set_runtime(None)
        await cache.close()

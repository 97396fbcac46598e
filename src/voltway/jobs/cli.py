"""`voltway worker`: a job worker process for the scale-out mode (REDIS_URL set)."""

from __future__ import annotations

import asyncio
import importlib
import logging
from typing import TYPE_CHECKING, Annotated

import typer

from voltway.core.commands import settings_or_exit

if TYPE_CHECKING:
    from voltway.core.jobs import JobRuntime
    from voltway.settings import Settings

log = logging.getLogger(__name__)


async def run_worker(settings: Settings, *, concurrency: int) -> None:
    """Consume job ids from the SAQ queue until SIGINT/SIGTERM; sweep lost and orphaned jobs meanwhile."""
    from saq import Worker

    from voltway.core.db import Database
    from voltway.jobs.platform import run_platform

    db = Database(settings.database_url)
    try:
        async with run_platform(db, settings, run_jobs=False) as runtime:
            assert runtime.queue is not None

            async def run_job(_ctx: object, *, job_id: int) -> None:
                await runtime.execute(job_id)

            worker = Worker(runtime.queue, functions=[("run_job", run_job)], concurrency=concurrency)
            sweeper = asyncio.create_task(_sweep_forever(runtime))
            try:
                await worker.start()
            finally:
                sweeper.cancel()
    finally:
        await db.dispose()


async def _sweep_forever(runtime: JobRuntime) -> None:
    while True:
        await asyncio.sleep(runtime.heartbeat_interval)
        try:
            await runtime.sweep()
        except Exception:  # noqa: BLE001 - a failed sweep (database or Redis restarting) is retried next time
            log.exception("job sweep failed")


def worker(
    concurrency: Annotated[int | None, typer.Option(min=1, help="Concurrent jobs (default MAX_WORKERS)")] = None,
    module: Annotated[
        list[str] | None, typer.Option(help="Extra module registering job kinds (repeatable)")
    ] = None,
) -> None:
    """Run a job worker: takes jobs from the Redis queue (needs REDIS_URL) and runs them."""
    from voltway.core.logging import configure_logging
    from voltway.migrations import upgrade

    settings = settings_or_exit()
    if not settings.redis_url:
        typer.secho("voltway worker needs REDIS_URL (without it, `voltway serve` runs jobs itself)", fg="red", err=True)
        raise typer.Exit(2)
    configure_logging(settings)
    upgrade(settings.database_url)
    for name in module or ():
        importlib.import_module(name)
    asyncio.run(run_worker(settings, concurrency=concurrency or settings.max_workers))

"""Housekeeping jobs: forget old job records and the files they left behind; warm the station cache."""

import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import delete, select

from voltway.core.cache import cache
from voltway.core.db import Database, utcnow
from voltway.core.jobs import FINISHED, Job, JobContext, ScheduleRun, job
from voltway.core.scheduler import schedule
from voltway.settings import Settings

if TYPE_CHECKING:  # the worker command imports this module; the replay app is built only when a job runs
    from fastapi import FastAPI

KEEP_DAYS = 7


@job("jobs.cleanup", timeout=600, max_attempts=3)
async def cleanup(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """Delete jobs finished more than `keep_days` ago, schedule slots as old, and stale import/export files."""
    keep_days = float(params.get("keep_days", KEEP_DAYS))
    cutoff = utcnow() - timedelta(days=keep_days)
    async with ctx.session() as session:
        old = select(Job.id).where(Job.status.in_(FINISHED), Job.finished_at < cutoff)
        jobs = (await session.execute(delete(Job).where(Job.id.in_(old)))).rowcount
        slots = (await session.execute(delete(ScheduleRun).where(ScheduleRun.created_at < cutoff))).rowcount
        await session.commit()
    files = 0
    oldest_mtime = time.time() - keep_days * 86400
    for folder in ("exports", "imports"):
        directory = ctx.settings.data_dir / folder
        for path in directory.glob("*") if directory.is_dir() else ():
            if path.is_file() and path.stat().st_mtime < oldest_mtime:
                path.unlink(missing_ok=True)
                files += 1
    return {"jobs": jobs, "schedule_runs": slots, "files": files}


schedule("jobs-cleanup", "17 3 * * *", kind="jobs.cleanup")


_replay_apps: dict[int, "FastAPI"] = {}


def _replay_app(db: Database, settings: Settings) -> "FastAPI":
    """The app's own routes, for replaying GETs inside a job (no lifespan: the platform is already running)."""
    from voltway.app import create_app

    if id(db) not in _replay_apps:
        app = create_app(settings)
        app.state.db = db
        _replay_apps.clear()  # one database per process, except in tests
        _replay_apps[id(db)] = app
    return _replay_apps[id(db)]


@job("cache.warmup", timeout=300, max_attempts=1)
async def warm_up(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """Compute the `limit` station answers recomputed most often, so the next request finds them cached."""
    paths = await cache.popular("stations", int(params.get("limit", 50)))
    warmed = 0
    if paths:
        transport = httpx.ASGITransport(app=_replay_app(ctx.db, ctx.settings))
        async with httpx.AsyncClient(transport=transport, base_url="http://warm-up") as client:
            for path in paths:
                warmed += (await client.get(path)).status_code == 200
    return {"paths": len(paths), "warmed": warmed}


schedule("cache-warmup", "*/5 * * * *", kind="cache.warmup")

"""Housekeeping jobs: forget old job records and the files they left behind."""

import time
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select

from voltway.core.db import utcnow
from voltway.core.jobs import FINISHED, Job, JobContext, ScheduleRun, job
from voltway.core.scheduler import schedule

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

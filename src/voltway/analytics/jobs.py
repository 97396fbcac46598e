"""The analytics rollup job: incremental every hour (a few minutes past, when the hour has closed)."""

from typing import Any

from voltway.analytics.rollups import rebuild, refresh
from voltway.core.db import utcnow
from voltway.core.jobs import JobContext, job
from voltway.core.scheduler import schedule

ROLLUP_KIND = "analytics.rollup"


@job(ROLLUP_KIND, timeout=900, max_attempts=3)
async def rollup(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """Roll up the hours closed since the last run (`{"rebuild": true}` recomputes everything).

    Idempotent: each run replaces the rollups of the hours it covers, in one transaction."""
    async with ctx.session() as session:
        step = rebuild if params.get("rebuild") else refresh
        result = await step(session, now=utcnow())
        await session.commit()
    return result


schedule("analytics-rollup-hourly", "5 * * * *", kind=ROLLUP_KIND)

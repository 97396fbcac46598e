"""Job kinds used by the platform tests (also loaded by `voltway worker --module sample_jobs`).

Each writes one line per event to the file named in its params, so a test can count what really ran.
"""

import asyncio
import os
from pathlib import Path
from typing import Any

from voltway.core.jobs import JobContext, job
from voltway.core.scheduler import schedule


def note(params: dict[str, Any], line: str) -> None:
    with Path(params["log"]).open("a") as out:
        out.write(line + "\n")


@job("test.steps", timeout=30, max_attempts=3)
async def steps(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """Sleeps `steps` x `pause` seconds, reporting progress; logs start and done."""
    note(params, f"start {ctx.job_id} {ctx.attempt}")
    count = int(params.get("steps", 1))
    for step in range(count):
        await asyncio.sleep(float(params.get("pause", 0.0)))
        await ctx.progress((step + 1) / count)
    note(params, f"done {ctx.job_id}")
    return {"steps": count}


@job("test.flaky", timeout=30, max_attempts=3)
async def flaky(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """Fails its first `failures` attempts."""
    note(params, f"attempt {ctx.attempt}")
    if ctx.attempt <= int(params["failures"]):
        raise RuntimeError(f"planned failure {ctx.attempt}")
    return {"attempt": ctx.attempt}


@job("test.slow", timeout=0.5, max_attempts=1)
async def slow(ctx: JobContext, params: dict[str, Any]) -> None:
    note(params, "start")
    await asyncio.sleep(5)
    note(params, "done")


if os.environ.get("VOLTWAY_TEST_SCHEDULE_LOG"):  # only in the processes of the schedule test
    schedule("test-every-2s", "* * * * * */2", kind="test.steps", params={"log": os.environ["VOLTWAY_TEST_SCHEDULE_LOG"]})

"""Schedules: cron slots, each fired once across processes (a unique row per schedule and slot)."""

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.platform.conftest import Processes, process_env, wait_for_job
from sqlalchemy import select

from voltway.core.db import Database
from voltway.core.jobs import Job, ScheduleRun
from voltway.core import scheduler as scheduler_module
from voltway.core.scheduler import Schedule, Scheduler, latest_slot, schedule
from voltway.settings import Settings

pytestmark = pytest.mark.usefixtures("backend")


def test_latest_slot() -> None:
    hourly = Schedule("h", "5 * * * *", "k")
    at = datetime(2026, 1, 1, 12, 5, 0, tzinfo=UTC)
    assert latest_slot(hourly, at) == at
    assert latest_slot(hourly, at + timedelta(minutes=59, seconds=59)) == at
    assert latest_slot(hourly, at - timedelta(microseconds=1)) == at - timedelta(hours=1)
    every_2s = Schedule("s", "* * * * * */2", "k")
    assert latest_slot(every_2s, datetime(2026, 1, 1, 12, 0, 7, 999, tzinfo=UTC)) == datetime(2026, 1, 1, 12, 0, 6, tzinfo=UTC)


def test_a_bad_cron_expression_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid cron"):
        schedule("bad", "61 * * * *", kind="test.steps")


async def test_a_slot_fires_once_whichever_scheduler_ticks(
    db: Database, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    only = {
        "t": Schedule("t", "*/10 * * * *", "test.steps", {"log": str(tmp_path / "log")}),
        "off": Schedule("off", "* * * * *", "test.steps", {}, enabled=lambda s: bool(s.ocm_api_key)),
    }
    monkeypatch.setattr(scheduler_module, "SCHEDULES", only)
    ticks = [Scheduler(db, settings) for _ in range(4)]
    for s in ticks:
        s.started = datetime(2026, 1, 1, tzinfo=UTC)
    now = datetime(2026, 1, 1, 12, 34, 56, tzinfo=UTC)
    fired = await asyncio.gather(*(s.run_due(now) for s in ticks))
    assert sorted(len(f) for f in fired) == [0, 0, 0, 1]
    (job_id,) = [j for f in fired for j in f]
    async with db.sessionmaker() as session:
        runs = (await session.execute(select(ScheduleRun.name, ScheduleRun.slot, ScheduleRun.job_id))).all()
    assert [(n, s.replace(tzinfo=UTC), j) for n, s, j in runs] == [("t", datetime(2026, 1, 1, 12, 30, tzinfo=UTC), job_id)]
    assert (await wait_for_job(db, job_id)).status == "completed"
    # The same slot again, from a process that has not seen it: nothing more.
    late = Scheduler(db, settings)
    late.started = ticks[0].started
    assert await late.run_due(now + timedelta(minutes=5)) == []


@pytest.mark.redis
async def test_two_worker_processes_fire_each_slot_once(
    redis_settings: Settings, processes: Processes, db: Database, tmp_path: Path
) -> None:
    log = tmp_path / "scheduled.log"
    env = process_env(redis_settings, VOLTWAY_TEST_SCHEDULE_LOG=str(log))
    for name in ("worker1", "worker2"):
        processes.start(["worker", "--module", "sample_jobs"], env, name)
    for _ in range(400):  # until both are up and three slots have passed
        async with db.sessionmaker() as session:
            query = select(ScheduleRun.slot).where(ScheduleRun.name == "test-every-2s")  # as asserted below
            if len((await session.scalars(query)).all()) >= 4:
                break
        await asyncio.sleep(0.1)
    processes.stop_all()
    async with db.sessionmaker() as session:
        slots = (await session.execute(select(ScheduleRun.slot, ScheduleRun.job_id).where(ScheduleRun.name == "test-every-2s"))).all()
        jobs = (await session.execute(select(Job.id, Job.status).where(Job.kind == "test.steps"))).all()
    assert len(slots) >= 4, processes.output("worker1") + processes.output("worker2")
    assert all(slot.second % 2 == 0 for slot, _ in slots)
    outputs = processes.output("worker1") + processes.output("worker2")
    assert outputs.count("Worker starting") == 2
    assert outputs.count("schedule test-every-2s fired") == len(slots)  # each slot fired by one process only
    assert sorted(j for _, j in slots) == sorted(j for j, _ in jobs)  # one job per slot, no more
    started = [line for line in log.read_text().splitlines() if line.startswith("start")]
    assert len(started) == len(set(started))  # no job ran twice
    assert len({line.split()[1] for line in started}) >= len([1 for _, status in jobs if status == "completed"])

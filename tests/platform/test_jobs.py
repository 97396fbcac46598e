"""Jobs in embedded mode: the in-process runner, retries, timeouts, cancellation, leases, after-commit delivery."""

import asyncio
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from tests.platform.conftest import wait_for_job
from sqlalchemy import select, update

from voltway.core import jobs as jobs_module
from voltway.core.db import Database, utcnow
from voltway.core.jobs import Job, JobStatus, enqueue, get_runtime

pytestmark = pytest.mark.usefixtures("backend")


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


async def test_a_job_runs_and_reports_progress(db: Database, tmp_path: Path) -> None:
    log = tmp_path / "log"
    job_id = await enqueue("test.steps", {"log": str(log), "steps": 4, "pause": 0.01})
    job = await wait_for_job(db, job_id)
    assert (job.status, job.progress, job.attempts, job.result, job.error) == ("completed", 1.0, 1, {"steps": 4}, None)
    assert job.started_at is not None and job.finished_at is not None
    assert lines(log) == [f"start {job_id} 1", f"done {job_id}"]


async def test_failures_are_retried_with_backoff_then_fail(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs_module.runtime, "BACKOFF_BASE", 0.05 ** 0.5)  # waits of ~0.05 s and ~0.01 s
    log = tmp_path / "log"
    recovered = await enqueue("test.flaky", {"log": str(log), "failures": 2})
    job = await wait_for_job(db, recovered)
    assert (job.status, job.attempts, job.result) == ("completed", 3, {"attempt": 3})
    assert job.error == "RuntimeError: planned failure 2"  # the last failure is kept for the record

    log2 = tmp_path / "log2"
    failing = await enqueue("test.flaky", {"log": str(log2), "failures": 5})
    job = await wait_for_job(db, failing)
    assert (job.status, job.attempts, job.error) == ("failed", 3, "RuntimeError: planned failure 3")
    assert lines(log2) == ["attempt 1", "attempt 2", "attempt 3"]


def test_backoff_doubles_and_is_capped() -> None:
    assert [jobs_module.backoff(n) for n in (1, 2, 3, 4, 9, 20)] == [2, 4, 8, 16, 300, 300]


async def test_a_job_over_its_timeout_fails(db: Database, tmp_path: Path) -> None:
    log = tmp_path / "log"
    job = await wait_for_job(db, await enqueue("test.slow", {"log": str(log)}))
    assert (job.status, job.attempts, job.error) == ("failed", 1, "timed out after 0.5 s")
    assert lines(log) == ["start"]


async def test_cancelling_a_running_job_stops_it(
    client: httpx.AsyncClient, db: Database, operator_headers: dict[str, str], tmp_path: Path
) -> None:
    get_runtime().heartbeat_interval = 0.05  # type: ignore[union-attr]
    log = tmp_path / "log"
    job_id = await enqueue("test.steps", {"log": str(log), "steps": 100, "pause": 0.05})
    await wait_for_job(db, job_id, until=("running",))
    response = await client.delete(f"/api/v1/jobs/{job_id}", headers=operator_headers)
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    await asyncio.sleep(0.5)
    job = await wait_for_job(db, job_id)
    assert job.status == "cancelled" and job.progress < 1
    assert lines(log) == [f"start {job_id} 1"]
    again = await client.delete(f"/api/v1/jobs/{job_id}", headers=operator_headers)
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"


async def test_a_job_in_a_rolled_back_transaction_never_runs(db: Database, tmp_path: Path) -> None:
    log = tmp_path / "log"
    async with db.sessionmaker() as session:
        await enqueue("test.steps", {"log": str(log)}, session=session)
        await session.rollback()
    async with db.sessionmaker() as session:
        committed_id = await enqueue("test.steps", {"log": str(log)}, session=session)
        await asyncio.sleep(0.3)
        assert lines(log) == []  # not delivered before the commit
        await session.commit()
    await wait_for_job(db, committed_id)
    async with db.sessionmaker() as session:
        assert list((await session.scalars(select(Job.id))).all()) == [committed_id]
    assert lines(log) == [f"start {committed_id} 1", f"done {committed_id}"]


async def test_a_job_whose_worker_died_is_retried_once(db: Database, tmp_path: Path) -> None:
    """A record left `running` by a dead process is claimed again when its lease expires, and only then."""
    log = tmp_path / "log"
    runtime = get_runtime()
    assert runtime is not None
    async with db.sessionmaker.begin() as session:
        dead = Job(kind="test.steps", params={"log": str(log)}, status=JobStatus.running, max_attempts=3,
                   attempts=1, progress=0.3, created_at=utcnow(), run_after=utcnow(),
                   heartbeat_at=utcnow() - timedelta(seconds=runtime.lease - 2))
        session.add(dead)
    await asyncio.sleep(1.5)
    assert lines(log) == []  # the lease has not expired yet
    async with db.engine.begin() as conn:
        await conn.execute(update(Job).where(Job.id == dead.id).values(heartbeat_at=utcnow() - timedelta(seconds=runtime.lease + 1)))
    job = await wait_for_job(db, dead.id)
    assert (job.status, job.attempts) == ("completed", 2)
    assert lines(log) == [f"start {dead.id} 2", f"done {dead.id}"]
    # A duplicate delivery of a finished job is a no-op.
    await runtime.execute(dead.id)
    assert lines(log) == [f"start {dead.id} 2", f"done {dead.id}"]


async def test_concurrency_is_bounded_by_max_workers(db: Database, tmp_path: Path) -> None:
    runtime = get_runtime()
    assert runtime is not None and runtime.settings.max_workers == 5
    ids = [await enqueue("test.steps", {"log": str(tmp_path / "log"), "steps": 2, "pause": 0.2}) for _ in range(8)]
    peak = 0
    while True:
        async with db.sessionmaker() as session:
            statuses = list((await session.scalars(select(Job.status).where(Job.id.in_(ids)))).all())
        peak = max(peak, statuses.count("running"))
        if all(s == "completed" for s in statuses):
            break
        await asyncio.sleep(0.02)
    assert peak == 5

"""Jobs in the Redis mode: SAQ delivers job ids to `voltway worker` processes; the database record rules."""

import asyncio
import signal
from pathlib import Path

import httpx
import pytest
from tests.platform.conftest import Processes, process_env, wait_for_job
from fastapi import FastAPI

from voltway.core.jobs import enqueue
from voltway.settings import Settings

pytestmark = [pytest.mark.redis, pytest.mark.usefixtures("backend")]

WORKER = ["worker", "--module", "sample_jobs"]


async def wait_for_line(path: Path, line: str, timeout: float = 30) -> None:
    for _ in range(int(timeout / 0.05)):
        if path.exists() and line in path.read_text().splitlines():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{line!r} never appeared in {path}")


async def test_a_worker_process_runs_queued_jobs(
    redis_app: FastAPI, redis_settings: Settings, processes: Processes, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    job_ids = [await enqueue("test.steps", {"log": str(log), "steps": 2, "pause": 0.05}) for _ in range(3)]
    assert redis_app.state.db  # the app enqueues only; nothing runs until a worker starts
    await asyncio.sleep(0.5)
    assert not log.exists()
    processes.start(WORKER, process_env(redis_settings), "worker")
    for job_id in job_ids:
        job = await wait_for_job(redis_app.state.db, job_id, timeout=30)
        assert (job.status, job.attempts, job.result) == ("completed", 1, {"steps": 2}), processes.output("worker")
    assert sorted(log.read_text().splitlines()) == sorted(
        [f"start {i} 1" for i in job_ids] + [f"done {i}" for i in job_ids]
    )


async def test_a_job_whose_worker_is_killed_completes_exactly_once(
    redis_app: FastAPI, redis_settings: Settings, processes: Processes, tmp_path: Path
) -> None:
    env = process_env(redis_settings, JOB_LEASE_SECONDS="2")
    log = tmp_path / "log"
    first = processes.start(WORKER, env, "worker1")
    job_id = await enqueue("test.steps", {"log": str(log), "steps": 30, "pause": 0.1})
    await wait_for_line(log, f"start {job_id} 1")
    await asyncio.sleep(0.5)
    first.send_signal(signal.SIGKILL)
    first.wait()
    processes.start(WORKER, env, "worker2")
    job = await wait_for_job(redis_app.state.db, job_id, timeout=40)
    assert (job.status, job.attempts, job.result) == ("completed", 2, {"steps": 30}), processes.output("worker2")
    await asyncio.sleep(1)  # any duplicate delivery would run (and log) by now
    assert log.read_text().splitlines() == [f"start {job_id} 1", f"start {job_id} 2", f"done {job_id}"]


async def test_export_through_the_queue_is_downloadable(
    redis_client: httpx.AsyncClient, redis_app: FastAPI, redis_settings: Settings, processes: Processes
) -> None:
    from voltway.accounts.keys import create_key
    from voltway.accounts.roles import Role

    async with redis_app.state.db.sessionmaker.begin() as session:
        _key, secret = await create_key(session, role=Role.operator, name="test")
    headers = {"X-API-Key": secret}
    processes.start(WORKER, process_env(redis_settings), "worker")
    response = await redis_client.post("/api/v1/exports", json={"format": "json"}, headers=headers)
    assert response.status_code == 202
    job = await wait_for_job(redis_app.state.db, response.json()["job_id"], timeout=30)
    assert job.status == "completed", (job.error, processes.output("worker"))
    download = await redis_client.get(f"/api/v1/jobs/{job.id}/download", headers=headers)
    assert download.status_code == 200 and download.json() == []

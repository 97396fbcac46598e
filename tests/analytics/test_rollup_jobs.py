"""The rollup job runs through the platform's job runner and is scheduled hourly."""

import os
import subprocess
import sys

import pytest

from tests.analytics.factories import S, make_sessions, make_station, utc
from tests.platform.conftest import wait_for_job
from voltway.analytics.jobs import ROLLUP_KIND
from voltway.core.db import utcnow
from voltway.core.jobs import enqueue
from voltway.core.scheduler import SCHEDULES

pytestmark = pytest.mark.usefixtures("backend")


def test_the_rollup_is_scheduled_hourly() -> None:
    entry = SCHEDULES["analytics-rollup-hourly"]
    assert (entry.kind, entry.cron) == (ROLLUP_KIND, "5 * * * *")


async def test_the_rollup_job_rolls_up_closed_hours(db, client, operator_headers) -> None:
    station = await make_station(db, name="A", lat=1, lon=1, country="DE", operator="X",
                                 connectors=[{"type": "ccs2", "power_kw": 50}])
    await make_sessions(db, [S("A", utc(2026, 1, 5, 10), utc(2026, 1, 5, 11, 30), 12, 6.0, "EUR")],
                        {"A": station}, {})
    job = await wait_for_job(db, await enqueue(ROLLUP_KIND, {}))
    assert job.status == "completed", job.error
    assert job.result["through"] == int(utcnow().timestamp()) // 3600 * 3600
    assert job.result["rows"] == 2  # 10:00 and 11:00 of that day
    body = (await client.get("/api/v1/analytics/popular", params={"from": "2026-01-01", "to": "2026-02-01"},
                             headers=operator_headers)).json()
    assert body["window"]["source"] == "rollups"
    assert body["items"][0]["sessions"] == 1 and body["items"][0]["occupied_hours"] == 1.5


async def test_rebuild_command(db, settings) -> None:
    station = await make_station(db, name="A", lat=1, lon=1, country="DE", operator="X",
                                 connectors=[{"type": "ccs2", "power_kw": 50}])
    await make_sessions(db, [S("A", utc(2026, 1, 5, 10), utc(2026, 1, 5, 10, 30), 12, 6.0, "EUR")],
                        {"A": station}, {})
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATABASE_")}
    result = subprocess.run(
        [sys.executable, "-m", "voltway", "analytics", "rebuild"],
        env={**env, "DATABASE_URL": settings.database_url, "LOG_DIR": str(settings.log_dir)},
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "analytics rollups rebuilt: 1 station-hours" in result.stdout

"""`voltway import ocm` as a real process: summary and exit codes, and an import killed midway then completed."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from voltway.core.db import Database

from tests.ingest.support import schema, synthetic_pois

pytestmark = pytest.mark.usefixtures("backend")


def run_import(database_url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voltway", "import", "ocm", *args],
        env=_env(database_url, tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )


def _env(database_url: str, tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": database_url, "LOG_DIR": str(tmp_path / "logs"), "LOG_LEVEL": "WARNING"}


async def table_counts(database_url: str) -> tuple[int, int, int]:
    """(stations, connectors, R*Tree entries; the station count on PostgreSQL)."""
    db = Database(database_url)
    try:
        stations = (await db.fetch("SELECT count(*) FROM stations", {}))[0][0]
        connectors = (await db.fetch("SELECT count(*) FROM connectors", {}))[0][0]
        rtree = (await db.fetch("SELECT count(*) FROM station_rtree", {}))[0][0] if db.is_sqlite else stations
    finally:
        await db.dispose()
    return stations, connectors, rtree


def test_summary_and_exit_codes(
    database_url: str, tmp_path: Path, ocm_samples: dict[str, list[dict[str, Any]]]
) -> None:
    sample = tmp_path / "compact.json"
    sample.write_text(json.dumps(ocm_samples["compact"]))
    first = run_import(database_url, tmp_path, str(sample))
    assert first.returncode == 0, first.stderr
    assert "created 152, updated 0, unchanged 0, rejected 0, repeated 0" in first.stdout

    second = run_import(database_url, tmp_path, str(sample))
    assert second.returncode == 0, second.stderr
    assert "created 0, updated 0, unchanged 152, rejected 0, repeated 0" in second.stdout

    bad = json.loads(json.dumps(ocm_samples["compact"][:5]))
    bad[3]["AddressInfo"]["Latitude"] = -95.5
    broken = tmp_path / "bad.json"
    broken.write_text(json.dumps(bad))
    third = run_import(database_url, tmp_path, str(broken))
    assert third.returncode == 1
    assert "rejected record 3 [coordinates_out_of_range]: AddressInfo.Latitude -95.5 is outside [-90, 90]" in third.stdout

    empty = tmp_path / "empty.json"
    empty.write_text("")
    fourth = run_import(database_url, tmp_path, str(empty))
    assert fourth.returncode == 2
    assert "the input is empty" in fourth.stderr and "nothing was imported" in fourth.stderr
    assert run_import(database_url, tmp_path, str(tmp_path / "missing.json")).returncode == 2


def test_an_import_killed_midway_leaves_whole_chunks_and_a_rerun_completes_it(
    database_url: str, tmp_path: Path
) -> None:
    total = 20_000
    schema_before = schema(database_url) if database_url.startswith("sqlite") else {}
    path = tmp_path / "synthetic.json"
    path.write_text(json.dumps(synthetic_pois(total)))
    process = subprocess.Popen(
        [sys.executable, "-m", "voltway", "import", "ocm", str(path)],
        env=_env(database_url, tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while asyncio.run(table_counts(database_url))[0] < 2000:
            assert process.poll() is None, "the import ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()

    stations, connectors, rtree = asyncio.run(table_counts(database_url))
    assert process.returncode == -signal.SIGKILL
    assert 2000 <= stations < total and stations % 1000 == 0  # whole chunks only
    assert connectors == 2 * stations
    if database_url.startswith("sqlite"):
        # A first load: the indexes and the R*Tree were to be built at the end. The next migration run
        # (as `voltway serve` and `voltway db upgrade` do) builds them from the rows.
        assert rtree == 0 and schema(database_url) != schema_before
        upgraded = subprocess.run([sys.executable, "-m", "voltway", "db", "upgrade"], env=_env(database_url, tmp_path),
                                  capture_output=True, text=True, timeout=300)  # fmt: skip
        assert upgraded.returncode == 0, upgraded.stderr
        assert schema(database_url) == schema_before
    assert asyncio.run(table_counts(database_url)) == (stations, 2 * stations, stations)

    rerun = run_import(database_url, tmp_path, str(path))
    assert rerun.returncode == 0, rerun.stderr
    assert f"created {total - stations}, updated 0, unchanged {stations}, rejected 0" in rerun.stdout
    assert asyncio.run(table_counts(database_url)) == (total, 2 * total, total)

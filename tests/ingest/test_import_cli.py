"""`voltway import ocm` as a real process: summary and exit codes, and an import killed midway then completed."""

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from voltway.core.db import Database

from tests.ingest.support import schema, synthetic_pois

pytestmark = pytest.mark.usefixtures("backend")


def run_import(database_url: str, tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voltway", "import", "ocm", *args],
        env=_env(database_url, tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=600,
    )


def _env(database_url: str, tmp_path: Path, **env: str) -> dict[str, str]:
    logs = {"LOG_DIR": str(tmp_path / "logs"), "LOG_LEVEL": "WARNING"}
    return {**os.environ, "DATABASE_URL": database_url, **logs, **env}


def start_import(
    database_url: str, tmp_path: Path, path: Path, *, capture: bool = False, group: bool = False, **env: str
) -> subprocess.Popen[str]:
    """`voltway import ocm PATH` in the background (a Popen); its output piped when `capture`, else dropped;
    in a process group of its own (as a shell runs a command) when `group`."""
    output = subprocess.PIPE if capture else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, "-m", "voltway", "import", "ocm", str(path)],
        env=_env(database_url, tmp_path, **env),
        stdout=output,
        stderr=output,
        text=True,
        start_new_session=group,
    )


def synthetic_file(tmp_path: Path, total: int) -> Path:
    path = tmp_path / "synthetic.json"
    path.write_text(json.dumps(synthetic_pois(total)))
    return path


# A file of any size parsed by a parser process (`ingest/parse_process.py`).
BY_PARSER = {"IMPORT_PARSER_PROCESS_MB": "0"}


def parser_process(importer: subprocess.Popen[str], timeout: float = 60) -> psutil.Process:
    """The importer's parser process, as soon as it runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in psutil.Process(importer.pid).children():
            with contextlib.suppress(psutil.NoSuchProcess):
                if "voltway.ingest.parse_process" in child.cmdline():
                    return child
        assert importer.poll() is None, "the import ended without a parser process"
        time.sleep(0.005)
    raise AssertionError("no parser process")


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


@pytest.mark.parametrize("env", [{}, BY_PARSER], ids=["in_process", "parser_process"])
def test_an_import_killed_midway_leaves_whole_chunks_and_a_rerun_completes_it(
    database_url: str, tmp_path: Path, env: dict[str, str]
) -> None:
    total = 20_000
    schema_before = schema(database_url) if database_url.startswith("sqlite") else {}
    path = synthetic_file(tmp_path, total)
    process = start_import(database_url, tmp_path, path, **env)
    parser = parser_process(process) if env else None
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

    if parser is not None:  # no orphan: it stops at its next write to the dead importer's pipe, or had finished
        parser.wait(timeout=30)  # psutil.TimeoutExpired if it lingers
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


def test_a_parser_process_killed_midway_stops_the_import_like_a_truncated_file(
    database_url: str, tmp_path: Path
) -> None:
    total = 20_000
    path = synthetic_file(tmp_path, total)
    importer = start_import(database_url, tmp_path, path, capture=True, **BY_PARSER)
    try:
        parser = parser_process(importer)
        # The importer stopped, the parser fills the pipe between them and waits: it cannot finish.
        importer.send_signal(signal.SIGSTOP)
        time.sleep(1.0)
        assert parser.status() != psutil.STATUS_ZOMBIE
        parser.kill()
        importer.send_signal(signal.SIGCONT)
        out, err = importer.communicate(timeout=300)
    finally:
        if importer.poll() is None:
            importer.kill()

    assert importer.returncode == 1, err
    assert "stopped early [parser_failed]: the parser process stopped (exit code -9) after record" in err
    stations, connectors, rtree = asyncio.run(table_counts(database_url))
    assert stations < total and connectors == 2 * stations and rtree == stations  # the indexes were restored
    assert f"created {stations}, updated 0" in out

    rerun = run_import(database_url, tmp_path, str(path), **BY_PARSER)
    assert rerun.returncode == 0, rerun.stderr
    assert f"created {total - stations}, updated 0, unchanged {stations}, rejected 0" in rerun.stdout
    assert asyncio.run(table_counts(database_url)) == (total, 2 * total, total)


@pytest.mark.parametrize("env", [{}, BY_PARSER], ids=["in_process", "parser_process"])
def test_ctrl_c_stops_the_import_and_its_parser_cleanly(
    database_url: str, tmp_path: Path, env: dict[str, str]
) -> None:
    """Before the engine's writes ran to their end under cancellation (`core.db.to_the_end`), one run in six
    left a closed connection holding the write lock: restoring the indexes failed, or the exit hung."""
    total = 20_000
    path = synthetic_file(tmp_path, total)
    importer = start_import(database_url, tmp_path, path, capture=True, group=True, **env)
    try:
        parser = parser_process(importer) if env else None
        deadline = time.monotonic() + 300
        while asyncio.run(table_counts(database_url))[0] < 1000:
            assert importer.poll() is None, "the import ended before Ctrl-C"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.killpg(importer.pid, signal.SIGINT)  # what a terminal sends on Ctrl-C: the whole foreground group
        _out, err = importer.communicate(timeout=300)
    finally:
        if importer.poll() is None:
            importer.kill()

    assert importer.returncode == 130
    assert "Traceback" not in err  # neither process printed one
    if parser is not None:
        parser.wait(timeout=30)
    stations, connectors, rtree = asyncio.run(table_counts(database_url))
    assert 1000 <= stations < total and connectors == 2 * stations and rtree == stations  # indexes restored
    rerun = run_import(database_url, tmp_path, str(path), **env)
    assert rerun.returncode == 0, rerun.stderr
    assert f"created {total - stations}, updated 0, unchanged {stations}, rejected 0" in rerun.stdout

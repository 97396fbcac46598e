"""POST /api/v1/stations/bulk with 1,000 stations (with connectors) against a real `voltway serve`.

    python bench/bulk_api.py [--database URL] [--runs 7]      # starts its own server on a fresh database
    python bench/bulk_api.py --inprocess [--runs 7]           # CPU time of bulk_upsert, no server

Starts `voltway serve` (one worker) on a fresh SQLite file (or `--database`, e.g. a PostgreSQL URL),
creates an operator key with `voltway keys create`, then for each run posts 1,000 synthetic stations
(`synth.generate`, 2-4 connectors each) three ways: new keys (all created), the same body again (all
unchanged) and a changed body (all updated). Prints the median server time (`X-Process-Time`, from the
request's arrival to the response headers) and the client's round trip for each. Target: <= 100 ms.

With --inprocess it calls `ingest.bulk.bulk_upsert` with the same JSON bodies (validation, shaping, the upsert
engine) on a fresh SQLite file in its own process and reports the process CPU time of each call (all threads,
so the database's too): a figure a busy machine disturbs much less than the server time.
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from search_http import free_port, start
from synth import database_url, generate

BATCH = 1000


def post(url: str, key: str, body: bytes) -> tuple[float, float, dict[str, Any]]:
    """(server seconds, client seconds, answer) of one bulk request."""
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"X-API-Key": key, "Content-Type": "application/json"}
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:
        answer = json.loads(response.read())
        server = float(response.headers["X-Process-Time"])
    return server, time.perf_counter() - started, answer


def bodies(stations: list[dict[str, Any]], run: int) -> list[tuple[str, list[dict[str, Any]]]]:
    """(expected kind, items) of one run: new keys, the same items again, then changed items."""
    batch = stations[run * BATCH : (run + 1) * BATCH]
    changed = [{**s, "name": s["name"] + " (renamed)"} for s in batch]
    return [("created", batch), ("unchanged", batch), ("updated", changed)]


def inprocess(runs: int) -> None:
    from voltway.core.db import Database
    from voltway.ingest.bulk import bulk_upsert
    from voltway.migrations import upgrade

    stations = list(generate(BATCH * (runs + 1), seed=11))
    with tempfile.TemporaryDirectory() as tmp:
        url = database_url(str(Path(tmp) / "bulk.db"))
        upgrade(url)

        async def measure() -> dict[str, list[float]]:
            db = Database(url)
            try:
                await bulk_upsert(db, body=json.dumps(stations[-BATCH:]).encode())  # warm-up (not counted)
                cpu: dict[str, list[float]] = {"created": [], "unchanged": [], "updated": []}
                for run in range(runs):
                    for kind, items in bodies(stations, run):
                        body = json.dumps(items).encode()
                        started = time.process_time()
                        result, _ = await bulk_upsert(db, body=body)
                        cpu[kind].append(time.process_time() - started)
                        if getattr(result, kind) != BATCH or result.errors:
                            raise SystemExit(f"run {run} ({kind}): unexpected answer {result}")
                return cpu
            finally:
                await db.dispose()

        cpu = asyncio.run(measure())
    print(f"bulk_upsert in-process, {BATCH} stations with connectors, process CPU, median of {runs} runs (SQLite):")
    for kind, samples in cpu.items():
        print(f"  {kind:<9} {statistics.median(samples) * 1000:6.1f} ms   (min {min(samples) * 1000:.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", help="a database URL (default: a fresh SQLite file)")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--inprocess", action="store_true", help="CPU time of bulk_upsert in this process")
    args = parser.parse_args()
    if args.inprocess:
        inprocess(args.runs)
        return

    port = free_port()
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        url = args.database or database_url(str(Path(tmp) / "bulk.db"))
        env = {**os.environ, "DATABASE_URL": url, "LOG_DIR": tmp, "LOG_LEVEL": "WARNING", "DATA_DIR": tmp}
        voltway = str(Path(sys.executable).with_name("voltway"))
        start(stack, [voltway, "serve", "--port", str(port)], env, None, f"http://127.0.0.1:{port}/health")
        key = subprocess.run(
            [voltway, "keys", "create", "--role", "operator", "--name", "bench"], env=env, check=True,
            capture_output=True, text=True,
        ).stdout.split()[-1]
        endpoint = f"http://127.0.0.1:{port}/api/v1/stations/bulk"

        stations = list(generate(BATCH * (args.runs + 1), seed=11))
        post(endpoint, key, json.dumps(stations[-BATCH:]).encode())  # warm-up (not counted)
        times: dict[str, list[tuple[float, float]]] = {"created": [], "unchanged": [], "updated": []}
        for run in range(args.runs):
            for kind, body in bodies(stations, run):
                server, client, answer = post(endpoint, key, json.dumps(body).encode())
                if answer[kind] != BATCH or answer["errors"]:
                    raise SystemExit(f"run {run} ({kind}): unexpected answer {answer}")
                times[kind].append((server, client))
        print(f"POST /api/v1/stations/bulk, {BATCH} stations with connectors, median of {args.runs} runs "
              f"({'PostgreSQL' if url.startswith('postgresql') else 'SQLite'}):")
        for kind, samples in times.items():
            server = statistics.median(s for s, _ in samples) * 1000
            client = statistics.median(c for _, c in samples) * 1000
            print(f"  {kind:<9} server {server:6.1f} ms   round trip {client:6.1f} ms   "
                  f"(server min {min(s for s, _ in samples) * 1000:.1f}, max {max(s for s, _ in samples) * 1000:.1f})")


if __name__ == "__main__":
    main()

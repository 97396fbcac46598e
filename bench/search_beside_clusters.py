"""Radius searches while another client asks for uncached world-zoom map clusters: does one slow read stall the rest?

    python bench/search_beside_clusters.py /tmp/bench.db [--duration 8] [--concurrency 8]

Starts `voltway serve` (one worker, `CACHE_TTL=0`), runs `../shared/bench/load.py` with `radius.txt` alone, then
again while a thread requests `GET /api/v1/stations/clusters` for the whole world at zoom 2 back to back, each
with a new `min_power_kw` so that the clusters' own cache always misses (every request groups every station).
Prints both runs' requests/s and latency percentiles and how many cluster answers came back meanwhile.
"""

import argparse
import os
import sys
import tempfile
import threading
import urllib.request
from contextlib import ExitStack
from pathlib import Path

from search_http import SHARED_BENCH, free_port, run_load, start
from synth import database_url

WORLD = "/api/v1/stations/clusters?bbox=-180,-85,180,85&zoom=2&min_power_kw={}"


def ask_for_clusters(base: str, stop: threading.Event, answered: list[int]) -> None:
    while not stop.is_set():
        with urllib.request.urlopen(base + WORLD.format(f"0.{len(answered) + 1:06d}"), timeout=60) as response:
            response.read()
        answered.append(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", help="a SQLite file loaded by synth.py, or a database URL")
    parser.add_argument("--duration", type=float, default=8)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--paths", type=Path, default=SHARED_BENCH / "radius.txt")
    args = parser.parse_args()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "DATABASE_URL": database_url(args.target), "LOG_DIR": tmp, "LOG_LEVEL": "WARNING",
               "DATA_DIR": tmp, "CACHE_TTL": "0"}
        env.pop("REDIS_URL", None)
        voltway = Path(sys.executable).with_name("voltway")
        start(stack, [str(voltway), "serve", "--port", str(port)], env, None, f"{base}/health")
        alone = run_load(base, args.paths, args, "alone", 0)
        stop, answered = threading.Event(), []
        clusters = threading.Thread(target=ask_for_clusters, args=(base, stop, answered))
        clusters.start()
        try:
            beside = run_load(base, args.paths, args, "beside clusters", 0)
        finally:
            stop.set()
            clusters.join()
    for label, result in (("alone", alone), ("beside clusters", beside)):
        print(f"{label:16} {result['rps']:8.1f} req/s  p50 {result['p50_ms']:7.2f} ms  p99 {result['p99_ms']:7.2f} ms")
    print(f"uncached world clusters answered meanwhile: {len(answered)}")


if __name__ == "__main__":
    main()

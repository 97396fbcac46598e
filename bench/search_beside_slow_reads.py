"""Radius searches while another client makes slow reads back to back: does one slow read stall the rest?

    python bench/search_beside_slow_reads.py /tmp/bench.db [--beside clusters|text] [--duration 8] [--concurrency 8]

Starts `voltway serve` (one worker, `CACHE_TTL=0`), runs `../shared/bench/load.py` with `radius.txt` alone, then
again while a thread requests, back to back, either uncached map clusters of the whole world at zoom 2 (a new
`min_power_kw` each time, so that the clusters' own cache misses and every request groups every station) or a
text search over the whole world that matches nothing (every station read). Prints both runs' requests/s and
latency percentiles and how many slow answers came back meanwhile.
"""

import argparse
import tempfile
import threading
import urllib.request
from contextlib import ExitStack
from pathlib import Path

from search_http import SHARED_BENCH, run_load, start_voltway

SLOW_READS = {
    "clusters": "/api/v1/stations/clusters?bbox=-180,-85,180,85&zoom=2&min_power_kw=0.{:06d}",
    "text": "/api/v1/stations?bbox=-180,-85,180,85&q=zq{:06d}",
}


def ask_back_to_back(url: str, stop: threading.Event, answered: list[int]) -> None:
    while not stop.is_set():
        with urllib.request.urlopen(url.format(len(answered) + 1), timeout=60) as response:
            response.read()
        answered.append(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", help="a SQLite file loaded by synth.py, or a database URL")
    parser.add_argument("--duration", type=float, default=8)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--paths", type=Path, default=SHARED_BENCH / "radius.txt")
    parser.add_argument("--beside", choices=sorted(SLOW_READS), default="clusters")
    args = parser.parse_args()

    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        base, _server = start_voltway(stack, args.target, tmp, CACHE_TTL="0")
        alone = run_load(base, args.paths, args, "alone", 0)
        stop, answered = threading.Event(), []
        slow = threading.Thread(target=ask_back_to_back, args=(base + SLOW_READS[args.beside], stop, answered))
        slow.start()
        try:
            beside = run_load(base, args.paths, args, f"beside {args.beside}", 0)
        finally:
            stop.set()
            slow.join()
    for label, result in (("alone", alone), (f"beside {args.beside}", beside)):
        print(f"{label:16} {result['rps']:8.1f} req/s  p50 {result['p50_ms']:7.2f} ms  p99 {result['p99_ms']:7.2f} ms")
    print(f"slow reads ({args.beside}) answered meanwhile: {len(answered)}")


if __name__ == "__main__":
    main()

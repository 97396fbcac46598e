"""A repeated station search served from the cache, against a bare FastAPI endpoint returning the same bytes.

    python bench/synth.py /tmp/bench.db -n 20000          # once
    python bench/cache_hit.py /tmp/bench.db [--rounds 3] [--duration 5] [--concurrency 32] [--redis URL]

Starts `voltway serve` (one worker, uvloop + httptools, LOG_LEVEL=WARNING) on the database, fetches the
search of `../shared/bench/single.txt` once, starts `bare_bytes_app.py` serving exactly those bytes, then runs
`../shared/bench/load.py` (wrk) against each, alternating. Prints VoltWay's throughput as a share of the bare
app's and the server-side time of VoltWay's answers, read from its own request-duration histogram (`/metrics`):
the share answered within 1 ms (its first bucket), which bounds the p50. With `--redis`, VoltWay runs in the
Redis mode (each hit then also reads the namespace version from Redis). Client and servers share the cores.
"""

import argparse
import os
import re
import statistics
import sys
import tempfile
import urllib.request
from contextlib import ExitStack
from pathlib import Path

from search_http import SHARED_BENCH, free_port, run_load, start, start_voltway

ROUTE = 'route="/api/v1/stations"'


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


def histogram(metrics: str) -> dict[float, float]:
    """Cumulative bucket counts of the station search's request duration (all methods: only GET is used)."""
    buckets: dict[float, float] = {}
    for line in metrics.splitlines():
        if line.startswith("voltway_http_request_duration_seconds_bucket") and ROUTE in line:
            le = re.search(r'le="([^"]+)"', line)
            assert le is not None
            bound = float("inf") if le.group(1) == "+Inf" else float(le.group(1))
            buckets[bound] = buckets.get(bound, 0.0) + float(line.rsplit(" ", 1)[1])
    return buckets


def share_within_1ms(before: dict[float, float], after: dict[float, float]) -> float:
    """The share of the requests between two scrapes answered within 1 ms (the histogram's first bucket)."""
    delta = {b: after[b] - before.get(b, 0.0) for b in after}
    return delta[0.001] / delta[float("inf")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", help="a SQLite file loaded by synth.py, or a database URL")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--redis", help="REDIS_URL for the Redis mode")
    args = parser.parse_args()
    paths = SHARED_BENCH / "single.txt"
    search = paths.read_text().split()[0]

    bare_port = free_port()
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        redis = {"REDIS_URL": args.redis, "REDIS_PREFIX": f"bench-{os.getpid()}"} if args.redis else {}
        voltway, _server = start_voltway(stack, args.target, tmp, **redis)
        body = fetch(voltway + search)
        body_file = Path(tmp) / "body.json"
        body_file.write_bytes(body)
        start(stack, [sys.executable, "-m", "uvicorn", "bare_bytes_app:app", "--port", str(bare_port), "--workers",
                      "1", "--loop", "uvloop", "--http", "httptools", "--log-level", "warning"],
              {**os.environ, "BARE_BODY_FILE": str(body_file)}, Path(__file__).parent, f"http://127.0.0.1:{bare_port}/health")
        bare = f"http://127.0.0.1:{bare_port}"
        assert fetch(bare + search) == body
        print(f"answer: {len(body):,} bytes for {search}")

        ratios, runs = [], {"voltway": [], "bare": []}
        shares: list[float] = []
        for round_no in range(args.rounds):
            before = histogram(fetch(voltway + "/metrics").decode())
            mine = run_load(voltway, paths, args, "voltway-cached", 0)
            after = histogram(fetch(voltway + "/metrics").decode())
            reference = run_load(bare, paths, args, "bare-bytes", 0)
            if mine["errors"]:
                raise SystemExit(f"VoltWay answered {mine['errors']} requests with errors: {mine['statuses']}")
            shares.append(share_within_1ms(before, after))
            runs["voltway"].append(mine)
            runs["bare"].append(reference)
            ratios.append(mine["ok_rps"] / reference["ok_rps"])
        rps = {name: statistics.median(r["ok_rps"] for r in results) for name, results in runs.items()}
        client_p50 = {name: statistics.median(r["p50_ms"] for r in results) for name, results in runs.items()}
        print(
            f"\nmedian of {args.rounds} rounds (c={args.concurrency}, {args.duration:g} s each, "
            f"{'Redis' if args.redis else 'embedded'} mode): VoltWay cached {rps['voltway']:.0f} req/s "
            f"(client p50 {client_p50['voltway']:.2f} ms), bare {rps['bare']:.0f} req/s "
            f"(client p50 {client_p50['bare']:.2f} ms); ratio {statistics.median(ratios):.1%} "
            f"(per round: {', '.join(f'{r:.1%}' for r in ratios)})\n"
            f"VoltWay server time (its request-duration histogram): {statistics.median(shares):.1%} of requests "
            f"within 1 ms, so p50 {'<=' if statistics.median(shares) >= 0.5 else '>'} 1 ms"
        )


if __name__ == "__main__":
    main()

"""The cost of the request middleware: the same app with and without it, over HTTP, alternating.

    python bench/synth.py /tmp/bench.db -n 20000                 # once: synthetic stations
    python bench/middleware_overhead.py /tmp/bench.db [--rounds 5] [--duration 5] [--concurrency 32]

Starts two single-worker uvicorn servers (uvloop + httptools) on the same database with the default
logging (LOG_LEVEL=INFO: one JSON access line per request to the console and to LOG_DIR/app.log; the
console goes to a file, as under a process manager):
- "with":    `voltway.app:create_app`, the whole stack (request id, timing headers, metrics, access log);
- "without": the same app with `ObservabilityMiddleware` removed (`app_without_middleware` below), or with
             `--without hot-routes` the `HotRoutes` middleware: the search routes then go through FastAPI's
             routing and dependency solving (the ratio then reads above 100%).
Then it runs `../shared/bench/load.py` (wrk) against each in turn, per workload (`/health`; radius searches
from `radius.txt`, answered from the response cache after their first pass; radius searches that never
repeat, so every one runs the search), and prints the median throughput ratio with/without (target >= 90 %).
Client and servers share the machine's cores: read the figures as a ratio.

`--inprocess` measures the same two apps without a network or a client: it calls them as ASGI apps in one
process (same logging to files), alternating request by request, and compares the median time per request
(robust to other processes' noise on a busy machine). A single worker's throughput is the inverse of that
time, so the ratio reads the same way.
"""

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from fastapi import FastAPI
from asgi import asgi_receive, asgi_scope, asgi_send
from search_http import SHARED_BENCH, free_port, run_load, start
from synth import database_url

from voltway.app import create_app
from voltway.core.hot_routes import HotRoutes
from voltway.core.middleware import ObservabilityMiddleware

LEFT_OUT = {"observability": ObservabilityMiddleware, "hot-routes": HotRoutes}


def app_without_middleware() -> FastAPI:
    """The app of `create_app`, minus one middleware (the baseline): `BENCH_WITHOUT`, set by `--without`."""
    left_out = LEFT_OUT[os.environ.get("BENCH_WITHOUT", "observability")]
    app = create_app()
    app.user_middleware = [m for m in app.user_middleware if m.cls is not left_out]
    return app


def serve(stack: ExitStack, factory: str, port: int, env: dict[str, str], log: Path) -> str:
    command = [sys.executable, "-m", "uvicorn", factory, "--factory", "--port", str(port), "--workers", "1",
               "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "info"]
    base = f"http://127.0.0.1:{port}"
    start(stack, command, env, Path(__file__).parent, f"{base}/health", log)
    return base


def uncached_paths(radius_paths: list[str], count: int) -> list[str]:
    """Radius searches that never repeat: radius.txt's centres moved by a distinct few metres each time."""
    out = []
    for i in range(count):
        path, _, query = radius_paths[i % len(radius_paths)].partition("?")
        params = dict(part.split("=", 1) for part in query.split("&"))
        params["lat"] = f"{float(params['lat']) + (i // len(radius_paths)) * 1e-5:.6f}"
        out.append(f"{path}?{'&'.join(f'{k}={v}' for k, v in params.items())}")
    return out


async def inprocess(args: argparse.Namespace, paths: dict[str, list[str]]) -> None:
    """Requests alternate one by one between the two apps, so both see the same machine load; the median of
    the per-request times of each app is compared."""
    apps = {"with": create_app(), "without": app_without_middleware()}
    async with apps["with"].router.lifespan_context(apps["with"]), apps["without"].router.lifespan_context(
        apps["without"]
    ):
        for workload, workload_paths in paths.items():
            times: dict[str, list[float]] = {"with": [], "without": []}
            for i in range(args.requests):
                for offset, name in enumerate(("with", "without") if i % 2 == 0 else ("without", "with")):
                    # Each app its own path: the two apps share the process's response cache.
                    scope = asgi_scope(workload_paths[(2 * i + offset) % len(workload_paths)])
                    started = time.perf_counter()
                    await apps[name](scope, asgi_receive, asgi_send)
                    if i >= args.requests // 10:  # the first tenth warms up
                        times[name].append(time.perf_counter() - started)
            median = {name: statistics.median(values) * 1e6 for name, values in times.items()}
            print(f"{workload}: median {median['with']:.1f} us/request with, {median['without']:.1f} us without "
                  f"({len(times['with'])} requests each); throughput ratio {median['without'] / median['with']:.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", help="a SQLite file loaded by synth.py, or a database URL")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workloads", default="health,radius,uncached",
                        help="comma-separated: health, radius (radius.txt, served from the response cache after the "
                             "first pass), uncached (a new radius search every request: the search itself runs)")
    parser.add_argument("--inprocess", action="store_true", help="call the apps as ASGI apps, no network")
    parser.add_argument("--requests", type=int, default=20000, help="--inprocess: requests per workload and app")
    parser.add_argument("--without", choices=sorted(LEFT_OUT), default="observability",
                        help="the middleware the baseline app leaves out")
    args = parser.parse_args()
    os.environ["BENCH_WITHOUT"] = args.without  # for app_without_middleware, here and in the server processes
    if args.inprocess:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ.update(DATABASE_URL=database_url(args.target), LOG_DIR=tmp, LOG_LEVEL="INFO", DATA_DIR=tmp)
            radius = (SHARED_BENCH / "radius.txt").read_text().split()
            paths = {"health": ["/health"], "radius": radius, "uncached": uncached_paths(radius, args.requests * 4)}
            asyncio.run(inprocess(args, {w: paths[w] for w in args.workloads.split(",")}))
        return

    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        health_paths = tmp_path / "health.txt"
        health_paths.write_text("/health\n")
        uncached = tmp_path / "uncached.txt"
        # Rounds start 60,007 paths apart: no run of the "uncached" workload repeats an earlier one.
        radius = (SHARED_BENCH / "radius.txt").read_text().split()
        uncached.write_text("\n".join(uncached_paths(radius, 60_007 * args.rounds)))
        workloads = {"health": health_paths, "radius": SHARED_BENCH / "radius.txt", "uncached": uncached}
        bases = {}
        for name, factory in (("with", "voltway.app:create_app"), ("without", "middleware_overhead:app_without_middleware")):
            env = {**os.environ, "DATABASE_URL": database_url(args.target), "LOG_DIR": str(tmp_path / name),
                   "LOG_LEVEL": "INFO", "DATA_DIR": tmp, "PYTHONPATH": str(Path(__file__).parent)}
            bases[name] = serve(stack, factory, free_port(), env, tmp_path / f"{name}.console.log")
        summary = []
        for workload in args.workloads.split(","):
            ratios, rps = [], {"with": [], "without": []}
            for round_no in range(args.rounds):
                order = ("with", "without") if round_no % 2 == 0 else ("without", "with")
                result = {}
                for name in order:
                    result[name] = run_load(bases[name], workloads[workload], args, f"{workload}-{name}", round_no * 60_007)
                    if result[name]["errors"]:
                        raise SystemExit(f"{name}: {result[name]['errors']} errors: {result[name]['statuses']}")
                    rps[name].append(result[name]["ok_rps"])
                ratios.append(result["with"]["ok_rps"] / result["without"]["ok_rps"])
            summary.append(
                f"{workload}: with {statistics.median(rps['with']):.0f} req/s, without "
                f"{statistics.median(rps['without']):.0f} req/s; ratio median {statistics.median(ratios):.1%} "
                f"(rounds: {', '.join(f'{r:.1%}' for r in ratios)})"
            )
        lines = sum(1 for _ in (tmp_path / "with" / "app.log").open())
        print(f"\nc={args.concurrency}, {args.duration:g} s per run, {args.rounds} rounds, alternating; "
              f"the 'with' server wrote {lines} JSON lines to app.log")
        print("\n".join(summary))


if __name__ == "__main__":
    main()

"""Uncached radius search over HTTP, against the ceiling app in the same run.

    python bench/synth.py /tmp/bench.db                      # once: 300,000 synthetic stations
    python bench/search_http.py /tmp/bench.db [--rounds 3] [--duration 10] [--concurrency 32]

Starts `voltway serve` (one worker, uvloop + httptools) on the loaded database and the ceiling app of
`../shared/bench/` (`uvicorn ceiling_app:app --workers 1 --loop uvloop --http httptools`), then runs
`../shared/bench/load.py` (wrk) with `radius.txt` (1,000 radius searches, 10 km, limit 50) against each,
alternating, and prints VoltWay's throughput as a share of the ceiling's (median over the rounds).
VoltWay runs with CACHE_TTL=0 (every answer computed) unless `--cache-ttl` says otherwise. `--compare SRC`
also starts another version of VoltWay (`PYTHONPATH=SRC`, e.g. the `src` of a `git worktree` of an older
commit) and measures it in every round beside the others, so that both versions meet the same machine.
Client and servers share the machine's cores: read the figures as a ratio, not as absolute capacity.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

import psutil

from synth import database_url

SHARED_BENCH = Path(os.environ.get("VOLTWAY_SHARED_BENCH", Path(__file__).resolve().parents[2] / "shared" / "bench"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {timeout:.0f} s")


def start(
    stack: ExitStack, cmd: list[str], env: dict[str, str], cwd: Path | None, health: str, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start a server process (its output to `log`, else discarded), stopped when `stack` closes."""
    if log is None:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    else:
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()

    stack.callback(stop)
    wait_ready(health)
    return proc


def start_voltway(stack: ExitStack, target: str, tmp: str, **settings: str) -> tuple[str, subprocess.Popen[bytes]]:
    """`voltway serve` (one worker) on `target`, its logs and data in `tmp`, in the embedded mode unless `settings`
    (environment variables) say otherwise: its base URL and process, stopped when `stack` closes."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url(target), "LOG_DIR": tmp, "LOG_LEVEL": "WARNING", "DATA_DIR": tmp}
    env.pop("REDIS_URL", None)
    env.update(settings)
    base = f"http://127.0.0.1:{port}"
    voltway = Path(sys.executable).with_name("voltway")
    return base, start(stack, [str(voltway), "serve", "--port", str(port)], env, None, f"{base}/health")


def run_load(
    base: str, paths: Path, args: argparse.Namespace, label: str, start_at: int, server_pid: int | None = None
) -> dict[str, float]:
    """One load.py run; with `server_pid`, also the server's CPU time per request (`cpu_us`).

    The CPU is sampled over the middle of the measured run (after the warm-up, a margin off each end): on a
    shared machine it says what a request costs the server, where requests/s also says what else ran."""
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as out:
        load = subprocess.Popen(
            [sys.executable, str(SHARED_BENCH / "load.py"), base, str(paths), "-c", str(args.concurrency),
             "-d", str(args.duration), "--warmup", str(args.warmup), "--reps", "1", "--label", label,
             "--start", str(start_at), "--json-out", out.name],
        )
        cpu_window = None
        if server_pid is not None:
            server, margin = psutil.Process(server_pid), min(1.0, args.duration / 5)
            time.sleep(args.warmup + margin)
            cpu0, t0 = sum(server.cpu_times()[:2]), time.monotonic()
            time.sleep(args.duration - 2 * margin)
            cpu_window = (sum(server.cpu_times()[:2]) - cpu0, time.monotonic() - t0)
        if load.wait() != 0:
            raise SystemExit(f"load.py failed against {base}")
        result = json.loads(Path(out.name).read_text().splitlines()[-1])
        if cpu_window is not None:
            cpu, seconds = cpu_window
            result["cpu_us"] = cpu / (result["rps"] * seconds) * 1e6
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", help="a SQLite file loaded by synth.py, or a database URL")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--paths", type=Path, default=SHARED_BENCH / "radius.txt")
    parser.add_argument("--cache-ttl", type=int, default=0,
                        help="VoltWay's CACHE_TTL; 0 (the default) measures uncached searches")
    parser.add_argument("--compare", type=Path, metavar="SRC",
                        help="also measure the VoltWay whose package is in SRC (run with PYTHONPATH=SRC)")
    args = parser.parse_args()

    ceiling_port = free_port()
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        servers = {"voltway": start_voltway(stack, args.target, tmp, CACHE_TTL=str(args.cache_ttl))}
        if args.compare is not None:
            other = Path(tmp) / "compared"
            other.mkdir()
            servers["compared"] = start_voltway(
                stack, args.target, str(other), CACHE_TTL=str(args.cache_ttl), PYTHONPATH=str(args.compare.resolve())
            )
        ceiling_proc = start(
            stack,
            [sys.executable, "-m", "uvicorn", "ceiling_app:app", "--port", str(ceiling_port), "--workers", "1",
             "--loop", "uvloop", "--http", "httptools", "--log-level", "warning"],
            dict(os.environ), SHARED_BENCH, f"http://127.0.0.1:{ceiling_port}/health",
        )
        servers["ceiling"] = (f"http://127.0.0.1:{ceiling_port}", ceiling_proc)
        results: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
        for round_no in range(args.rounds):
            start_at = round_no * 97
            # The VoltWays take turns going first: neither always meets the machine right after the ceiling.
            order = list(servers) if round_no % 2 == 0 else [*reversed(list(servers)[:-1]), "ceiling"]
            for name in order:
                base, proc = servers[name]
                measured = run_load(base, args.paths, args, name, start_at, proc.pid)
                if measured["errors"]:
                    errors, statuses = measured["errors"], measured["statuses"]
                    raise SystemExit(f"{name} answered {errors} requests with errors: {statuses}")
                results[name].append(measured)
        print(f"\nmedian of {args.rounds} rounds (c={args.concurrency}, {args.duration:g} s each):")
        ceiling = results["ceiling"]
        for name in servers:
            if name != "ceiling":
                print(_summary(name, results[name], ceiling))
        if "compared" in results:
            pairs = list(zip(results["voltway"], results["compared"], strict=True))
            speedups = [mine["ok_rps"] / theirs["ok_rps"] for mine, theirs in pairs]
            savings = [theirs["cpu_us"] / mine["cpu_us"] for mine, theirs in pairs]
            print(
                f"voltway against compared, round by round: throughput x{statistics.median(speedups):.2f} "
                f"({', '.join(f'{r:.2f}' for r in speedups)}); server CPU per request of compared over voltway's "
                f"x{statistics.median(savings):.2f} ({', '.join(f'{r:.2f}' for r in savings)})"
            )


def _summary(name: str, runs: list[dict[str, float]], ceiling: list[dict[str, float]]) -> str:
    """One server's throughput and CPU per request as shares of the ceiling's, round by round."""
    ratios = [mine["ok_rps"] / theirs["ok_rps"] for mine, theirs in zip(runs, ceiling, strict=True)]
    rps, p50, cpu = (statistics.median(r[key] for r in runs) for key in ("ok_rps", "p50_ms", "cpu_us"))
    ceiling_rps, ceiling_cpu = (statistics.median(r[key] for r in ceiling) for key in ("ok_rps", "cpu_us"))
    return (
        f"{name}: {rps:.0f} req/s (p50 {p50:.2f} ms), ceiling {ceiling_rps:.0f} req/s; ratio "
        f"{statistics.median(ratios):.1%} (per round: {', '.join(f'{r:.1%}' for r in ratios)}); server CPU per "
        f"request {cpu:.0f} us, ceiling {ceiling_cpu:.0f} us: {ceiling_cpu / cpu:.1%} (the throughput share a "
        "server-bound run would show)"
    )


if __name__ == "__main__":
    main()

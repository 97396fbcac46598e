"""Import benchmark: `voltway import ocm` of N synthetic stations in OCM's compact form, timed from outside.

    python bench/import_ocm.py [-n 300000] [--runs 3] [--postgres postgresql+asyncpg://postgres@127.0.0.1/bench]

Generates the file once (bench/synth_ocm.py; kept in --work), then for each run: a fresh, migrated database,
and `/usr/bin/time -v voltway import ocm FILE` in its own process. Reports the wall time, the CPU time of the
process (user + system), stations/s on each, and the peak resident memory; the median over the runs.
Targets (issue 3): >= 20,000 stations/s and <= 250 MB peak RSS on SQLite; the same run on PostgreSQL.

With --engine-only the timed process runs the reader and the upsert engine alone (`upsert_stations`, no
duplicate linking afterwards), to tell the import engine's figures from those of the whole command.
"""

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import psutil

sys.path.insert(0, str(Path(__file__).parent))
from synth_ocm import write  # noqa: E402

from voltway.migrations import upgrade  # noqa: E402


def fresh_database(target: str, work: Path) -> str:
    """A new migrated database: a SQLite file in `work`, or a PostgreSQL database dropped and re-created."""
    if target == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{work / 'bench.db'}{suffix}").unlink(missing_ok=True)
        url = f"sqlite+aiosqlite:///{work / 'bench.db'}"
    else:
        base, name = target.rsplit("/", 1)

        async def recreate() -> None:
            conn = await asyncpg.connect(base.replace("+asyncpg", "") + "/postgres")
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                await conn.execute(f'CREATE DATABASE "{name}"')
            finally:
                await conn.close()

        asyncio.run(recreate())
        url = target
    upgrade(url)
    return url


async def engine_only(url: str, path: Path) -> None:
    """The import without duplicate linking: the OCM reader straight into the upsert engine."""
    from voltway.core.db import Database
    from voltway.ingest.ocm_stream import FileSource, OcmReader, ReadReport
    from voltway.ingest.upsert import upsert_stations

    db = Database(url)
    try:
        with path.open("rb") as file:
            report = await upsert_stations(db, OcmReader(ReadReport()).stations(FileSource(file)))
    finally:
        await db.dispose()
    print(f"created {report.created}, updated {report.updated}, unchanged {report.unchanged}, "
          f"rejected {len(report.rejected)} (engine only)")  # fmt: skip


def peak_tree_rss_mb(timed: subprocess.Popen[str]) -> float:
    """The largest sum of resident memory of the import's processes (a large file is parsed by a child of
    the import's own; `/usr/bin/time` reports the largest single process), sampled every 10 ms."""
    peak = 0
    while timed.poll() is None:
        try:
            processes = psutil.Process(timed.pid).children(recursive=True)  # the processes under `time`
            peak = max(peak, sum(p.memory_info().rss for p in processes))
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.01)
    return peak / 2**20


def timed_import(url: str, path: Path, work: Path, *, engine: bool) -> dict[str, float]:
    env = {**os.environ, "DATABASE_URL": url, "LOG_DIR": str(work / "logs"), "LOG_LEVEL": "WARNING"}
    command = ["/usr/bin/time", "-v", sys.executable]
    command += [__file__, "--child", url, str(path)] if engine else ["-m", "voltway", "import", "ocm", str(path)]
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as timed:
        tree_mb = peak_tree_rss_mb(timed)
        stdout, stderr = timed.communicate()
    if timed.returncode != 0:
        raise SystemExit(f"import failed ({timed.returncode}):\n{stdout}\n{stderr[-2000:]}")

    def field(label: str) -> str:
        match = re.search(rf"{re.escape(label)}: (.+)", stderr)
        assert match, label
        return match.group(1).strip()

    clock = field("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":")  # [h:]m:ss.ss
    return {
        "wall_s": sum(float(part) * 60**i for i, part in enumerate(reversed(clock))),
        "cpu_s": float(field("User time (seconds)")) + float(field("System time (seconds)")),
        "rss_mb": int(field("Maximum resident set size (kbytes)")) / 1024,
        "tree_mb": tree_mb,
        "summary": stdout.strip().splitlines()[0],  # type: ignore[dict-item]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgres", help="also run on this PostgreSQL database URL (dropped and re-created)")
    parser.add_argument("--engine-only", action="store_true", help="time the reader and upsert engine alone")
    parser.add_argument("--child", nargs=2, metavar=("URL", "FILE"), help=argparse.SUPPRESS)
    parser.add_argument("--no-sqlite", action="store_true", help="skip the SQLite runs")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "voltway-bench-import")
    args = parser.parse_args()
    if args.child:
        asyncio.run(engine_only(args.child[0], Path(args.child[1])))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    path = args.work / f"ocm-compact-{args.n}.json"
    if not path.exists():
        started = time.perf_counter()
        write(path, args.n, seed=7)
        print(f"generated {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - started:.0f} s")
    for target in ([] if args.no_sqlite else ["sqlite"]) + ([args.postgres] if args.postgres else []):
        runs = []
        for run in range(args.runs):
            url = fresh_database(target, args.work)
            figures = timed_import(url, path, args.work, engine=args.engine_only)
            runs.append(figures)
            print(f"{target.split('://')[0]} run {run + 1}: {figures['summary']}; wall {figures['wall_s']:.1f} s "
                  f"({args.n / figures['wall_s']:,.0f}/s), cpu {figures['cpu_s']:.1f} s "
                  f"({args.n / figures['cpu_s']:,.0f}/s), peak RSS {figures['rss_mb']:.0f} MB, "
                  f"of the processes together {figures['tree_mb']:.0f} MB")  # fmt: skip
        wall = statistics.median(r["wall_s"] for r in runs)
        cpu = statistics.median(r["cpu_s"] for r in runs)
        rss = max(r["rss_mb"] for r in runs)
        tree = max(r["tree_mb"] for r in runs)
        print(f"== {target.split('://')[0]}: median {args.n / wall:,.0f} stations/s wall, {args.n / cpu:,.0f} "
              f"stations/s of process CPU, max peak RSS {rss:.0f} MB "
              f"(together {tree:.0f} MB) over {len(runs)} runs")  # fmt: skip


if __name__ == "__main__":
    main()

"""Small bulk writes while `voltway import ocm` loads a large file into an empty database (a first load).

    python bench/writes_beside_import.py [-n 300000] [--writes 12] [--postgres postgresql+asyncpg://...]

Starts the import as its own process on a fresh database (the file from bench/synth_ocm.py, kept in --work),
waits a few seconds, then upserts 10 stations at a time through the same engine as `POST /stations/bulk`
(`import_stations`, duplicate linking included), one batch a second, and prints how long each took and
whether the import was still running; then the import's own wall time. A write that waits for the import
or slows it down shows here (measured: 187 s for the first batch and a sixfold slower import, while such
writes still linked duplicates without the first load's deferred indexes).
"""

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from import_ocm import fresh_database  # noqa: E402
from synth_ocm import write  # noqa: E402

from voltway.core.db import Database  # noqa: E402
from voltway.ingest.bulk import import_stations  # noqa: E402
from voltway.stations.schemas import StationIn  # noqa: E402


def batch(first: int) -> list[tuple[int, StationIn]]:
    return [
        (i, StationIn.model_validate({
            "source": "bench", "external_id": f"beside-{first + i}", "name": f"Beside {first + i}",
            "latitude": -36.0 + (first + i) * 0.001, "longitude": 174.0,
            "connectors": [{"type": "ccs2", "power_kw": 50}],
        }))  # fmt: skip
        for i in range(10)
    ]


async def write_beside(url: str, importer: subprocess.Popen[bytes], writes: int) -> None:
    db = Database(url)
    try:
        await asyncio.sleep(4)  # the import is under way
        for n in range(writes):
            started = time.perf_counter()
            report = await import_stations(db, batch(n * 10), invalid=[], feed="api")
            running = "import running" if importer.poll() is None else "import done"
            print(f"batch {n + 1}: {time.perf_counter() - started:6.2f} s, created {report.created} ({running})")
            await asyncio.sleep(1)
    finally:
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300_000)
    parser.add_argument("--writes", type=int, default=12)
    parser.add_argument("--postgres", help="a PostgreSQL database URL (dropped and re-created) instead of SQLite")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "voltway-bench-import")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    path = args.work / f"ocm-compact-{args.n}.json"
    if not path.exists():
        write(path, args.n, 7)
    url = fresh_database(args.postgres or "sqlite", args.work)
    env = {**os.environ, "DATABASE_URL": url, "LOG_DIR": str(args.work / "logs"), "LOG_LEVEL": "WARNING"}
    started = time.perf_counter()
    importer = subprocess.Popen([sys.executable, "-m", "voltway", "import", "ocm", str(path)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    asyncio.run(write_beside(url, importer, args.writes))
    output = importer.communicate()[0].decode().strip().splitlines()
    summary = next((line for line in output if line.startswith("created")), output[-1] if output else "")
    print(f"import: {time.perf_counter() - started:.1f} s wall, exit {importer.returncode}: {summary}")


if __name__ == "__main__":
    main()

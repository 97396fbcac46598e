"""Radius search measured in-process: p50/p95 of the service function, no HTTP.

    python bench/synth.py /tmp/bench.db                     # once: 300,000 synthetic stations
    python bench/search_inprocess.py /tmp/bench.db [--queries 2000] [--radius 10] [--limit 50]

Queries are centred on the synthetic cities (weighted by their size) with a few km of jitter, the same
workload as `../shared/bench/radius.txt`. Each query is run once after a warm-up pass over all of them.
Wall-clock percentiles depend on what else the machine is running; the CPU time of the searching thread
(also reported) does much less.
"""

import argparse
import asyncio
import random
import statistics
import time

from synth import CITIES, KM_PER_DEG, database_url

from voltway.core.db import Database
from voltway.stations.search import StationQuery, search_stations


def city_points(count: int, seed: int = 11) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    weights = [c[4] for c in CITIES]
    points = []
    for _ in range(count):
        _name, _country, lat, lon, _w, _sigma = rng.choices(CITIES, weights=weights)[0]
        points.append((lat + rng.gauss(0, 3) / KM_PER_DEG, lon + rng.gauss(0, 3) / KM_PER_DEG))
    return points


async def measure(url: str, queries: int, radius_km: float, limit: int) -> dict[str, float]:
    db = Database(url)
    try:
        points = city_points(queries)
        searches = [StationQuery(origin=p, radius_km=radius_km, limit=limit) for p in points]
        for query in searches:  # warm-up: page cache, statement cache
            await search_stations(db, query=query, embed=True)
        timings, cpu, items = [], [], 0
        for query in searches:
            started, started_cpu = time.perf_counter(), time.thread_time()
            page = await search_stations(db, query=query, embed=True)  # as the route calls it
            timings.append((time.perf_counter() - started) * 1000)
            cpu.append((time.thread_time() - started_cpu) * 1000)
            items += len(page["items"])
    finally:
        await db.dispose()
    return {**percentiles(timings, ""), **percentiles(cpu, "cpu_"), "mean_items": items / len(searches)}


def percentiles(values: list[float], prefix: str) -> dict[str, float]:
    values = sorted(values)
    return {
        f"{prefix}p50_ms": statistics.median(values),
        f"{prefix}p95_ms": values[int(len(values) * 0.95) - 1],
        f"{prefix}p99_ms": values[int(len(values) * 0.99) - 1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", help="a SQLite file loaded by synth.py, or a database URL")
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--radius", type=float, default=10.0)
    parser.add_argument("--limit", type=int, default=50)
    args = parser.parse_args()
    result = asyncio.run(measure(database_url(args.target), args.queries, args.radius, args.limit))
    print(
        f"radius {args.radius:g} km, limit {args.limit}, {args.queries} queries: "
        f"p50 {result['p50_ms']:.3f} ms, p95 {result['p95_ms']:.3f} ms, p99 {result['p99_ms']:.3f} ms, "
        f"{result['mean_items']:.1f} items per page; CPU time of the searching thread: "
        f"p50 {result['cpu_p50_ms']:.3f} ms, p95 {result['cpu_p95_ms']:.3f} ms"
    )


if __name__ == "__main__":
    main()

"""Map clusters measured in-process, uncached: the grouping query of a few typical map views.

    python bench/synth.py /tmp/bench.db                     # once: 300,000 synthetic stations
    python bench/clusters.py /tmp/bench.db [--runs 5]

Each view (the whole world, Europe, Germany, a city) is computed `--runs` times with the answer cache bypassed;
prints the median time and the number of features. No target: a cold map should draw in well under a second.
"""

import argparse
import asyncio
import statistics
import time

from synth import database_url

from voltway.core.db import Database
from voltway.migrations import upgrade
from voltway.stations.clusters import Grid, grid_features
from voltway.stations.search import StationFilters, parse_bbox

VIEWS = (
    ("world, zoom 2", "-180,-85,180,85", 2),
    ("Europe, zoom 5", "-10,35,30,60", 5),
    ("Germany, zoom 7", "5,47,15,55", 7),
    ("Berlin, zoom 13", "13.3,52.45,13.5,52.55", 13),
)


async def measure(url: str, runs: int) -> None:
    db = Database(url)
    try:
        for label, bbox, zoom in VIEWS:
            grid = Grid.covering(parse_bbox(bbox), zoom)
            timings, features = [], 0
            for _ in range(runs):
                started = time.perf_counter()
                features = len(await grid_features.__wrapped__(db=db, grid=grid, filters=StationFilters()))
                timings.append((time.perf_counter() - started) * 1000)
            print(f"{label:<18} median {statistics.median(timings):8.1f} ms  ({features} features, {runs} runs)")
    finally:
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", help="a SQLite file loaded by synth.py, or a database URL")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    url = database_url(args.target)
    upgrade(url)
    asyncio.run(measure(url, args.runs))


if __name__ == "__main__":
    main()

"""Map clusters measured in-process, uncached: the grouping query of a few typical map views.

    python bench/synth.py /tmp/bench.db                     # once: 300,000 synthetic stations
    python bench/clusters.py /tmp/bench.db [--runs 5]

Each view (the whole world, Europe, Germany, a city) is computed `--runs` times with the answer cache bypassed;
prints the median time and the number of features. No target: a cold map should draw in well under a second.

`--answers` measures what a moving map costs the server once the grids are cached: the whole app called as an
ASGI app with views panned a little around Berlin (zoom 12) and Germany (zoom 7), each bbox different, their
grids the same, and prints the median CPU time of a request (the event loop's thread).
"""

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time

import orjson
from asgi import asgi_receive, asgi_scope, asgi_send
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
            timings, features = [], b"[]"
            for _ in range(runs):
                started = time.perf_counter()
                features = await grid_features.__wrapped__(db=db, grid=grid, filters=StationFilters())
                timings.append((time.perf_counter() - started) * 1000)
            count = len(orjson.loads(features))
            print(f"{label:<18} median {statistics.median(timings):8.1f} ms  ({count} features, {runs} runs)")
    finally:
        await db.dispose()


def panned_views(count: int, seed: int = 3) -> list[str]:
    rng = random.Random(seed)
    views = []
    areas = (((13.2, 52.4, 13.6, 52.6), 12, 0.01), ((5.8, 47.2, 15.1, 55.1), 7, 0.05))
    for (west, south, east, north), zoom, shift in areas:
        for _ in range(count):
            dx, dy = rng.uniform(-shift, shift), rng.uniform(-shift, shift)
            bbox = f"{west + dx:.4f},{south + dy:.4f},{east + dx:.4f},{north + dy:.4f}"
            views.append(f"/api/v1/stations/clusters?bbox={bbox}&zoom={zoom}")
    return views


async def answers(runs: int) -> None:
    from voltway.app import create_app  # after main() has set the environment

    app, views = create_app(), panned_views(200)
    async with app.router.lifespan_context(app):
        for view in views:  # the grids' first answers: computed and cached
            await app(asgi_scope(view), asgi_receive, asgi_send)
        cpu = []
        for _ in range(runs):
            for view in views:
                started = time.thread_time()
                await app(asgi_scope(view), asgi_receive, asgi_send)
                cpu.append((time.thread_time() - started) * 1e6)
    print(f"{len(views)} panned views x {runs}: median {statistics.median(cpu):.0f} us of CPU per answer")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", help="a SQLite file loaded by synth.py, or a database URL")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--answers", action="store_true", help="cached answers through the app (see above)")
    args = parser.parse_args()
    url = database_url(args.target)
    upgrade(url)
    if args.answers:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ.update(DATABASE_URL=url, LOG_DIR=tmp, DATA_DIR=tmp, LOG_LEVEL="WARNING")
            asyncio.run(answers(args.runs))
        return
    asyncio.run(measure(url, args.runs))


if __name__ == "__main__":
    main()

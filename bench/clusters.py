"""Map clusters measured in-process, uncached: the grouping query of a few typical map views.

    python bench/synth.py /tmp/bench.db                     # once: 300,000 synthetic stations
    python bench/clusters.py /tmp/bench.db [--runs 5]

Each view (the whole world, of every station and of those available now; Europe, Germany, a city) is computed
`--runs` times with the answer cache bypassed: its cells grouped from the stations (what a filtered view costs),
its cells read from `map_cells` (a view without filters but a status, up to level 12), and the whole answer (map
cells, names, merging, JSON); prints the medians and the number of features. No target: a cold map should draw
in well under a second.

`--refresh` measures bringing `map_cells` up to date: every cell rebuilt (as after a first import), and after
1, 10 and 100 stations changed status (it toggles the status of random stations of the database).

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
from collections.abc import Awaitable

import orjson
from sqlalchemy import text
from asgi import asgi_receive, asgi_scope, asgi_send
from synth import database_url

from voltway.core.db import Database
from voltway.migrations import upgrade
from voltway.stations.clusters import Grid, _grouped_stations, grid_features
from voltway.stations.map_cells import LEAF_LEVEL, MARK_EVERY_CELL, refresh, view_cells
from voltway.stations.search import StationFilters, parse_bbox

EVERY = StationFilters()
AVAILABLE = StationFilters(status="available")
VIEWS = (
    ("world, zoom 2", "-180,-85,180,85", 2, EVERY),
    ("world, available", "-180,-85,180,85", 2, AVAILABLE),
    ("Europe, zoom 5", "-10,35,30,60", 5, EVERY),
    ("Germany, zoom 7", "5,47,15,55", 7, EVERY),
    ("Berlin, zoom 13", "13.3,52.45,13.5,52.55", 13, EVERY),
)


async def measure(url: str, runs: int) -> None:
    db = Database(url)
    try:
        await refresh(db)
        for label, bbox, zoom, filters in VIEWS:
            grid = Grid.covering(parse_bbox(bbox), zoom)
            grouped, cells, answer, features = [], [], [], b"[]"
            for _ in range(runs):
                grouped.append(await timed(_grouped_stations(db, grid, filters)))
                if grid.level <= LEAF_LEVEL:
                    cells.append(await timed(view_cells(db, grid.level, grid.rows, grid.cols, status=filters.status)))
                started = time.perf_counter()
                features = await grid_features.__wrapped__(db=db, grid=grid, filters=filters)
                answer.append((time.perf_counter() - started) * 1000)
            from_cells = f"{statistics.median(cells):7.2f} ms" if cells else "      —   "
            print(
                f"{label:<18} level {grid.level:>2}: grouped from the stations {statistics.median(grouped):7.1f} ms, "
                f"map cells {from_cells}; whole answer {statistics.median(answer):7.2f} ms "
                f"({len(orjson.loads(features))} features, {runs} runs)"
            )
    finally:
        await db.dispose()


async def timed(work: Awaitable[object]) -> float:
    started = time.perf_counter()
    await work
    return (time.perf_counter() - started) * 1000


async def refreshes(url: str, runs: int) -> None:
    """The time of a refresh: every cell rebuilt (after a first import), and after n stations changed status."""
    db = Database(url)
    rng = random.Random(5)
    try:
        ids = [row[0] for row in await db.fetch("SELECT id FROM stations WHERE status <> 'removed'", {})]
        rebuilds = []
        for _ in range(runs):
            async with db.engine.begin() as conn:
                await conn.exec_driver_sql(MARK_EVERY_CELL)
            rebuilds.append(await timed(refresh(db)))
        print(f"every cell rebuilt: median {statistics.median(rebuilds):.0f} ms ({runs} runs)")
        for changed in (1, 10, 100):
            times, marked = [], 0
            for _ in range(runs):
                condition, params = db.one_of("id", rng.sample(ids, changed))
                async with db.engine.begin() as conn:
                    await conn.execute(text(
                        "UPDATE stations SET status = CASE status WHEN 'available' THEN 'occupied' ELSE 'available' "
                        f"END WHERE {condition}"
                    ), params)
                marked = len(await db.fetch("SELECT 1 FROM map_dirty", {}))
                times.append(await timed(refresh(db)))
            print(f"{changed:>4} stations changed ({marked} cells marked): refresh median "
                  f"{statistics.median(times):.1f} ms ({runs} runs)")
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
    parser.add_argument("--refresh", action="store_true", help="map cells refreshes (changes stations' status)")
    args = parser.parse_args()
    url = database_url(args.target)
    upgrade(url)
    if args.answers:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ.update(DATABASE_URL=url, LOG_DIR=tmp, DATA_DIR=tmp, LOG_LEVEL="WARNING")
            asyncio.run(answers(args.runs))
        return
    asyncio.run(refreshes(url, args.runs) if args.refresh else measure(url, args.runs))


if __name__ == "__main__":
    main()

"""`GET /api/v1/me/recommendations` measured in-process: the whole app over httpx's ASGI transport.

    python bench/recommendations.py /tmp/reco.db                      # SQLite: load once, then measure
    python bench/recommendations.py postgresql+asyncpg://postgres@127.0.0.1/bench_reco
    python bench/recommendations.py /tmp/reco.db --skip-load --compare /tmp/recommendations_old.py

The load: `-n` synthetic stations (synth.py), one driver (CCS2 + Type 2 car, 20 favorites, 200 sessions) and
check-ins at 40% of the stations (1 to 25 each over the last 400 days; 85% successes, failures resolved half of
the time). Each round sends `--requests` requests (points around the synthetic cities, limit 10) with the
driver's token, then as many anonymous ones. Reported per kind: the median over rounds of the round's median
wall time per request, and of the process CPU time per request (with `--compare`, also the median of the
rounds' paired differences).

`--compare FILE` alternates every round with another version of `analytics/recommendations.py` (e.g.
`git show HEAD:src/voltway/analytics/recommendations.py > /tmp/recommendations_old.py`), in alternating order,
so that both see the same machine.
"""

import argparse
import asyncio
import importlib.util
import logging
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from search_inprocess import city_points
from sqlalchemy import insert, select
from synth import database_url, generate, load

import voltway.analytics.router as recommendations_router
from voltway.accounts.models import Favorite, User
from voltway.accounts.security import create_access_token
from voltway.app import create_app
from voltway.charging.models import ChargingSession
from voltway.core.db import Database, utcnow
from voltway.reviews.models import Checkin
from voltway.settings import Settings
from voltway.stations.models import Station

DRIVER_EMAIL = "bench-driver@example.org"


async def seed(url: str, seed: int = 5) -> None:
    """The driver, the check-in authors, their check-ins, favorites and sessions (stations already loaded)."""
    rng = random.Random(seed)
    now = utcnow()
    db = Database(url)
    try:
        async with db.sessionmaker.begin() as session:
            station_ids = list((await session.scalars(select(Station.id))).all())
            users = [{"email": DRIVER_EMAIL, "password_hash": "x", "car_connectors": ["ccs2", "type2"],
                      "is_demo": False, "created_at": now}]
            users += [{"email": f"author{i}@example.org", "password_hash": "x", "car_connectors": [],
                       "is_demo": False, "created_at": now} for i in range(500)]
            await session.execute(insert(User), users)
            user_ids = list((await session.scalars(select(User.id).order_by(User.id))).all())
            driver, authors = user_ids[0], user_ids[1:]
            checkins = []
            for station_id in station_ids:
                if rng.random() >= 0.4:
                    continue
                for _ in range(rng.randint(1, 25)):
                    created = now - timedelta(days=rng.uniform(0, 400))
                    outcome = rng.choices(["charged_fine", "could_not_charge", "broken"], [85, 10, 5])[0]
                    resolved = outcome != "charged_fine" and rng.random() < 0.5
                    checkins.append({"user_id": rng.choice(authors), "station_id": station_id, "outcome": outcome,
                                     "created_at": created, "resolved_at": created + timedelta(days=1) if resolved
                                     else None})
            for start in range(0, len(checkins), 20_000):
                await session.execute(insert(Checkin), checkins[start:start + 20_000])
            await session.execute(insert(Favorite), [{"user_id": driver, "station_id": s, "created_at": now}
                                                     for s in rng.sample(station_ids, 20)])
            sessions = []
            for station_id in rng.choices(station_ids, k=200):
                started = now - timedelta(days=rng.uniform(1, 90))
                sessions.append({"user_id": driver, "station_id": station_id, "started_at": started,
                                 "ended_at": started + timedelta(minutes=40), "status": "completed"})
            await session.execute(insert(ChargingSession), sessions)
        print(f"seeded {len(checkins):,} check-ins", file=sys.stderr)
    finally:
        await db.dispose()


def compare_module(path: str) -> Callable[..., Any]:
    spec = importlib.util.spec_from_file_location("recommendations_compared", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.recommend


async def one_round(http: httpx.AsyncClient, points: list[tuple[float, float]], headers: dict[str, str]) -> tuple[float, float]:
    """(median wall ms, mean process CPU ms) per request."""
    timings = []
    started_cpu = time.process_time()
    for lat, lon in points:
        started = time.perf_counter()
        response = await http.get("/api/v1/me/recommendations", params={"lat": lat, "lon": lon}, headers=headers)
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
    return statistics.median(timings), (time.process_time() - started_cpu) * 1000 / len(points)


async def measure(url: str, requests: int, rounds: int, compare: str | None) -> dict[str, dict[str, list[float]]]:
    with tempfile.TemporaryDirectory() as scratch:
        settings = Settings(database_url=url, log_dir=Path(scratch) / "logs", data_dir=Path(scratch) / "data",
                            secret_key="bench-secret-key-" + "x" * 32)
        app = create_app(settings)
        variants = {"current": recommendations_router.recommend}
        if compare:
            variants["compared"] = compare_module(compare)
        results: dict[str, dict[str, list[float]]] = {
            f"{v} {k}": {"wall": [], "cpu": []} for v in variants for k in ("driver", "anonymous")
        }
        async with app.router.lifespan_context(app):
            logging.getLogger("httpx").setLevel(logging.WARNING)
            async with app.state.db.sessionmaker() as session:
                driver = await session.scalar(select(User.id).where(User.email == DRIVER_EMAIL))
            token, _ttl = create_access_token(settings, user_id=driver, version=0)
            kinds = {"driver": {"Authorization": f"Bearer {token}"}, "anonymous": {}}
            points = city_points(requests)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
                for name, recommend in variants.items():  # warm-up
                    recommendations_router.recommend = recommend
                    for headers in kinds.values():
                        await one_round(http, points, headers)
                order = list(variants)
                for round_number in range(rounds):
                    for name in order if round_number % 2 == 0 else reversed(order):
                        recommendations_router.recommend = variants[name]
                        for kind, headers in kinds.items():
                            wall, cpu = await one_round(http, points, headers)
                            results[f"{name} {kind}"]["wall"].append(wall)
                            results[f"{name} {kind}"]["cpu"].append(cpu)
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", help="a SQLite file path or a database URL")
    parser.add_argument("-n", type=int, default=100_000, help="synthetic stations to load (default 100,000)")
    parser.add_argument("--skip-load", action="store_true", help="the target is already loaded")
    parser.add_argument("--requests", type=int, default=200, help="requests per round and kind")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--compare", help="another recommendations.py to alternate with")
    args = parser.parse_args()
    url = database_url(args.target)
    if not args.skip_load:
        load(url, generate(args.n))
        asyncio.run(seed(url))
    results = asyncio.run(measure(url, args.requests, args.rounds, args.compare))
    for name, figures in results.items():
        print(f"{name:22} wall p50 {statistics.median(figures['wall']):6.3f} ms, "
              f"CPU {statistics.median(figures['cpu']):6.3f} ms per request "
              f"(median of {args.rounds} rounds of {args.requests})")
    if args.compare:  # paired by round: the two ran back to back
        for kind in ("driver", "anonymous"):
            now, then = results[f"current {kind}"], results[f"compared {kind}"]
            print(f"current - compared, {kind:9}: " + ", ".join(
                f"{measure} {statistics.median(a - b for a, b in zip(now[measure], then[measure])):+.3f} ms"
                for measure in ("wall", "cpu")) + " (median of the rounds' differences)")


if __name__ == "__main__":
    main()

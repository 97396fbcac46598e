"""Station answers from the cache stay correct: every write makes them stale, in this process and in others."""

import asyncio
import sys
from pathlib import Path

import httpx
import pytest
from tests.platform.conftest import Processes, free_port, process_env, wait_for_job

from voltway.accounts.keys import create_key
from voltway.accounts.roles import Role
from voltway.core.cache import cache
from voltway.core.db import Database
from voltway.core.jobs import enqueue
from voltway.settings import Settings

sys.path.insert(0, str(Path(__file__).parents[1] / "stations"))
from station_factories import make_station  # noqa: E402

pytestmark = pytest.mark.usefixtures("backend")

SEARCH = "/api/v1/stations?lat=52.52&lon=13.37&radius_km=10"
NEAREST = "/api/v1/stations/nearest?lat=52.52&lon=13.37&k=3"


async def test_reads_after_each_write_show_it(client: httpx.AsyncClient, operator_headers: dict[str, str]) -> None:
    created = await client.post("/api/v1/stations", json=make_station(name="v0"), headers=operator_headers)
    station_id = created.json()["id"]
    detail = f"/api/v1/stations/{station_id}"
    for version in range(1, 8):
        for path in (SEARCH, NEAREST, detail):  # cache the current answers (twice: the second is a hit)
            assert (await client.get(path)).status_code == 200
            await client.get(path)
        hits = cache.stats["hit"]
        patched = await client.patch(detail, json={"name": f"v{version}"}, headers=operator_headers)
        assert patched.status_code == 200
        assert [item["name"] for item in (await client.get(SEARCH)).json()["items"]] == [f"v{version}"]
        assert [item["name"] for item in (await client.get(NEAREST)).json()["items"]] == [f"v{version}"]
        assert (await client.get(detail)).json()["name"] == f"v{version}"
        assert cache.stats["hit"] == hits  # all three were recomputed
    assert (await client.delete(detail, headers=operator_headers)).status_code == 204
    assert (await client.get(detail)).status_code == 404
    assert (await client.get(SEARCH)).json()["items"] == []


async def test_etag_revalidation(client: httpx.AsyncClient, operator_headers: dict[str, str]) -> None:
    station_id = (await client.post("/api/v1/stations", json=make_station(), headers=operator_headers)).json()["id"]
    first = await client.get(SEARCH)
    assert first.headers["cache-control"] == "public, max-age=30"
    same = await client.get(SEARCH, headers={"If-None-Match": first.headers["etag"]})
    assert same.status_code == 304 and same.headers["etag"] == first.headers["etag"]
    await client.patch(f"/api/v1/stations/{station_id}", json={"operator": "Other"}, headers=operator_headers)
    changed = await client.get(SEARCH, headers={"If-None-Match": first.headers["etag"]})
    assert changed.status_code == 200 and changed.headers["etag"] != first.headers["etag"]
    assert changed.json()["items"][0]["operator"] == "Other"


async def test_concurrent_readers_never_see_a_write_undone(
    client: httpx.AsyncClient, operator_headers: dict[str, str]
) -> None:
    """Readers hammer the search while names change; once a PATCH has answered, no read shows an older name."""
    station_id = (await client.post("/api/v1/stations", json=make_station(name="n0"), headers=operator_headers)).json()["id"]
    committed = 0
    stale: list[tuple[int, int]] = []
    done = False

    async def reader() -> None:
        while not done:
            floor = committed
            names = [i["name"] for i in (await client.get(SEARCH)).json()["items"]]
            if int(names[0][1:]) < floor:
                stale.append((floor, int(names[0][1:])))
            await asyncio.sleep(0)  # a hit never suspends in memory mode: let the writer run

    readers = [asyncio.create_task(reader()) for _ in range(4)]
    for n in range(1, 16):
        await client.patch(f"/api/v1/stations/{station_id}", json={"name": f"n{n}"}, headers=operator_headers)
        committed = n
        await asyncio.sleep(0.01)
    done = True
    await asyncio.gather(*readers)
    assert stale == []


async def two_servers_agree(
    env: dict[str, str], processes: Processes, db: Database, *, within: float = 0.0
) -> None:
    """Both servers cache the search; a PATCH through either is seen through the other at once, or `within`
    seconds where the other learns of it from a published message (Redis: `core/cache.py`)."""
    async with db.sessionmaker.begin() as session:
        _key, secret = await create_key(session, role=Role.operator, name="cache")
    urls = []
    for name in ("serve1", "serve2"):
        port = free_port()
        processes.start(["serve", "--port", str(port)], env, name)
        urls.append(f"http://127.0.0.1:{port}")
    async with httpx.AsyncClient(headers={"X-API-Key": secret}, timeout=10) as http:
        for url, name in zip(urls, ("serve1", "serve2"), strict=True):
            for _ in range(300):
                try:
                    if (await http.get(url + "/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError(processes.output(name))
        station_id = (await http.post(urls[0] + "/api/v1/stations", json=make_station(name="a0"))).json()["id"]
        for n in range(1, 6):
            for url in urls:  # both servers have the current answer cached
                await http.get(url + SEARCH)
                await http.get(url + SEARCH)
            writer, reader = urls[n % 2], urls[(n + 1) % 2]
            assert (await http.patch(f"{writer}/api/v1/stations/{station_id}", json={"name": f"a{n}"})).status_code == 200
            names = [i["name"] for i in (await http.get(reader + SEARCH)).json()["items"]]
            deadline = asyncio.get_running_loop().time() + within
            while names != [f"a{n}"] and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.01)
                names = [i["name"] for i in (await http.get(reader + SEARCH)).json()["items"]]
            assert names == [f"a{n}"]


@pytest.mark.redis
async def test_a_write_through_one_server_is_seen_by_the_other_with_redis(
    redis_settings: Settings, processes: Processes, db: Database
) -> None:
    await two_servers_agree(process_env(redis_settings), processes, db, within=2.0)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # without Redis, only the SQLite file is shared
async def test_a_write_through_one_server_is_seen_by_the_other_embedded(
    settings: Settings, processes: Processes, db: Database
) -> None:
    await two_servers_agree(process_env(settings), processes, db)


async def test_the_warm_up_job_recomputes_the_most_missed_answers(
    client: httpx.AsyncClient, db: Database, operator_headers: dict[str, str]
) -> None:
    station_id = (await client.post("/api/v1/stations", json=make_station(name="w0"), headers=operator_headers)).json()["id"]
    await client.get(SEARCH)
    await client.get(NEAREST)
    await client.patch(f"/api/v1/stations/{station_id}", json={"name": "w1"}, headers=operator_headers)
    await client.get(SEARCH)  # SEARCH has now been computed twice, NEAREST once
    await client.patch(f"/api/v1/stations/{station_id}", json={"name": "w2"}, headers=operator_headers)
    # Keys are the URLs with sorted parameters.
    assert await cache.popular("stations", 2) == [SEARCH, "/api/v1/stations/nearest?k=3&lat=52.52&lon=13.37"]
    job = await wait_for_job(db, await enqueue("cache.warmup", {"limit": 2}))
    assert (job.status, job.result) == ("completed", {"paths": 2, "warmed": 2})
    hits = cache.stats["hit"]
    assert [i["name"] for i in (await client.get(SEARCH)).json()["items"]] == ["w2"]
    assert [i["name"] for i in (await client.get(NEAREST)).json()["items"]] == ["w2"]
    assert cache.stats["hit"] == hits + 2  # both answered from the warmed cache

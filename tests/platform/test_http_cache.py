"""Cached GET answers: ready bytes per normalized URL, ETag / Cache-Control, 304, invalidation."""

import re
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from fastapi import FastAPI, Request, Response

from voltway.core.cache import CacheFront, cache, cached_response, invalidate


@pytest.fixture
async def counted() -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, int]]]:
    cache.configure(redis_url=None, default_ttl=60)
    state = {"renders": 0, "value": 1}
    app = FastAPI()

    @app.get("/things")
    async def things(request: Request) -> Response:
        async def render() -> bytes:
            state["renders"] += 1
            return orjson.dumps({"value": state["value"], "query": sorted(request.query_params.multi_items())})

        return await cached_response(request, render, namespace="things")

    app.add_middleware(CacheFront, namespace="things", paths=re.compile("/things"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        yield client, state


async def test_answers_are_cached_per_normalized_url(counted: tuple[httpx.AsyncClient, dict[str, int]]) -> None:
    client, state = counted
    first = await client.get("/things?b=2&a=1&a=0")
    again = await client.get("/things?a=1&a=0&b=2")  # same parameters in another order: same entry
    assert first.content == again.content and state["renders"] == 1
    assert first.headers == again.headers  # the route's miss answer and the front's hit answer look alike
    assert first.json() == {"value": 1, "query": [["a", "0"], ["a", "1"], ["b", "2"]]}
    assert first.headers["content-type"] == "application/json"
    assert first.headers["cache-control"] == "public, max-age=30"
    other = await client.get("/things?a=2")
    assert other.status_code == 200 and state["renders"] == 2


async def test_etag_and_304(counted: tuple[httpx.AsyncClient, dict[str, int]]) -> None:
    client, _state = counted
    first = await client.get("/things")
    etag = first.headers["etag"]
    assert etag.startswith('"') and len(etag) == 18
    unchanged = await client.get("/things", headers={"If-None-Match": f'"other", W/{etag}'})
    assert (unchanged.status_code, unchanged.content, unchanged.headers["etag"]) == (304, b"", etag)
    assert (await client.get("/things", headers={"If-None-Match": '"nope"'})).status_code == 200


async def test_a_bump_makes_the_next_answer_fresh(counted: tuple[httpx.AsyncClient, dict[str, int]]) -> None:
    client, state = counted
    before = await client.get("/things")
    state["value"] = 2
    assert (await client.get("/things")).json()["value"] == 1  # still cached
    await invalidate("things")
    after = await client.get("/things", headers={"If-None-Match": before.headers["etag"]})
    assert after.status_code == 200 and after.json()["value"] == 2
    assert after.headers["etag"] != before.headers["etag"]
    assert await cache.popular("things", 5) == ["/things"]  # rendered twice: the most recomputed answer


async def test_cache_ttl_zero_turns_the_answer_cache_off(counted: tuple[httpx.AsyncClient, dict[str, int]]) -> None:
    client, state = counted
    cache.configure(redis_url=None, default_ttl=0)  # CACHE_TTL=0
    first = await client.get("/things?a=1")
    state["value"] = 2
    second = await client.get("/things?a=1")
    assert state["renders"] == 2 and (first.json()["value"], second.json()["value"]) == (1, 2)
    assert first.headers["etag"] != second.headers["etag"]  # still tagged from the content
    unchanged = await client.get("/things?a=1", headers={"If-None-Match": second.headers["etag"]})
    assert unchanged.status_code == 304 and state["renders"] == 3
    assert await cache.popular("things", 5) == []  # nothing cached, nothing counted

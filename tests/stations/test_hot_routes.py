"""The hot routes (`core/hot_routes.py`: search, nearest, clusters) answer exactly as through FastAPI."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request, Response

from tests.observability.conftest import scrape, value
from tests.stations.test_stations_api import create
from voltway.app import create_app
from voltway.core.hot_routes import HotRoutes, include_hot_router
from voltway.core.middleware import ObservabilityMiddleware
from voltway.settings import Settings

REQUESTS = "voltway_http_requests_total"

# Answers (successes, 422s from the query model, from the search itself and from the cursor) compared both ways.
PATHS = [
    "/api/v1/stations?lat=52.52&lon=13.40&radius_km=30&limit=2",
    "/api/v1/stations?lat=52.52&lon=13.40&radius_km=30&limit=2&connector=ccs2&min_power_kw=100",
    "/api/v1/stations?bbox=13,52,14,53&sort=power",
    "/api/v1/stations?status=removed",
    "/api/v1/stations/nearest?lat=52.5&lon=13.4&k=3",
    "/api/v1/stations?lat=95&lon=13.4",
    "/api/v1/stations?radius_km=5",
    "/api/v1/stations?lat=52.5&lon=13.4&connector=tesla-nope&limit=0",
    "/api/v1/stations?cursor=not-a-cursor",
    "/api/v1/stations?bbox=1,2,3",
    "/api/v1/stations/nearest?lat=52.5",
    "/api/v1/stations/clusters?bbox=13,52,14,53&zoom=9",
    "/api/v1/stations/clusters?bbox=-180,-90,180,90&zoom=2&min_power_kw=60",
    "/api/v1/stations/clusters?bbox=13,52,14&zoom=9",
    "/api/v1/stations/clusters?bbox=13,52,14,53",
]


@pytest.fixture
async def cold_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The same app without its `HotRoutes` middleware: every request goes through FastAPI's routing."""
    application = create_app(settings)
    application.user_middleware = [m for m in application.user_middleware if m.cls is not HotRoutes]
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


async def test_hot_answers_equal_fastapis(
    client: httpx.AsyncClient, cold_client: httpx.AsyncClient, operator_headers: dict[str, str]
) -> None:
    for i, (lat, lon, power) in enumerate([(52.52, 13.40, 150.0), (52.53, 13.41, 50.0), (52.6, 13.2, None)]):
        connectors = [{"type": "ccs2", "power_kw": power}] if power is not None else []
        await create(client, operator_headers, name=f"S{i}", latitude=lat, longitude=lon, connectors=connectors)
    statuses = set()
    for path in PATHS:
        hot, cold = await client.get(path), await cold_client.get(path)
        assert (hot.status_code, hot.json()) == (cold.status_code, cold.json()), path
        assert hot.headers.get("etag") == cold.headers.get("etag")
        statuses.add(hot.status_code)
    assert statuses == {200, 422}


async def test_hot_requests_are_counted_under_their_route_template(client: httpx.AsyncClient) -> None:
    before = await scrape(client)
    assert (await client.get("/api/v1/stations?lat=1&lon=2")).status_code == 200
    assert (await client.get("/api/v1/stations/nearest?lat=1&lon=2")).status_code == 200
    assert (await client.get("/api/v1/stations?lat=100&lon=2")).status_code == 422
    assert (await client.get("/api/v1/stations/clusters?bbox=0,0,1,1&zoom=3")).status_code == 200
    after = await scrape(client)

    def delta(**labels: str) -> float:
        return value(after, REQUESTS, **labels) - value(before, REQUESTS, **labels)

    assert delta(method="GET", route="/api/v1/stations", status="200") == 1
    assert delta(method="GET", route="/api/v1/stations/nearest", status="200") == 1
    assert delta(method="GET", route="/api/v1/stations", status="422") == 1
    assert delta(method="GET", route="/api/v1/stations/clusters", status="200") == 1


async def test_other_methods_still_go_through_fastapi(client: httpx.AsyncClient) -> None:
    response = await client.put("/api/v1/stations")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_a_hot_route_takes_the_request_alone() -> None:
    router = APIRouter(prefix="/things")

    async def key() -> str:
        return "k"

    @router.get("")
    async def listing(request: Request) -> Response:
        return Response()

    @router.get("/guarded")
    async def guarded(request: Request, _key: str = Depends(key)) -> Response:
        return Response()

    @router.get("/{thing_id}")
    async def one(thing_id: int) -> Response:
        return Response()

    @router.post("/new")
    async def make(request: Request) -> Response:
        return Response()

    async def stray(request: Request) -> Response:
        return Response()

    app = FastAPI()
    assert list(include_hot_router(app, router, [listing], prefix="/api")) == ["/api/things"]
    included = {"/api/things", "/api/things/guarded", "/api/things/{thing_id}", "/api/things/new"}
    assert set(app.openapi()["paths"]) == included
    for endpoint in (guarded, one, make):
        with pytest.raises(TypeError, match=endpoint.__name__):
            include_hot_router(FastAPI(), router, [endpoint], prefix="/api")
    with pytest.raises(LookupError):
        include_hot_router(FastAPI(), router, [listing, stray], prefix="/api")
    with pytest.raises(TypeError, match="the app has dependencies"):
        include_hot_router(FastAPI(dependencies=[Depends(key)]), router, [listing], prefix="/api")


async def test_an_unhandled_error_is_a_500_in_the_error_model() -> None:
    """An exception no handler takes leaves the hot route as it leaves a FastAPI route: the observability
    middleware answers a 500 in the error model."""
    router = APIRouter()

    @router.get("/boom")
    async def boom(request: Request) -> Any:
        raise RuntimeError("kaboom")

    application = FastAPI()
    application.add_middleware(HotRoutes, routes=include_hot_router(application, router, [boom], prefix=""))
    application.add_middleware(ObservabilityMiddleware, slow_request_threshold=10.0)
    transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get("/boom")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert "kaboom" not in response.text

"""Live status over WebSocket: real servers (in-process uvicorn, `voltway serve` processes), real Redis."""

import asyncio
import contextlib
import json
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from redis.exceptions import RedisError
from websockets.asyncio.client import ClientConnection, connect

from tests.processes import IN_CI, free_port, voltway_server
from voltway.charging.status import record_status_change
from voltway.core.db import Database
from voltway.core.geo import unit_vector
from voltway.realtime.hub import Hub, Interest, StatusEvent, hub
from voltway.stations.models import Connector, Station

REDIS_URL = "redis://127.0.0.1:6379/0"


async def add_station(db: Database, lat: float, lon: float) -> tuple[int, int]:
    """A station with one connector; returns (station id, connector id)."""
    x, y, z = unit_vector(lat, lon)
    async with db.sessionmaker.begin() as session:
        station = Station(
            source="test", external_id=uuid.uuid4().hex, name="Live", latitude=lat, longitude=lon, x=x, y=y, z=z,
            status="available", connectors=[Connector(type="ccs2", power_kw=150.0, status="available")],
        )
        session.add(station)
        await session.flush()
        return station.id, station.connectors[0].id


async def change_status(
    db: Database, station_id: int, connector_id: int | None, status: str, *, commit: bool = True
) -> dict[str, Any]:
    """Change a status through the one funnel; returns the event clients should get."""
    async with db.sessionmaker() as session:
        change = await record_status_change(
            session, station_id=station_id, connector_id=connector_id, status=status, source="test"
        )
        assert change is not None
        at = change.changed_at.isoformat()
        station = await session.get(Station, station_id)
        assert station is not None
        position = station.latitude, station.longitude
        if commit:
            await session.commit()
        else:
            await session.rollback()
    return {"type": "status", "station_id": station_id, "connector_id": connector_id, "status": status, "at": at,
            "latitude": position[0], "longitude": position[1]}


async def receive(ws: ClientConnection, timeout: float = 5) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


@pytest.fixture
async def ws_base(app: FastAPI) -> AsyncIterator[str]:
    """The app (lifespan already running) served by uvicorn on a real socket in this event loop."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.02)
    yield f"ws://127.0.0.1:{server.config.port}/ws/stations"
    server.should_exit = True
    await task


async def test_status_reaches_matching_clients_after_commit(ws_base: str, db: Database) -> None:
    berlin, berlin_connector = await add_station(db, 52.52, 13.40)
    fiji, _ = await add_station(db, -17.7, 179.9)
    async with (
        connect(f"{ws_base}?station_id={berlin}") as by_id,
        connect(f"{ws_base}?bbox=13,52,14,53") as by_box,
        connect(f"{ws_base}?bbox=170,-20,-170,-10") as across_antimeridian,
        connect(ws_base) as everything,
    ):
        assert await receive(by_id) == {"type": "subscribed", "bbox": None, "station_ids": [berlin]}
        assert await receive(by_box) == {"type": "subscribed", "bbox": [13, 52, 14, 53], "station_ids": []}
        assert (await receive(across_antimeridian))["bbox"] == [170, -20, -170, -10]
        assert await receive(everything) == {"type": "subscribed", "bbox": None, "station_ids": []}

        await change_status(db, berlin, berlin_connector, "occupied", commit=False)  # rolled back: never sent
        occupied = await change_status(db, berlin, berlin_connector, "occupied")
        removed = await change_status(db, fiji, None, "out_of_service")
        assert await receive(by_id) == occupied
        assert await receive(by_box) == occupied
        assert await receive(everything) == occupied
        assert await receive(everything) == removed
        assert await receive(across_antimeridian) == removed
        # Nothing else is queued for these clients: the next answer is the pong.
        for ws in (by_id, by_box, across_antimeridian, everything):
            await ws.send(json.dumps({"type": "ping"}))
            assert await receive(ws) == {"type": "pong"}


async def test_subscription_messages_and_errors(ws_base: str, db: Database) -> None:
    station, connector = await add_station(db, 48.85, 2.35)
    async with connect(f"{ws_base}?station_id={station + 1000}") as ws:
        await receive(ws)
        await ws.send(json.dumps({"type": "subscribe", "bbox": "2,48,3,49"}))
        assert await receive(ws) == {"type": "subscribed", "bbox": [2, 48, 3, 49], "station_ids": []}
        await ws.send("not json")
        assert await receive(ws) == {"type": "error", "message": "not valid JSON"}
        await ws.send(json.dumps({"type": "dance"}))
        assert await receive(ws) == {"type": "error", "message": "type must be 'subscribe' or 'ping'"}
        await ws.send(json.dumps({"type": "subscribe", "bbox": "2,48,3"}))
        assert "bbox" in (await receive(ws))["message"]
        await ws.send(json.dumps({"type": "subscribe", "station_ids": ["x"]}))
        assert (await receive(ws))["message"] == "station_ids must be a list of integers"
        # The connection survived the errors and kept its last good subscription.
        event = await change_status(db, station, connector, "occupied")
        assert await receive(ws) == event
    async with connect(f"{ws_base}?bbox=oops") as ws:
        assert (await receive(ws))["type"] == "error"
        await asyncio.wait_for(ws.wait_closed(), 5)
        assert ws.close_code == 1008


def open_connections() -> float:
    return REGISTRY.get_sample_value("voltway_websocket_connections") or 0.0


async def test_connections_are_counted(ws_base: str) -> None:
    before = open_connections()
    async with connect(ws_base) as first, connect(ws_base) as second:
        await receive(first)
        await receive(second)
        assert open_connections() == before + 2
    for _ in range(100):
        if open_connections() == before:
            break
        await asyncio.sleep(0.02)
    assert open_connections() == before


# --------------------------------------------------------------------------------------------- Redis
async def redis_or_skip(url: str) -> None:
    client = Redis.from_url(url, socket_connect_timeout=2)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        if IN_CI:
            pytest.fail(f"Redis is required under CI=true: {exc}")
        pytest.skip(f"Redis does not answer: {exc}")
    finally:
        await client.aclose()


async def wait_for_subscribers(url: str, channel: str, count: int, timeout: float = 20) -> None:
    client = Redis.from_url(url)
    try:
        for _ in range(int(timeout / 0.05)):
            if dict(await client.pubsub_numsub(channel)).get(channel.encode(), 0) >= count:
                return
            await asyncio.sleep(0.05)
        pytest.fail(f"{count} subscribers to {channel} expected")
    finally:
        await client.aclose()


@pytest.mark.redis
async def test_redis_carries_events_to_clients_of_another_process(database_url: str, tmp_path: Path) -> None:
    await redis_or_skip(REDIS_URL)
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    db = Database(database_url)
    await hub.start(REDIS_URL, prefix=prefix)
    try:
        station, connector = await add_station(db, 40.4, -3.7)
        env = {"DATABASE_URL": database_url, "REDIS_URL": REDIS_URL, "REDIS_PREFIX": prefix}
        with voltway_server(tmp_path, env=env) as base:
            await wait_for_subscribers(REDIS_URL, hub.channel, 2)  # this process and the server
            async with connect(base.replace("http", "ws") + f"/ws/stations?station_id={station}") as ws:
                await receive(ws)
                event = await change_status(db, station, connector, "occupied")
                assert await receive(ws) == event
    finally:
        await hub.stop()
        await db.dispose()


@contextlib.contextmanager
def private_redis(port: int, directory: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A Redis server of this test alone (so that it can be stopped and started again)."""
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.skip("redis-server is not installed")
    command = [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", str(directory)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield process
    finally:
        process.kill()
        process.wait()


@pytest.mark.redis
async def test_hub_reconnects_when_redis_comes_back(tmp_path: Path) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    local = Hub()
    subscriber = local.subscribe(Interest())
    event = StatusEvent(7, None, "occupied", datetime(2026, 11, 28, 13, 0, tzinfo=UTC), 1.0, 2.0)
    try:
        with private_redis(port, tmp_path):
            await redis_up(url)
            await local.start(url, prefix="reconnect")
            await asyncio.wait_for(local.listening.wait(), 10)
            local.publish(event)
            assert json.loads(await asyncio.wait_for(subscriber.queue.get(), 5)) == event.payload()
        # Redis is gone; the hub notices and keeps trying.
        for _ in range(200):
            if not local.listening.is_set():
                break
            await asyncio.sleep(0.05)
        assert not local.listening.is_set()
        with private_redis(port, tmp_path):
            await asyncio.wait_for(local.listening.wait(), 20)
            local.publish(event)
            assert json.loads(await asyncio.wait_for(subscriber.queue.get(), 10)) == event.payload()
    finally:
        await local.stop()


async def redis_up(url: str) -> None:
    client = Redis.from_url(url)
    try:
        for _ in range(100):
            with contextlib.suppress(RedisError, OSError):
                await client.ping()
                return
            await asyncio.sleep(0.05)
        pytest.fail("private redis-server did not start")
    finally:
        await client.aclose()

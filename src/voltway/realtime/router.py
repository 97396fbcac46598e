"""WebSocket `/ws/stations`: live status of stations and connectors.

On connect (optionally `?bbox=minLon,minLat,maxLon,maxLat&station_id=1&station_id=2`) and after each
`{"type": "subscribe", "bbox": "...", "station_ids": [...]}` message the server answers
`{"type": "subscribed", "bbox": ..., "station_ids": [...]}`; then it pushes
`{"type": "status", "station_id", "connector_id", "status", "at", "latitude", "longitude"}` for every change
inside the box or of the listed stations (everything when neither is given). `{"type": "ping"}` gets
`{"type": "pong"}`; a bad message gets `{"type": "error", "message"}` and the connection stays open. A client
that falls too far behind is closed with code 1013 and should reconnect and reload what it shows.
"""

import asyncio
import contextlib
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from voltway.core.errors import InvalidInput
from voltway.core.metrics import WEBSOCKET_CONNECTIONS
from voltway.realtime.hub import Interest, Subscriber, hub
from voltway.stations.search import parse_bbox

router = APIRouter()

MAX_STATION_IDS = 1_000
TRY_AGAIN_LATER = 1013


def parse_interest(bbox: Any, station_ids: Any) -> Interest:
    if bbox is not None and not isinstance(bbox, str):
        if not (isinstance(bbox, list) and all(isinstance(v, int | float) for v in bbox)):
            raise InvalidInput("bbox must be 'minLon,minLat,maxLon,maxLat' or a list of four numbers")
        bbox = ",".join(str(v) for v in bbox)
    ids = station_ids or []
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise InvalidInput("station_ids must be a list of integers")
    if len(ids) > MAX_STATION_IDS:
        raise InvalidInput(f"station_ids: at most {MAX_STATION_IDS}")
    return Interest(bbox=parse_bbox(bbox) if bbox else None, station_ids=frozenset(ids))


def describe(interest: Interest) -> dict[str, Any]:
    box = interest.bbox
    return {
        "type": "subscribed",
        "bbox": [box.lon_ranges[0][0], box.min_lat, box.lon_ranges[-1][1], box.max_lat] if box else None,
        "station_ids": sorted(interest.station_ids),
    }


async def _push(websocket: WebSocket, subscriber: Subscriber) -> None:
    """Send queued events; close the connection when the subscriber has overflowed."""
    overflow = asyncio.create_task(subscriber.overflowed.wait())
    try:
        while not subscriber.overflowed.is_set():
            get = asyncio.create_task(subscriber.queue.get())
            await asyncio.wait({get, overflow}, return_when=asyncio.FIRST_COMPLETED)
            if not get.done():
                get.cancel()
                break
            await websocket.send_text(get.result().decode())
    finally:
        overflow.cancel()
    await websocket.close(TRY_AGAIN_LATER, "too far behind; reconnect")


async def _receive(websocket: WebSocket, subscriber: Subscriber) -> None:
    """Answer client messages: new subscriptions and pings."""
    while True:
        text = await websocket.receive_text()
        try:
            message = orjson.loads(text)
            if not isinstance(message, dict):
                raise InvalidInput("a message is a JSON object with a `type`")
            kind = message.get("type")
            if kind == "ping":
                await websocket.send_json({"type": "pong"})
            elif kind == "subscribe":
                subscriber.interest = parse_interest(message.get("bbox"), message.get("station_ids"))
                await websocket.send_json(describe(subscriber.interest))
            else:
                raise InvalidInput("type must be 'subscribe' or 'ping'")
        except (orjson.JSONDecodeError, InvalidInput) as exc:
            reason = exc.message if isinstance(exc, InvalidInput) else "not valid JSON"
            await websocket.send_json({"type": "error", "message": reason})


@router.websocket("/ws/stations", name="station_status")
async def station_status(websocket: WebSocket) -> None:
    await websocket.accept()
    WEBSOCKET_CONNECTIONS.inc()
    try:
        try:
            interest = parse_interest(
                websocket.query_params.get("bbox"),
                [int(v) for v in websocket.query_params.getlist("station_id")],
            )
        except (InvalidInput, ValueError) as exc:
            await websocket.send_json({"type": "error", "message": getattr(exc, "message", "station_id: integers")})
            await websocket.close(1008)
            return
        subscriber = hub.subscribe(interest)
        try:
            await websocket.send_json(describe(interest))
            tasks = {
                asyncio.create_task(_push(websocket, subscriber)),
                asyncio.create_task(_receive(websocket, subscriber)),
            }
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
                    await task
            for task in done:
                with contextlib.suppress(WebSocketDisconnect):
                    task.result()
        finally:
            hub.unsubscribe(subscriber)
    finally:
        WEBSOCKET_CONNECTIONS.dec()

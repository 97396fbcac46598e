"""Live status fan-out: status events reach every WebSocket client whose subscription they match.

One hub per process (`hub`), started and stopped by the app's lifespan. Without Redis it hands events
straight to the subscribers of this process. With `REDIS_URL` every event goes through one Redis pub/sub
channel, so it reaches the clients of every worker process (the publishing one included, through the same
path); the hub reconnects by itself when Redis goes away, and events published meanwhile wait in a bounded
outbox. Publishing never blocks: it is safe from a SQLAlchemy `after_commit` hook.
"""

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from voltway.core.geo import GeoBox

logger = logging.getLogger(__name__)

CHANNEL = "station-status"
OUTBOX_SIZE = 10_000
SUBSCRIBER_QUEUE_SIZE = 1_000
RECONNECT_DELAYS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)


@dataclass(frozen=True)
class StatusEvent:
    """A station's (connector_id None) or a connector's new status; the position serves bbox subscriptions."""

    station_id: int
    connector_id: int | None
    status: str
    at: datetime
    latitude: float
    longitude: float

    def payload(self) -> dict[str, Any]:
        return {
            "type": "status",
            "station_id": self.station_id,
            "connector_id": self.connector_id,
            "status": self.status,
            "at": self.at.isoformat(),
            "latitude": self.latitude,
            "longitude": self.longitude,
        }


@dataclass(frozen=True)
class Interest:
    """What a client wants: events inside `bbox` or of `station_ids`; nothing given means everything."""

    bbox: GeoBox | None = None
    station_ids: frozenset[int] = frozenset()

    def matches(self, event: dict[str, Any]) -> bool:
        if self.bbox is None and not self.station_ids:
            return True
        if event["station_id"] in self.station_ids:
            return True
        box, lat, lon = self.bbox, event["latitude"], event["longitude"]
        return (
            box is not None
            and box.min_lat <= lat <= box.max_lat
            and any(west <= lon <= east for west, east in box.lon_ranges)
        )


@dataclass(eq=False)
class Subscriber:
    interest: Interest
    queue: asyncio.Queue[bytes] = field(default_factory=lambda: asyncio.Queue(SUBSCRIBER_QUEUE_SIZE))
    # Set when the client fell too far behind and events were lost: it should reconnect and reload.
    overflowed: asyncio.Event = field(default_factory=asyncio.Event)


class Hub:
    def __init__(self) -> None:
        self._subscribers: set[Subscriber] = set()
        self._redis: Redis | None = None
        self._outbox: asyncio.Queue[bytes] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.channel = CHANNEL
        # Set while the Redis subscription is live (tests and readiness wait on it).
        self.listening = asyncio.Event()

    async def start(self, redis_url: str | None, *, prefix: str = "voltway") -> None:
        """Start the Redis tasks when `redis_url` is given (channel `<prefix>:station-status`); idempotent."""
        if self._tasks or not redis_url:
            return
        self.channel = f"{prefix}:{CHANNEL}"
        self._redis = Redis.from_url(redis_url, socket_connect_timeout=2, health_check_interval=10)
        self._outbox = asyncio.Queue(OUTBOX_SIZE)
        self.listening = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._listen(), name="voltway-hub-listen"),
            asyncio.create_task(self._send(), name="voltway-hub-send"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
        self._outbox = None

    def subscribe(self, interest: Interest) -> Subscriber:
        subscriber = Subscriber(interest)
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    def publish(self, event: StatusEvent) -> None:
        """Send an event to every matching client of every process; returns at once."""
        data = orjson.dumps(event.payload())
        if self._outbox is None:
            self._deliver(data)
            return
        try:
            self._outbox.put_nowait(data)
        except asyncio.QueueFull:
            logger.warning("live status outbox full (Redis unreachable?); event dropped",
                           extra={"station_id": event.station_id})

    def _deliver(self, data: bytes) -> None:
        event = orjson.loads(data)
        for subscriber in self._subscribers:
            if subscriber.overflowed.is_set() or not subscriber.interest.matches(event):
                continue
            try:
                subscriber.queue.put_nowait(data)
            except asyncio.QueueFull:
                subscriber.overflowed.set()

    async def _send(self) -> None:
        assert self._redis is not None and self._outbox is not None
        data = await self._outbox.get()
        attempt = 0
        while True:
            try:
                await self._redis.publish(self.channel, data)
            except (RedisError, OSError) as exc:
                await self._backoff("publish", exc, attempt)
                attempt += 1
                continue  # the same event again, so none is lost while Redis is away
            attempt = 0
            data = await self._outbox.get()

    async def _listen(self) -> None:
        assert self._redis is not None
        attempt = 0
        while True:
            try:
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self.channel)
                    self.listening.set()
                    attempt = 0
                    while True:
                        message = await pubsub.get_message(timeout=None)
                        if message is not None and message["type"] == "message":
                            self._deliver(message["data"])
            except (RedisError, OSError) as exc:
                self.listening.clear()
                await self._backoff("subscription", exc, attempt)
                attempt += 1

    @staticmethod
    async def _backoff(what: str, exc: Exception, attempt: int) -> None:
        delay = RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)]
        logger.warning("live status %s lost Redis (%s); retrying in %.2fs", what, exc, delay)
        await asyncio.sleep(delay)


hub = Hub()


async def publish_status(
    *, station_id: int, connector_id: int | None, status: str, at: datetime, latitude: float, longitude: float
) -> None:
    """Announce a committed status change to live clients (see `realtime.notify` for the commit hook)."""
    hub.publish(StatusEvent(station_id, connector_id, status, at, latitude, longitude))

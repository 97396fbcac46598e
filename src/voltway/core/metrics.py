"""Prometheus metrics: every metric of the service is defined here, once, at import time.

Features import the objects and update them (see the table in the README's Operations section). With
several worker processes (`voltway serve --workers N`) `PROMETHEUS_MULTIPROC_DIR` is set before the workers
start, prometheus-client then keeps each process's values in memory-mapped files, and `/metrics`
aggregates them (gauges by their `multiprocess_mode`).
"""

import logging
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psutil
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response

from voltway import __version__

if TYPE_CHECKING:  # the command line imports this module; only the server needs FastAPI
    from fastapi import FastAPI

logger = logging.getLogger(__name__)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED_ROUTE = "<unmatched>"
# Latency buckets from 1 ms to 10 s: the API answers in milliseconds; the slow end catches exports/imports.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DB_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
JOB_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

# ------------------------------------------------------------------------------------------- HTTP
HTTP_REQUESTS = Counter(
    "voltway_http_requests_total", "HTTP requests by method, route template and status", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "voltway_http_request_duration_seconds",
    "HTTP request duration by method and route template",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
HTTP_IN_PROGRESS = Gauge(
    "voltway_http_requests_in_progress", "HTTP requests being served", ["method"], multiprocess_mode="livesum"
)
HTTP_EXCEPTIONS = Counter("voltway_http_exceptions_total", "Unhandled exceptions by type", ["type"])
HTTP_SLOW_REQUESTS = Counter(
    "voltway_http_slow_requests_total", "Requests slower than SLOW_REQUEST_THRESHOLD", ["method", "route"]
)

# --------------------------------------------------------------------------------------- database
DB_QUERY_DURATION = Histogram(
    "voltway_db_query_duration_seconds", "Database statement duration by operation", ["operation"], buckets=DB_BUCKETS
)

# -------------------------------------------------------------------- updated by other features
CACHE_LOOKUPS = Counter("voltway_cache_lookups_total", "Cache lookups by cache and result (hit|miss)", ["cache", "result"])
JOBS = Counter(
    "voltway_jobs_total", "Job state transitions by kind and status (enqueued|started|completed|failed|retried)",
    ["kind", "status"],
)
JOB_DURATION = Histogram("voltway_job_duration_seconds", "Job run time by kind", ["kind"], buckets=JOB_BUCKETS)
QUEUE_DEPTH = Gauge("voltway_job_queue_depth", "Jobs waiting in the queue", ["queue"], multiprocess_mode="mostrecent")
WEBSOCKET_CONNECTIONS = Gauge(
    "voltway_websocket_connections", "Open WebSocket connections", multiprocess_mode="livesum"
)
MAP_VIEWS = Counter(
    "voltway_map_views_total", "Uncached map cluster views by what answered them (cells|stations)", ["source"]
)
MAP_CELLS_REFRESH = Histogram(
    "voltway_map_cells_refresh_seconds", "Map cells refreshes by kind (marked|rebuild)", ["kind"], buckets=DB_BUCKETS
)
IMPORT_ROWS = Counter(
    "voltway_import_rows_total", "Imported rows by source and result (created|updated|unchanged|rejected)",
    ["source", "result"],
)

# ------------------------------------------------------------------------------------- process
MEMORY_RSS = Gauge(
    "voltway_memory_rss_bytes", "Resident memory of the serving processes", multiprocess_mode="livesum"
)
PROCESS_CPU = Gauge(
    "voltway_process_cpu_seconds",
    "CPU time (user + system) used by the serving processes; process_cpu_seconds_total is per process and "
    "absent with several workers",
    multiprocess_mode="livesum",
)
APP_INFO = Gauge("voltway_app_info", "Build information", ["version"], multiprocess_mode="max")
APP_INFO.labels(__version__).set(1)
_process = psutil.Process()


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


class ScrapeGauge(Collector):
    """A gauge computed when Prometheus scrapes, cached for `ttl` seconds (the computation may cost a query)."""

    def __init__(
        self, name: str, documentation: str, compute: Callable[[Any], Awaitable[float | None]], ttl: float = 5.0
    ):
        self.name, self.documentation, self.compute, self.ttl = name, documentation, compute, ttl
        self._value: float | None = None
        self._at = float("-inf")

    async def refresh(self, app: Any) -> None:
        if time.monotonic() - self._at > self.ttl:
            self._value = await self.compute(app)
            self._at = time.monotonic()

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(self.name, self.documentation)
        if self._value is not None:
            family.add_metric([], self._value)
        yield family

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return [GaugeMetricFamily(self.name, self.documentation)]


def table_count_gauge(name: str, documentation: str, table: str) -> ScrapeGauge:
    """A scrape-time gauge holding the row count of `table` in the app's database."""
    sql = f"SELECT count(*) FROM {table}"

    async def count(app: Any) -> float | None:
        try:
            rows = await app.state.db.fetch(sql, {}, slow=True)  # reads a whole index: ms at 300,000 rows
        except (SQLAlchemyError, sqlite3.Error, OSError) as exc:
            logger.warning("cannot count %s for /metrics: %s", table, exc)
            return None
        return float(rows[0][0])

    return ScrapeGauge(name, documentation, count)


# --------------------------------------------------------------------------- database timing hook
_OPERATIONS = {"select", "insert", "update", "delete", "with", "begin", "commit", "rollback"}


def _operation(statement: str) -> str:
    word = statement.lstrip()[:10].split(None, 1)
    op = word[0].lower() if word else ""
    return op if op in _OPERATIONS else "other"


_DB_CHILDREN = {op: DB_QUERY_DURATION.labels(op) for op in (*_OPERATIONS, "other")}


def instrument_engine(engine: AsyncEngine) -> None:
    """Time every statement of `engine` into `voltway_db_query_duration_seconds`."""
    children = _DB_CHILDREN

    def before(conn: Any, _cursor: Any, _statement: str, _params: Any, context: Any, _many: bool) -> None:
        if context is not None:  # one execution context per statement
            context._voltway_started = time.perf_counter()

    def after(conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool) -> None:
        started = getattr(context, "_voltway_started", None)
        if started is not None:
            children[_operation(statement)].observe(time.perf_counter() - started)

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    event.listen(engine.sync_engine, "after_cursor_execute", after)


def observe_query(statement: str, seconds: float) -> None:
    """Record a statement that bypasses the engine (the SQLite fast read path)."""
    _DB_CHILDREN[_operation(statement)].observe(seconds)


# ------------------------------------------------------------------------------------ exposition
class _Delegate(Collector):
    """Exposes the default registry (with the process and platform collectors) inside another registry."""

    def __init__(self, registry: CollectorRegistry):
        self.registry = registry

    def collect(self) -> Iterable[Any]:
        return self.registry.collect()


def build_registry(extra: Iterable[Collector] = ()) -> CollectorRegistry:
    """The registry `/metrics` serves: this process's metrics, or all workers' in multiprocess mode."""
    registry = CollectorRegistry(auto_describe=False)
    directory = multiprocess_dir()
    if directory is None:
        registry.register(_Delegate(REGISTRY))
    else:
        MultiProcessCollector(registry, path=directory)
    for collector in extra:
        registry.register(collector)
    return registry


@contextmanager
def multiprocess_metrics(workers: int) -> Iterator[None]:
    """For a run with several worker processes, point prometheus-client at a fresh directory (removed after).

    Must wrap the start of the workers: each worker reads `PROMETHEUS_MULTIPROC_DIR` when it imports this
    module. A directory configured by the operator is used as it is.
    """
    if workers < 2 or multiprocess_dir() is not None:
        yield
        return
    directory = tempfile.mkdtemp(prefix="voltway-metrics-")
    os.environ[MULTIPROC_ENV] = directory
    try:
        yield
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(directory, ignore_errors=True)


def mark_dead(pid: int) -> None:
    """Drop a finished worker's live gauges (multiprocess mode only)."""
    if multiprocess_dir() is not None:
        mark_process_dead(pid)


def record_process_usage() -> int:
    """This process's resident memory in bytes, recorded in `voltway_memory_rss_bytes` (and its CPU time)."""
    rss = _process.memory_info().rss
    MEMORY_RSS.set(rss)
    cpu = _process.cpu_times()
    PROCESS_CPU.set(cpu.user + cpu.system)
    return rss


def install_metrics(app: "FastAPI", *, scrape_gauges: Iterable[ScrapeGauge] = ()) -> None:
    """Serve `GET /metrics` (Prometheus text format)."""
    gauges = list(scrape_gauges)
    registry = build_registry(gauges)

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        record_process_usage()
        for gauge in gauges:
            await gauge.refresh(request.app)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

"""The FastAPI application factory."""

import gc
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from voltway import __version__
from voltway.accounts.router import router as accounts_router
from voltway.analytics.pages import router as dashboard_router
from voltway.analytics.router import me_router as recommendations_router
from voltway.analytics.router import router as analytics_router
from voltway.charging.router import router as charging_router
from voltway.core.cache import CacheFront
from voltway.core.db import Database
from voltway.core.docs import API_DESCRIPTION, TAGS, install_docs
from voltway.core.error_handlers import install_error_handlers
from voltway.core.hot_routes import HotRoutes, include_hot_router
from voltway.core.logging import configure_logging
from voltway.core.memory import start_memory_monitor
from voltway.core.metrics import install_metrics, mark_dead, table_count_gauge
from voltway.core.middleware import ObservabilityMiddleware
from voltway.health.router import router as health_router
from voltway.ingest.router import router as ingest_router
from voltway.jobs.platform import run_platform
from voltway.jobs.router import router as jobs_router
from voltway.realtime.hub import hub
from voltway.realtime.router import router as realtime_router
from voltway.reviews.router import router as reviews_router
from voltway.settings import Settings, get_settings
from voltway.stations.clusters import HOT_ENDPOINTS as CLUSTER_HOT_ENDPOINTS
from voltway.stations.clusters import router as clusters_router
from voltway.stations.router import HOT_ENDPOINTS as STATION_HOT_ENDPOINTS
from voltway.stations.router import router as stations_router
from voltway.web.router import router as web_router


def create_app(settings: Settings | None = None, *, freeze_heap: bool = False) -> FastAPI:
    """The whole application. `freeze_heap` (a server process, not tests building many apps): once started,
    everything alive is moved out of the garbage collector's reach (`gc.freeze`), so that its full collections
    stop walking the modules, routes and schemas of a long-lived process: ~5% of an uncached search's CPU."""
    settings = settings or get_settings()
    configure_logging(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.db = Database(settings.database_url)
        memory_monitor = start_memory_monitor(settings.memory_threshold_mb)
        await hub.start(settings.redis_url, prefix=settings.redis_prefix)
        try:
            async with run_platform(app.state.db, settings, run_jobs=not settings.redis_url):
                if freeze_heap:
                    gc.collect()
                    gc.freeze()
                yield
        finally:
            memory_monitor.cancel()
            mark_dead(os.getpid())
            await hub.stop()
            await app.state.db.dispose()

    app = FastAPI(
        title="VoltWay",
        version=__version__,
        description=API_DESCRIPTION,
        openapi_tags=TAGS,
        servers=[{"url": settings.public_url or "/", "description": "This VoltWay server"}],
        docs_url=None,  # served offline by install_docs
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(health_router)
    cluster_hot_routes = include_hot_router(app, clusters_router, CLUSTER_HOT_ENDPOINTS, prefix="/api/v1")
    app.include_router(ingest_router, prefix="/api/v1")
    app.include_router(jobs_router, prefix="/api/v1")
    station_hot_routes = include_hot_router(app, stations_router, STATION_HOT_ENDPOINTS, prefix="/api/v1")
    app.include_router(accounts_router, prefix="/api/v1")
    app.include_router(reviews_router, prefix="/api/v1")
    app.include_router(charging_router, prefix="/api/v1")
    app.include_router(analytics_router, prefix="/api/v1")
    app.include_router(recommendations_router, prefix="/api/v1")
    app.include_router(dashboard_router)
    app.include_router(web_router)
    app.include_router(realtime_router)
    if settings.metrics_enabled:
        install_metrics(app, scrape_gauges=[table_count_gauge("voltway_stations", "Stations in the registry", "stations")])
    install_docs(app)
    # Innermost: cache hits are answered before it, and it answers the hot routes before FastAPI's routing.
    app.add_middleware(HotRoutes, routes={**cluster_hot_routes, **station_hot_routes})
    app.add_middleware(CacheFront, namespace="stations", paths=re.compile(r"/api/v1/stations(/nearest|/[0-9]+)?"))
    # Added last, so it is the outermost middleware: it times and correlates everything inside it.
    app.add_middleware(ObservabilityMiddleware, slow_request_threshold=settings.slow_request_threshold)
    return app


def create_server_app() -> FastAPI:
    """The factory `voltway serve` hands to uvicorn: `create_app` for a long-lived server process."""
    return create_app(freeze_heap=True)

"""The FastAPI application factory."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from voltway import __version__
from voltway.core.db import Database
from voltway.core.errors import install_error_handlers
from voltway.health.router import router as health_router
from voltway.settings import Settings, get_settings
from voltway.stations.clusters import router as clusters_router
from voltway.stations.router import router as stations_router
from voltway.web.router import router as web_router


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.db = Database(settings.database_url)
        try:
            yield
        finally:
            await app.state.db.dispose()

    app = FastAPI(
        title="VoltWay",
        version=__version__,
        description="Find, book, charge and review electric-vehicle chargers.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(health_router)
    app.include_router(clusters_router, prefix="/api/v1")
    app.include_router(stations_router, prefix="/api/v1")
    app.include_router(web_router)
    return app

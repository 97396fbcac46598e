"""Liveness and readiness."""

from fastapi import APIRouter
from sqlalchemy import text

from voltway import __version__
from voltway.core.db import DB

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/api/v1/health", summary="Liveness with the version")
async def api_health() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


@router.get("/health/ready", summary="Readiness: every dependency checked")
async def ready(db: DB) -> dict[str, object]:
    async with db.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
    return {"status": "ok", "checks": {"database": {"status": "ok"}}}

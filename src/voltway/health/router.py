"""Liveness (`/health`, `/api/v1/health`) and readiness (`/health/ready`).

Readiness checks every dependency: the database and, when `REDIS_URL` is set, Redis (cache tier and job queue)
are required: a failure answers 503 so a load balancer stops sending traffic. Memory above
`MEMORY_THRESHOLD_MB` and low free disk make the service `degraded` (200): it still serves, an operator should look.
"""

import asyncio
import shutil
import time
from pathlib import Path
from typing import Any, Literal

import redis.asyncio as aioredis
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from voltway import __version__
from voltway.accounts.dependencies import AppSettings
from voltway.core.db import sqlite_path
from voltway.core.db_dependencies import DB
from voltway.core.memory import memory_status
from voltway.core.responses import FastJSONResponse

router = APIRouter(tags=["health"])

CHECK_TIMEOUT = 3.0  # seconds per dependency
DISK_MIN_FREE_MB = 500
Status = Literal["ok", "degraded", "fail"]


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"

    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})


class VersionedLiveness(Liveness):
    version: str = Field(description="The running VoltWay version")

    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok", "version": "0.1.0"}]})


class Check(BaseModel):
    """One dependency's state; other keys are details (latency, backend, sizes)."""

    status: Status
    model_config = ConfigDict(extra="allow")


class Readiness(BaseModel):
    status: Status = Field(description="fail if a required check failed, degraded if any check is degraded, else ok")
    checks: dict[str, Check]

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "ok",
                    "checks": {
                        "database": {"status": "ok", "backend": "sqlite", "latency_ms": 0.4},
                        "cache": {"status": "ok", "backend": "memory"},
                        "queue": {"status": "ok", "backend": "in-process"},
                        "memory": {"status": "ok", "rss_mb": 142.3, "threshold_mb": 500},
                        "disk": {"status": "ok", "free_mb": 20480.0, "path": "/var/lib/voltway"},
                    },
                }
            ]
        }
    )


@router.get(
    "/health",
    summary="Liveness",
    description="Answers 200 while the process serves requests; checks no dependency (see `/health/ready`).",
    response_model=Liveness,
)
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/api/v1/health",
    summary="Liveness with the version",
    description="Like `/health`, with the running version.",
    response_model=VersionedLiveness,
)
async def api_health() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


async def _timed(check: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = await asyncio.wait_for(check, CHECK_TIMEOUT)
    return round((time.perf_counter() - started) * 1000, 2), result


async def check_database(db: Any) -> dict[str, Any]:
    async def select_one() -> None:
        async with db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    try:
        latency, _ = await _timed(select_one())
    except (TimeoutError, SQLAlchemyError, OSError) as exc:
        return {"status": "fail", "backend": db.dialect, "error": type(exc).__name__}
    return {"status": "ok", "backend": db.dialect, "latency_ms": latency}


async def check_redis(url: str) -> dict[str, Any]:
    client = aioredis.Redis.from_url(url, socket_connect_timeout=CHECK_TIMEOUT, socket_timeout=CHECK_TIMEOUT)
    try:
        latency, _ = await _timed(client.ping())
    except (TimeoutError, RedisError, OSError) as exc:
        return {"status": "fail", "backend": "redis", "error": type(exc).__name__}
    finally:
        await client.aclose()
    return {"status": "ok", "backend": "redis", "latency_ms": latency}


def check_memory(threshold_mb: int) -> dict[str, Any]:
    status = memory_status(threshold_mb)
    return {"status": "degraded" if status.over else "ok", "rss_mb": status.rss_mb, "threshold_mb": threshold_mb}


def check_disk(paths: list[Path]) -> dict[str, Any]:
    """Free space on the filesystems holding the database file and the logs (the smallest wins)."""
    free = []
    for path in paths:
        existing = path.resolve()
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        free.append((shutil.disk_usage(existing).free / 1024 / 1024, str(existing)))
    free_mb, where = min(free)
    status = "degraded" if free_mb < DISK_MIN_FREE_MB else "ok"
    return {"status": status, "free_mb": round(free_mb, 1), "path": where, "min_free_mb": DISK_MIN_FREE_MB}


def overall(checks: dict[str, dict[str, Any]]) -> Status:
    states = {c["status"] for c in checks.values()}
    return "fail" if "fail" in states else "degraded" if "degraded" in states else "ok"


@router.get(
    "/health/ready",
    summary="Readiness: every dependency checked",
    description=(
        "Checks the database, the cache and queue backends (Redis when `REDIS_URL` is set), resident memory "
        "against `MEMORY_THRESHOLD_MB` and free disk space. Answers 503 with the same body when a required "
        "dependency (database, Redis when configured) fails; memory or disk trouble is `degraded` with 200."
    ),
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "A required dependency failed"}},
)
async def ready(db: DB, settings: AppSettings) -> FastJSONResponse:
    checks: dict[str, dict[str, Any]] = {}
    if settings.redis_url:
        database, redis_check = await asyncio.gather(check_database(db), check_redis(settings.redis_url))
        checks["database"] = database
        checks["cache"] = redis_check
        checks["queue"] = redis_check
    else:
        checks["database"] = await check_database(db)
        checks["cache"] = {"status": "ok", "backend": "memory"}
        checks["queue"] = {"status": "ok", "backend": "in-process"}
    checks["memory"] = check_memory(settings.memory_threshold_mb)
    disk_paths = [Path(settings.log_dir)]
    if db.is_sqlite:
        disk_paths.append(Path(sqlite_path(db.url)).parent)
    checks["disk"] = check_disk(disk_paths)
    status = overall(checks)
    return FastJSONResponse({"status": status, "checks": checks}, status_code=503 if status == "fail" else 200)

"""Shared fixtures: real databases (a SQLite file, the local PostgreSQL), the app over ASGI, API keys.

`backend` runs a test on SQLite and on PostgreSQL. PostgreSQL is skipped when it does not answer, except
under CI=true, where a missing service is a failure.
"""

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from voltway.accounts.keys import create_key
from voltway.accounts.roles import Role
from voltway.app import create_app
from voltway.core.db import Database
from voltway.migrations import upgrade
from voltway.settings import Settings

from tests.processes import IN_CI

PG_SERVER = os.environ.get("VOLTWAY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
TEST_MEMORY_THRESHOLD_MB = 64_000


def _service_missing(what: str, reason: object) -> None:
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true but does not answer: {reason}")
    pytest.skip(f"{what} does not answer: {reason}")


# ------------------------------------------------------------------------------------------- SQLite
@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (faster than migrating every time)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


def fresh_sqlite_url(template: Path, directory: Path) -> str:
    path = directory / f"voltway-{uuid.uuid4().hex[:8]}.db"
    shutil.copyfile(template, path)
    return f"sqlite+aiosqlite:///{path}"


# --------------------------------------------------------------------------------------- PostgreSQL
async def _pg_admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_SERVER, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A database of this test session on the local server, migrated once; dropped at the end."""
    name = f"voltway_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
        _service_missing("PostgreSQL", exc)
    base = PG_SERVER.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    url = f"{base}/{name}"
    upgrade(url)
    yield url
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def truncate_all(url: str) -> None:
    db = Database(url)
    try:
        async with db.engine.begin() as conn:
            tables = (
                await conn.exec_driver_sql(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
                )
            ).scalars().all()
            if tables:
                names = ", ".join(f'"{t}"' for t in tables)
                await conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    finally:
        await db.dispose()


# ------------------------------------------------------------------------------------------ backends
@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated database of the requested backend."""
    if backend == "sqlite":
        return fresh_sqlite_url(request.getfixturevalue("sqlite_template"), tmp_path)
    url = request.getfixturevalue("pg_database")
    asyncio.run(truncate_all(url))
    return url


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        log_dir=tmp_path / "logs",
        data_dir=tmp_path / "data",
        secret_key="test-secret-key-" + "x" * 32,
        # The whole suite runs in one process that grows past the default 500 MB; tests of the memory
        # check set their own threshold.
        memory_threshold_mb=TEST_MEMORY_THRESHOLD_MB,
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
async def db(app: FastAPI) -> Database:
    return app.state.db


async def new_key(db: Database, role: Role) -> str:
    async with db.sessionmaker.begin() as session:
        _key, secret = await create_key(session, role=role, name=f"test-{role.value}")
    return secret


@pytest.fixture
async def admin_headers(db: Database) -> dict[str, str]:
    return {"X-API-Key": await new_key(db, Role.admin)}


@pytest.fixture
async def operator_headers(db: Database) -> dict[str, str]:
    return {"X-API-Key": await new_key(db, Role.operator)}


@pytest.fixture
async def readonly_headers(db: Database) -> dict[str, str]:
    return {"X-API-Key": await new_key(db, Role.readonly)}


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish() -> None:
    """Write out batched log lines now, so that none lands after pytest's summary line."""
    import logging

    for handler in logging.getLogger().handlers:
        handler.flush()

"""The database as FastAPI dependencies: the app's `Database` and one ORM session per request.

Apart from `core/db.py` so that the command line, which imports the database layer, does not import FastAPI.
"""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from voltway.core.db import Database


async def get_database(request: Request) -> Database:
    # async: FastAPI runs a plain `def` dependency in its thread pool, a thread hop on every request.
    return request.app.state.db


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request: committed when the handler returns, rolled back when it raises."""
    async with request.app.state.db.sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


DB = Annotated[Database, Depends(get_database)]
Session = Annotated[AsyncSession, Depends(get_session)]

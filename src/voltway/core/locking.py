"""Serialising a check-then-write in the request's transaction, on both databases.

PostgreSQL: `SELECT ... FOR UPDATE` on one row queues concurrent transactions on that row; the statements
that follow take a fresh snapshot (READ COMMITTED), so they see what the previous holder committed.
SQLite: `BEGIN IMMEDIATE` takes the database's write lock up front (waiting up to the busy timeout), so the
reads that follow see the latest commit and no other connection — in this process or another — can write
until this transaction ends.
"""

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession


async def begin_write(session: AsyncSession) -> None:
    """On SQLite, make sure the session's transaction holds the write lock (no-op on PostgreSQL).

    Python's sqlite3 opens a transaction only before the first data-changing statement, and a connection
    that is already in one has written, so it holds the write lock already."""
    connection = await session.connection()
    if connection.dialect.name != "sqlite":
        return
    raw = await connection.get_raw_connection()
    if not raw.driver_connection.in_transaction:  # type: ignore[union-attr]
        await connection.exec_driver_sql("BEGIN IMMEDIATE")


async def lock_row(session: AsyncSession, table: Table, row_id: int) -> bool:
    """Serialise writers on one row (by `id`) until the transaction ends; False when the row does not exist."""
    await begin_write(session)
    query = select(table.c.id).where(table.c.id == row_id)
    if (await session.connection()).dialect.name == "postgresql":
        query = query.with_for_update()
    return await session.scalar(query) is not None

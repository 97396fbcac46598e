"""Dialect-aware `INSERT ... ON CONFLICT` for SQLite and PostgreSQL."""

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def _insert(session: AsyncSession, model: Any) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


async def insert_ignore(session: AsyncSession, model: Any, values: Mapping[str, Any]) -> bool:
    """Insert one row unless it would violate a unique key; True when a row was written."""
    result = await session.execute(_insert(session, model).values(**values).on_conflict_do_nothing())
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def upsert(
    session: AsyncSession, model: Any, values: Mapping[str, Any], *, keys: Sequence[str], update: Sequence[str]
) -> None:
    """Insert one row, or on a clash of `keys` update the columns in `update` to the new values."""
    statement = _insert(session, model).values(**values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=list(keys), set_={name: statement.excluded[name] for name in update}
        )
    )

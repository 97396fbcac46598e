import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from voltway.core.db import null_pool_engine
from voltway.core.deferred_indexes import restore
from voltway.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    if connection.dialect.name == "sqlite":
        # Indexes a killed first load left deferred come back before any migration may touch them: all in one
        # transaction (the driver would otherwise run each CREATE on its own).
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        restore(connection)
        connection.commit()
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = null_pool_engine(config.get_main_option("sqlalchemy.url"))
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())

"""Plumbing for CLI commands: validated settings, migrations applied, one async action run.

Settings, database, cache and migrations are imported inside the functions that use them, so that importing
this module (as every command module does) stays cheap for `voltway --help`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import typer

if TYPE_CHECKING:
    from voltway.core.db import Database
    from voltway.settings import Settings

T = TypeVar("T")


def settings_or_exit() -> Settings:
    from voltway.settings import ConfigurationError, get_settings

    try:
        return get_settings()
    except ConfigurationError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from None


def run_with_db(action: Callable[[Database, Settings], Awaitable[T]]) -> T:
    """Bring the schema up to date, then run `action` with a database of its own."""
    from voltway.core.cache import cache, configure_cache
    from voltway.core.db import Database
    from voltway.migrations import upgrade

    settings = settings_or_exit()
    upgrade(settings.database_url)

    async def main() -> T:
        db = Database(settings.database_url)
        configure_cache(settings)  # bumps by the command reach the servers (Redis or the SQLite file)
        try:
            return await action(db, settings)
        finally:
            await cache.close()
            await db.dispose()

    return asyncio.run(main())

"""`voltway analytics ...` commands."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from voltway.core.commands import run_with_db

if TYPE_CHECKING:
    from voltway.core.db import Database
    from voltway.settings import Settings

analytics_app = typer.Typer(help="Operator analytics.", no_args_is_help=True)


@analytics_app.command("rebuild")
def rebuild() -> None:
    """Recompute the hourly analytics rollups from every charging session."""
    from voltway.analytics.rollups import rebuild as rebuild_rollups
    from voltway.core.db import utcnow

    async def action(db: Database, _settings: Settings) -> dict[str, int]:
        async with db.sessionmaker.begin() as session:
            return await rebuild_rollups(session, now=utcnow())

    result = run_with_db(action)
    typer.echo(f"analytics rollups rebuilt: {result['rows']} station-hours")

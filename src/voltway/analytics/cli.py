"""`voltway analytics ...` commands."""

import typer

from voltway.analytics.rollups import rebuild as rebuild_rollups
from voltway.core.commands import run_with_db
from voltway.core.db import Database, utcnow
from voltway.settings import Settings

analytics_app = typer.Typer(help="Operator analytics.", no_args_is_help=True)


@analytics_app.command("rebuild")
def rebuild() -> None:
    """Recompute the hourly analytics rollups from every charging session."""

    async def action(db: Database, _settings: Settings) -> dict[str, int]:
        async with db.sessionmaker.begin() as session:
            return await rebuild_rollups(session, now=utcnow())

    result = run_with_db(action)
    typer.echo(f"analytics rollups rebuilt: {result['rows']} station-hours")

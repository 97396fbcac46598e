"""The `voltway` command line. Feature commands live beside their feature and are registered here.

Command modules import their work (database, migrations, cache...) lazily, inside the commands that need it,
so that `voltway --help` and argument errors start fast (tests/test_smoke.py checks what importing this loads).
"""

import asyncio
from typing import Annotated

import typer

from voltway.accounts.cli import keys_app
from voltway.analytics.cli import analytics_app
from voltway.core.commands import settings_or_exit
from voltway.ingest.cli import import_app
from voltway.ingest.transfer_cli import export_command
from voltway.jobs.cli import worker

app = typer.Typer(help="VoltWay: an open platform for electric-vehicle charging.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(analytics_app, name="analytics")
app.add_typer(import_app, name="import")
app.command("worker")(worker)
app.command("export")(export_command)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply all database migrations."""
    from voltway.migrations import upgrade

    upgrade(settings_or_exit().database_url)
    typer.echo("database is up to date")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes")] = 1,
    demo: Annotated[bool, typer.Option(help="Load the bundled real station sample into an empty database")] = False,
) -> None:
    """Run the HTTP service (applies migrations first)."""
    import uvicorn

    from voltway.migrations import upgrade

    settings = settings_or_exit()
    upgrade(settings.database_url)
    if demo:
        from voltway.ingest.demo import load_demo

        typer.echo(asyncio.run(load_demo(settings)))
    from voltway.core.logging import configure_logging
    from voltway.core.metrics import multiprocess_metrics

    configure_logging(settings)  # uvicorn's own loggers go through the JSON handlers (log_config=None)
    with multiprocess_metrics(workers):
        uvicorn.run(
            "voltway.app:create_server_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=settings.log_level.lower(),
            log_config=None,
            access_log=False,  # the request middleware writes the access line
            loop="uvloop",
            http="httptools",
        )

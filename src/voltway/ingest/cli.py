"""`voltway import ...`: load station data from files and URLs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from voltway.core.commands import run_with_db
from voltway.ingest.transfer_cli import echo_report, import_csv_command

if TYPE_CHECKING:
    from voltway.core.db import Database
    from voltway.ingest.reader import ImportReport
    from voltway.settings import Settings

import_app = typer.Typer(help="Import station data.", no_args_is_help=True)
import_app.command("csv")(import_csv_command)


@import_app.command("ocm")
def import_ocm_command(
    source: Annotated[str, typer.Argument(metavar="PATH_OR_URL", help="An OCM JSON file, or an OCM API URL")],
    country: Annotated[
        str | None, typer.Option(help="Only POIs of this country (ISO 3166 alpha-2); sent to the API as countrycode")
    ] = None,
) -> None:
    """Import Open Charge Map POIs (compact or verbose form, a JSON array or an API response), streamed.

    Upserts by OCM id: a second import of the same data changes nothing. Exit code 0 when every record was
    imported, 1 when some were rejected or the input stopped early, 2 when the input cannot be read at all.
    """
    from voltway.ingest.ocm_stream import InputError
    from voltway.ingest.reader import import_ocm, is_url

    if not is_url(source) and not Path(source).is_file():
        typer.secho(f"{source}: no such file", fg="red", err=True)
        raise typer.Exit(2)

    async def action(db: Database, settings: Settings) -> ImportReport:
        if is_url(source):

            def count(records: int, _bytes: int) -> None:
                typer.echo(f"\r{records} records read", nl=False, err=True)

            report = await import_ocm(db, source, settings=settings, country=country, progress=count)
            typer.echo("", err=True)
            return report
        size = Path(source).stat().st_size
        with typer.progressbar(length=size, label="importing", file=sys.stderr) as bar:

            def advance(_records: int, done: int) -> None:
                bar.update(done - bar.pos)

            return await import_ocm(db, source, settings=settings, country=country, progress=advance)

    try:
        report = run_with_db(action)
    except InputError as exc:
        typer.secho(f"{source}: {exc.message}; nothing was imported", fg="red", err=True)
        raise typer.Exit(2) from None
    echo_report(report, what="record")
    if report.skipped:
        typer.echo(f"skipped {report.skipped} records of other countries than {country}")
    if report.error is not None:
        typer.secho(f"stopped early [{report.error.code}]: {report.error.message}", fg="red", err=True)
    if report.rejected or report.error is not None:
        raise typer.Exit(1)

"""`voltway import csv PATH` and `voltway export {csv,geojson,json} [-o FILE]`.

Both stream: the import reads the file row by row with a progress bar on stderr, the export writes one page
of stations at a time to the file or to stdout. An import ends with a summary and exits 1 when any row was
rejected, 2 when the file cannot be read at all (nothing is written then).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, BinaryIO

import typer

from voltway.core.commands import run_with_db
from voltway.ingest.export_format import ExportFormat
from voltway.stations.status import StationStatus

if TYPE_CHECKING:
    from voltway.core.db import Database
    from voltway.ingest.upsert import UpsertReport
    from voltway.settings import Settings


def echo_report(report: UpsertReport, *, what: str = "row") -> None:
    """The closing summary of an import: counts, then every rejection and every duplicate link."""
    typer.echo(
        f"created {report.created}, updated {report.updated}, unchanged {report.unchanged}, "
        f"rejected {len(report.rejected)}, repeated {len(report.repeated)}, duplicates linked {len(report.duplicates)}"
    )
    for error in report.rejected:
        typer.echo(f"  rejected {what} {error.index} [{error.code}]: {error.message}")
    for repeat in report.repeated:
        typer.echo(f"  {what} {repeat.index} ({repeat.external_id}) was replaced by {what} {repeat.replaced_by}")
    for link in report.duplicates:
        typer.echo(
            f"  duplicate: station {link.station_id} is station {link.duplicate_of_id} "
            f"({link.distance_m} m apart, similarity {link.similarity})"
        )


def import_csv_command(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="A station CSV file")],
) -> None:
    """Import stations from a CSV file (columns: see the README), upserting by (source, external_id)."""
    from voltway.ingest.csv_io import CsvHeaderError, import_csv

    async def action(db: Database, _settings: Settings) -> UpsertReport:
        with path.open("rb") as stream, typer.progressbar(
            length=path.stat().st_size, label="importing", file=sys.stderr
        ) as bar:

            def progress(_rows: int) -> None:
                bar.update(stream.tell() - bar.pos)

            return await import_csv(db, stream, progress=progress)

    try:
        report = run_with_db(action)
    except CsvHeaderError as exc:
        typer.secho(f"{path}: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    echo_report(report, what="line")
    if report.rejected:
        raise typer.Exit(1)


def export_command(
    fmt: Annotated[ExportFormat, typer.Argument(metavar="FORMAT", help="csv, geojson or json")],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", dir_okay=False, help="File (default: stdout)")
    ] = None,
    country: Annotated[str | None, typer.Option(help="Only this country (ISO 3166 alpha-2)")] = None,
    operator: Annotated[str | None, typer.Option(help="Only this operator (case-insensitive)")] = None,
    status: Annotated[StationStatus | None, typer.Option(help="Only this status (removed only when asked)")] = None,
) -> None:
    """Export stations as CSV (importable again), GeoJSON or JSON, streamed in constant memory."""
    from voltway.ingest.export import export_stations
    from voltway.stations.search import StationFilters, StationQuery

    query = StationQuery(
        filters=StationFilters(
            country=country.upper() if country else None, operator=operator, status=status.value if status else None
        )
    )

    async def write(db: Database, stream: BinaryIO) -> int:
        count = 0

        def progress(done: int) -> None:
            nonlocal count
            count = done

        async for chunk in export_stations(db, fmt=fmt, query=query, progress=progress):
            stream.write(chunk)
        stream.flush()
        return count

    async def action(db: Database, _settings: Settings) -> int:
        if output is None:
            return await write(db, typer.get_binary_stream("stdout"))
        with output.open("wb") as stream:
            return await write(db, stream)

    count = run_with_db(action)
    if output is not None:
        typer.echo(f"exported {count} stations to {output}", err=True)

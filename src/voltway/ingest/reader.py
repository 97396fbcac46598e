"""`voltway import ocm`: an Open Charge Map file or API URL, read as a stream and written by the upsert engine.

The reading itself (`ocm_stream.OcmReader`) runs in this process, or for a large file in a process of its own
(`parse_process`) while this one writes.
"""

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import IO, Protocol

import httpx

from voltway.core.db import Database
from voltway.ingest import parse_process
from voltway.ingest.bulk import import_stations
from voltway.ingest.ocm_stream import READ_SIZE, FileSource, InputError, OcmReader, ReadReport
from voltway.ingest.rows import StationRow
from voltway.ingest.upsert import UpsertReport
from voltway.settings import Settings


class ImportReport(UpsertReport, ReadReport):
    """An import's report: what reading the input found and what writing it did."""


class HttpSource:
    def __init__(self, response: httpx.Response) -> None:
        self.chunks = response.aiter_bytes(READ_SIZE)

    async def read(self, size: int) -> bytes:
        return await anext(self.chunks, b"")



# Called after each chunk with (records read, bytes read).
Progress = Callable[[int, int], None]


class Reading(Protocol):
    """What an import follows of its reader: `OcmReader` or the child process's `ProcessReader`."""

    report: ImportReport

    @property
    def bytes_read(self) -> int: ...


async def _run(
    db: Database, reader: Reading, rows: AsyncIterator[tuple[int, StationRow]], progress: Progress | None
) -> ImportReport:
    def report_progress(_handled: int) -> None:
        if progress is not None:
            progress(reader.report.records, reader.bytes_read)

    report = reader.report
    result = await import_stations(
        db, rows, invalid=report.rejected, feed="ocm", progress=report_progress, first_load=True
    )
    for name in ("created", "updated", "unchanged", "rejected", "repeated", "duplicates"):
        setattr(report, name, getattr(result, name))
    return report


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def api_url(url: str, country: str | None) -> httpx.URL:
    """The OCM API URL with the compact JSON form and the country added, unless the URL already sets them.

    The API key goes in the `X-API-Key` header, not the query string, so that it stays out of logs.
    """
    parsed = httpx.URL(url)
    wanted = {"output": "json", "compact": "true", "verbose": "false"}
    if country:
        wanted["countrycode"] = country.upper()
    return parsed.copy_merge_params({k: v for k, v in wanted.items() if k not in parsed.params})


async def import_ocm(
    db: Database,
    source: str | Path,
    *,
    settings: Settings,
    country: str | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import an OCM file or API URL; InputError when the input as a whole cannot be read."""
    if isinstance(source, str) and is_url(source):
        report = ImportReport()
        reader = OcmReader(report, country=country)
        headers = {"X-API-Key": settings.ocm_api_key} if settings.ocm_api_key else {}
        timeout = httpx.Timeout(30.0, read=120.0)
        try:
            async with httpx.AsyncClient(timeout=timeout, follow_redirects=True) as client:
                async with client.stream("GET", api_url(source, country), headers=headers) as response:
                    if response.status_code != 200:
                        raise InputError("http_error", f"{source} answered HTTP {response.status_code}")
                    await _run(db, reader, reader.stations(HttpSource(response)), progress)
        except httpx.HTTPError as exc:
            raise InputError("http_error", f"cannot read {source}: {exc}") from None
        return report
    path = Path(source)
    if not path.is_file():
        raise InputError("not_found", f"{path} is not a file")
    if path.stat().st_size >= settings.import_parser_process_mb * 2**20:
        child = parse_process.ProcessReader(ImportReport(), path, country=country)
        return await _run(db, child, child.stations(), progress)
    with path.open("rb") as file:
        return await import_ocm_stream(db, file, country=country, progress=progress)


async def import_ocm_stream(
    db: Database, stream: IO[bytes], *, country: str | None = None, progress: Progress | None = None
) -> ImportReport:
    """Import OCM JSON from an open binary stream (a file, a gzip file, an upload)."""
    reader = OcmReader(ImportReport(), country=country)
    return await _run(db, reader, reader.stations(FileSource(stream)), progress)

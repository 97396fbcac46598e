"""Import and export as background jobs (`POST /api/v1/imports`, `POST /api/v1/exports`).

Both are idempotent, so a retry is harmless: an import upserts on (source, external id); an export writes
its file under a temporary name and renames it into place.
"""

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import httpx

from voltway.core.jobs import JobContext, job
from voltway.core.scheduler import schedule
from voltway.ingest.csv_io import import_csv
from voltway.ingest.export import ExportFormat, export_stations
from voltway.ingest.reader import import_ocm
from voltway.ingest.upsert import UpsertReport
from voltway.jobs.schemas import ExportFilters
from voltway.jobs.service import export_file
from voltway.stations.search import StationFilters, StationQuery, parse_bbox

REPORT_LIST_CAP = 100  # rejected / repeated / duplicate entries kept in a job result (counts are complete)


class _Progress:
    """Sync progress callbacks for the importers, reported to the job record in the background."""

    def __init__(self, ctx: JobContext, size: int) -> None:
        self.ctx = ctx
        self.size = size
        self._pending: set[asyncio.Task[None]] = set()

    def bytes_done(self, done: int) -> None:
        if self._pending or self.size <= 0:
            return  # the previous report is still being written
        task = asyncio.get_running_loop().create_task(self.ctx.progress(min(0.99, done / self.size)))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def ocm(self, _records: int, done: int) -> None:
        self.bytes_done(done)

    def csv(self, stream: IO[bytes]) -> Callable[[int], None]:
        return lambda _handled: self.bytes_done(stream.tell())


def summarize(report: UpsertReport) -> dict[str, Any]:
    data = report.model_dump(mode="json")
    for name in ("rejected", "repeated", "duplicates"):
        data[f"{name}_count"] = len(data[name])
        data[name] = data[name][:REPORT_LIST_CAP]
    return data


async def _download(ctx: JobContext, url: str, extension: str) -> Path:
    directory = ctx.settings.data_dir / "imports"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"job-{ctx.job_id}.{extension}"
    async with httpx.AsyncClient(follow_redirects=True, timeout=60) as client, client.stream("GET", url) as response:
        response.raise_for_status()
        with path.open("wb") as out:
            async for chunk in response.aiter_bytes():
                out.write(chunk)
    return path


@job("import", timeout=3600, max_attempts=3)
async def import_job(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """Params: `format` (ocm|csv); `path` (an uploaded file), `url`, or `source: "ocm_api"` (the configured
    Open Charge Map API); optional `country`."""
    fmt, country = params["format"], params.get("country")
    if params.get("source") == "ocm_api":
        params = {**params, "url": ctx.settings.ocm_api_url}
    if fmt == "ocm":
        source: str | Path = params.get("url") or Path(params["path"])
        size = Path(source).stat().st_size if isinstance(source, Path) else 0
        report = await import_ocm(ctx.db, source, settings=ctx.settings, country=country, progress=_Progress(ctx, size).ocm)
    elif fmt == "csv":
        path = Path(params["path"]) if params.get("path") else await _download(ctx, params["url"], "csv")
        with path.open("rb") as stream:
            report = await import_csv(ctx.db, stream, progress=_Progress(ctx, path.stat().st_size).csv(stream))
    else:
        raise ValueError(f"unsupported import format {fmt!r}")
    return summarize(report)  # import_stations has made the cached station answers stale


# Open Charge Map sync: the whole configured API feed, upserted (unchanged stations are left alone).
schedule(
    "ocm-sync", "30 3 * * *", kind="import", params={"format": "ocm", "source": "ocm_api"},
    enabled=lambda settings: bool(settings.ocm_api_key),
)


def station_query(filters: ExportFilters) -> StationQuery:
    return StationQuery(
        origin=(filters.lat, filters.lon) if filters.lat is not None and filters.lon is not None else None,
        radius_km=filters.radius_km,
        box=parse_bbox(filters.bbox) if filters.bbox else None,
        filters=StationFilters(
            connectors=tuple(dict.fromkeys(c.value for c in filters.connector)),
            min_power_kw=filters.min_power_kw,
            status=filters.status.value if filters.status else None,
            operator=filters.operator,
            country=filters.country.upper() if filters.country else None,
            text=filters.q,
        ),
    )


@job("export", timeout=3600, max_attempts=3)
async def export_job(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """Params: `format` (csv|geojson|json), `filters` (those of the station search)."""
    fmt = ExportFormat(params["format"])
    query = station_query(ExportFilters.model_validate(params.get("filters") or {}))
    target = export_file(ctx.settings, ctx.job_id, fmt.value)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".part")
    size = 0
    with partial.open("wb") as out:
        async for chunk in export_stations(ctx.db, fmt=fmt, query=query):
            out.write(chunk)
            size += len(chunk)
    os.replace(partial, target)
    return {"format": fmt.value, "bytes": size, "download": f"/api/v1/jobs/{ctx.job_id}/download"}

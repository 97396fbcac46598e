"""Streamed exports of the stations a search selects, as CSV, GeoJSON (RFC 7946) or a JSON array.

The export pages through the search by keyset (`id > last`, `EXPORT_PAGE` stations a page, with the same
filters as `GET /api/v1/stations`) and renders each page as soon as it is read, so memory stays constant
whatever the number of stations. Each page is its own read: a station written during a long export shows
up in the page that reaches its id.

GeoJSON: a FeatureCollection of Point features, coordinates `[longitude, latitude]` (RFC 7946 section 3.1.1),
the feature `id` is the station id and `properties` hold every other field of the Station object.
CSV: the columns of `voltway import csv` (see `csv_io`), so an export can be imported again.
"""

import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from voltway.core.db import Database
from voltway.ingest.csv_io import CsvWriter
from voltway.ingest.export_format import ExportFormat
from voltway.stations.search import SortKey, StationQuery, search_stations

EXPORT_PAGE = 1000


MEDIA_TYPES = {
    ExportFormat.csv: "text/csv; charset=utf-8",
    ExportFormat.geojson: "application/geo+json",
    ExportFormat.json: "application/json",
}


async def _rendered_pages(
    db: Database, query: StationQuery, render: Callable[[list[dict[str, Any]]], bytes],
    progress: Callable[[int], None] | None,
) -> AsyncIterator[bytes]:
    """The stations matching `query` in id order, a page at a time, each page rendered by `render`.

    Only the rendered bytes of a page are kept while the next page is read.
    """
    page_query = dataclasses.replace(query, sort=SortKey.id, limit=EXPORT_PAGE, cursor=None)
    count = 0
    while True:
        page = await search_stations(db, query=page_query)
        cursor, stations = page["next_cursor"], page["items"]
        del page
        if stations:
            count += len(stations)
            chunk = render(stations)
            del stations
            yield chunk
            if progress is not None:
                progress(count)
        if cursor is None:
            return
        page_query = dataclasses.replace(page_query, cursor=cursor)


def geojson_feature(station: dict[str, Any]) -> dict[str, Any]:
    """A Station dict as a GeoJSON Feature (the dict is consumed: its fields become the properties)."""
    station_id, lat, lon = station.pop("id"), station.pop("latitude"), station.pop("longitude")
    return {
        "type": "Feature",
        "id": station_id,
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": station,
    }


def _json_page(stations: list[dict[str, Any]]) -> bytes:
    # One orjson call per page (not per station): one output buffer instead of a thousand small ones.
    return orjson.dumps(stations)[1:-1]


def _geojson_page(stations: list[dict[str, Any]]) -> bytes:
    return orjson.dumps([geojson_feature(s) for s in stations])[1:-1]


# The opening, the closing and the page renderer of each JSON format; pages are joined with ",\n".
_JSON_FORMATS = {
    ExportFormat.json: (b"[\n", b"\n]\n", _json_page),
    ExportFormat.geojson: (b'{"type":"FeatureCollection","features":[\n', b"\n]}\n", _geojson_page),
}


async def export_stations(
    db: Database, *, fmt: ExportFormat, query: StationQuery, progress: Callable[[int], None] | None = None
) -> AsyncIterator[bytes]:
    """The export as a stream of byte chunks, one chunk a page; `progress` gets the running station count."""
    if fmt is ExportFormat.csv:
        writer = CsvWriter()
        yield writer.header().encode()
        async for chunk in _rendered_pages(db, query, lambda stations: writer.rows(stations).encode(), progress):
            yield chunk
        return
    opening, closing, render = _JSON_FORMATS[fmt]
    yield opening
    separator = b""
    async for chunk in _rendered_pages(db, query, render, progress):
        yield separator + chunk
        separator = b",\n"
    yield closing

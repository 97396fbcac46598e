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
from collections.abc import AsyncIterator
from enum import StrEnum
from typing import Any

import orjson

from voltway.core.db import Database
from voltway.ingest.csv_io import CsvWriter
from voltway.stations.search import SortKey, StationQuery, search_stations

EXPORT_PAGE = 1000


class ExportFormat(StrEnum):
    csv = "csv"
    geojson = "geojson"
    json = "json"


MEDIA_TYPES = {
    ExportFormat.csv: "text/csv; charset=utf-8",
    ExportFormat.geojson: "application/geo+json",
    ExportFormat.json: "application/json",
}


async def station_pages(db: Database, query: StationQuery) -> AsyncIterator[list[dict[str, Any]]]:
    """The Station dicts matching `query`, page by page in id order."""
    page_query = dataclasses.replace(query, sort=SortKey.id, limit=EXPORT_PAGE, cursor=None)
    while True:
        page = await search_stations(db, query=page_query)
        if page["items"]:
            yield page["items"]
        if page["next_cursor"] is None:
            return
        page_query = dataclasses.replace(page_query, cursor=page["next_cursor"])


def geojson_feature(station: dict[str, Any]) -> dict[str, Any]:
    properties = {k: v for k, v in station.items() if k not in ("id", "latitude", "longitude")}
    return {
        "type": "Feature",
        "id": station["id"],
        "geometry": {"type": "Point", "coordinates": [station["longitude"], station["latitude"]]},
        "properties": properties,
    }


def _json_items(stations: list[dict[str, Any]], first: bool) -> bytes:
    body = b",\n".join(orjson.dumps(s) for s in stations)
    return body if first else b",\n" + body


async def export_stations(db: Database, *, fmt: ExportFormat, query: StationQuery) -> AsyncIterator[bytes]:
    """The export as a stream of byte chunks, one chunk a page."""
    if fmt is ExportFormat.csv:
        writer = CsvWriter()
        yield writer.header().encode()
        async for stations in station_pages(db, query):
            yield writer.rows(stations).encode()
        return
    opening, closing = (
        (b'{"type":"FeatureCollection","features":[\n', b"\n]}\n") if fmt is ExportFormat.geojson else (b"[\n", b"\n]\n")
    )
    yield opening
    first = True
    async for stations in station_pages(db, query):
        items = [geojson_feature(s) for s in stations] if fmt is ExportFormat.geojson else stations
        yield _json_items(items, first)
        first = False
    yield closing

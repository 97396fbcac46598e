"""The station CSV format: one station per row, read as a stream and written by the exporter.

Columns (the header names them; order is free, `name`, `latitude`, `longitude` and `external_id` are required,
every other column is optional, an unknown or repeated column is an error before anything is written):

    source, external_id, name, address, town, postcode, country, latitude, longitude, operator, usage,
    status, usage_cost, price_currency, price_per_kwh, price_per_minute, price_per_session, price_free,
    connectors

An empty cell is null (`source` then defaults to "voltway"). `price_*` are the parts of the `price` object;
all empty means no price. `connectors` holds the station's connectors separated by `;`, each one
`type:power_kw:current:quantity:status:type_name`, e.g. `ccs2:150:DC:2:available:CCS (Type 2);type2:22:AC`.
Only `type` is needed; trailing parts may be left out and any part may be empty. `type_name` is
percent-encoded where it holds `%`, `:` or `;`.

The file must be UTF-8 (a byte-order mark is allowed). It is read line by line from a binary stream, so a row
whose bytes are not valid UTF-8 is rejected with its line number while the others are read on.
"""

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any
from urllib.parse import quote, unquote

from voltway.core.db import Database
from voltway.ingest.bulk import import_stations, validate_station
from voltway.ingest.rows import ItemError
from voltway.ingest.upsert import UpsertReport
from voltway.stations.schemas import StationIn

PRICE_COLUMNS = ("price_currency", "price_per_kwh", "price_per_minute", "price_per_session", "price_free")
COLUMNS = (
    "source",
    "external_id",
    "name",
    "address",
    "town",
    "postcode",
    "country",
    "latitude",
    "longitude",
    "operator",
    "usage",
    "status",
    "usage_cost",
    *PRICE_COLUMNS,
    "connectors",
)
REQUIRED_COLUMNS = ("external_id", "name", "latitude", "longitude")
CONNECTOR_PARTS = ("type", "power_kw", "current", "quantity", "status", "type_name")
_TYPE_NAME_SAFE = " ()/-.,+'&_[]#*!?=<>@"


class CsvHeaderError(ValueError):
    """The file cannot be read as station rows at all (empty, bad header, header not UTF-8)."""


# ------------------------------------------------------------------------------------------ reading
def check_header(header: list[str]) -> list[str]:
    names = [h.strip() for h in header]
    problems = []
    unknown = [n for n in names if n not in COLUMNS]
    if unknown:
        problems.append(f"unknown column(s): {', '.join(unknown)}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        problems.append(f"repeated column(s): {', '.join(repeated)}")
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        problems.append(f"missing required column(s): {', '.join(missing)}")
    if problems:
        raise CsvHeaderError(f"bad CSV header: {'; '.join(problems)} (expected columns: {', '.join(COLUMNS)})")
    return names


def parse_connectors(cell: str) -> list[dict[str, Any]]:
    connectors = []
    for spec in cell.split(";"):
        if not spec.strip():
            continue
        parts = spec.split(":")
        if len(parts) > len(CONNECTOR_PARTS):
            raise ValueError(f"connector {spec!r} has more than {len(CONNECTOR_PARTS)} ':'-separated parts")
        values = dict(zip(CONNECTOR_PARTS, (p.strip() for p in parts), strict=False))
        connector: dict[str, Any] = {k: v for k, v in values.items() if v}
        if "type_name" in connector:
            connector["type_name"] = unquote(connector["type_name"])
        connectors.append(connector)
    return connectors


def row_to_station(row: dict[str, str], *, line: int) -> StationIn | ItemError:
    """One CSV row as a validated station, or the error naming the bad cells."""
    data: dict[str, Any] = {k: v for k, v in row.items() if k not in PRICE_COLUMNS and k != "connectors" and v}
    price = {k.removeprefix("price_"): row[k] for k in PRICE_COLUMNS if row.get(k)}
    if price:
        data["price"] = price
    if row.get("connectors"):
        try:
            data["connectors"] = parse_connectors(row["connectors"])
        except ValueError as exc:
            return ItemError(index=line, code="validation_error", message=f"line {line}: connectors: {exc}")
    return validate_station(data, index=line, prefix=f"line {line}: ")


class CsvStationReader:
    """Iterates `(line_number, StationIn)` over the valid rows of a binary CSV stream and collects the errors.

    The header is checked when the reader is created, so a bad header fails before anything is written.
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self.errors: list[ItemError] = []
        self._bad_lines: dict[int, str] = {}
        self._reader = csv.reader(self._decoded_lines(stream), strict=True)
        try:
            header = next(self._reader)
        except StopIteration:
            raise CsvHeaderError("empty file: the first line must be the CSV header") from None
        except csv.Error as exc:
            raise CsvHeaderError(f"line 1: malformed CSV header: {exc}") from None
        if 1 in self._bad_lines:
            raise CsvHeaderError(f"line 1: {self._bad_lines[1]}")
        self.columns = check_header(header)
        self._last_line = self._reader.line_num

    def _decoded_lines(self, stream: IO[bytes]) -> Iterator[str]:
        for number, raw in enumerate(stream, start=1):
            try:
                yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                bad_byte = raw[exc.start : exc.start + 1]
                self._bad_lines[number] = f"invalid UTF-8 (byte {exc.start + 1} of the line: {bad_byte!r})"
                yield raw.decode("utf-8", errors="replace")

    def _reject(self, line: int, code: str, message: str) -> None:
        self.errors.append(ItemError(index=line, code=code, message=f"line {line}: {message}"))

    def __iter__(self) -> Iterator[tuple[int, StationIn]]:
        while True:
            first = self._last_line + 1
            try:
                cells = next(self._reader)
            except StopIteration:
                return
            except csv.Error as exc:
                self._last_line = self._reader.line_num
                self._reject(first, "malformed_csv", str(exc))
                continue
            self._last_line = self._reader.line_num
            bad = [n for n in range(first, self._last_line + 1) if n in self._bad_lines]
            if bad:
                self._reject(bad[0], "invalid_encoding", self._bad_lines[bad[0]])
                continue
            if not any(c.strip() for c in cells):
                continue  # a blank line
            if len(cells) != len(self.columns):
                self._reject(first, "wrong_column_count", f"{len(cells)} cells, the header has {len(self.columns)}")
                continue
            station = row_to_station(dict(zip(self.columns, cells, strict=True)), line=first)
            if isinstance(station, ItemError):
                self.errors.append(station)
                continue
            yield first, station


async def import_csv(
    db: Database, stream: IO[bytes], *, progress: Callable[[int], None] | None = None
) -> UpsertReport:
    """Import a CSV stream; CsvHeaderError (nothing written) when the header is unusable."""
    reader = CsvStationReader(stream)
    return await import_stations(db, reader, invalid=reader.errors, feed="csv", progress=progress, first_load=True)


# ------------------------------------------------------------------------------------------ writing
def _number(value: float | int | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _number(value)
    return str(value)


def format_connectors(connectors: Iterable[dict[str, Any]]) -> str:
    specs = []
    for c in connectors:
        type_name = quote(c["type_name"], safe=_TYPE_NAME_SAFE) if c.get("type_name") else ""
        parts = [c["type"], _number(c.get("power_kw")), c.get("current") or "", str(c.get("quantity", 1)),
                 c.get("status") or "unknown", type_name]
        specs.append(":".join(parts).rstrip(":"))
    return ";".join(specs)


def station_row(station: dict[str, Any]) -> list[str]:
    """The CSV cells of a station in the contract's dict form (as the API renders it), in `COLUMNS` order."""
    price = station.get("price") or {}
    values = {k: station.get(k) for k in COLUMNS if k not in PRICE_COLUMNS and k != "connectors"}
    values.update({k: price.get(k.removeprefix("price_")) for k in PRICE_COLUMNS} if price else {})
    values["connectors"] = format_connectors(station.get("connectors") or [])
    return [_cell(values.get(k)) for k in COLUMNS]


class CsvWriter:
    """Renders rows to CSV text one batch at a time (for streaming)."""

    def __init__(self) -> None:
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator="\n")

    def _take(self) -> str:
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return text

    def header(self) -> str:
        self._writer.writerow(COLUMNS)
        return self._take()

    def rows(self, stations: Iterable[dict[str, Any]]) -> str:
        self._writer.writerows(station_row(s) for s in stations)
        return self._take()

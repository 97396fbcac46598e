"""Streaming Open Charge Map reading: the POIs of a file or URL of any size, parsed into station rows.

The input is a JSON array of POIs, or an object wrapping one (an API response such as `{"data": [...]}`: the
first top-level array whose first element is a POI object, i.e. has `AddressInfo`). A bare array's records are
decoded in batches of 64 KB of text (`json_array.py`), the rest one at a time by ijson: never more than about a
megabyte of the input is held in memory, so the size of the input does not matter.

Problems are reported, never silently dropped:
- a record that cannot become a station is rejected with its index and reason, the others are imported;
- an input that is not JSON, empty, or a single POI object where an array is expected fails before anything
  is written;
- truncated or malformed JSON stops the reading at that point: every complete record before it is imported
  (whole chunks, each in its own transaction) and the report's `error` says where it stopped.
"""

from collections.abc import AsyncIterator
from typing import IO, Any, Protocol

import ijson
from pydantic import BaseModel, Field

from voltway.ingest.json_array import ArrayBatches
from voltway.ingest.ocm import RecordError, parse_record
from voltway.ingest.reference import Reference, bundled_reference
from voltway.ingest.rows import ItemError, StationRow

READ_SIZE = 64 * 1024


class InputError(Exception):
    """The input as a whole cannot be read (the message says why and where)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ReadReport(BaseModel):
    """What reading an input found: `ImportReport` adds what writing it did."""

    records: int = 0  # elements read from the input
    skipped: int = 0  # records of another country than the one asked for
    rejected: list[ItemError] = Field(default_factory=list)
    error: ItemError | None = None  # why reading stopped early (index = records read before it)


class ByteSource(Protocol):
    async def read(self, size: int) -> bytes: ...


class FileSource:
    def __init__(self, file: IO[bytes]) -> None:
        self.file = file

    async def read(self, size: int) -> bytes:
        return self.file.read(size)


class Rewindable:
    """Records what is read until `rewind()`, then serves it again before the rest of the source."""

    def __init__(self, source: ByteSource) -> None:
        self.source = source
        self.recorded: bytearray | None = bytearray()
        self.replay = b""
        self.replayed = 0  # bytes of `replay` served (slicing it instead copied the rest on every read)
        self.position = 0  # bytes handed out after the rewind

    async def read(self, size: int) -> bytes:
        if self.replayed < len(self.replay):
            data = self.replay[self.replayed : self.replayed + size]
            self.replayed += len(data)
        else:
            data = await self.source.read(size)
        if self.recorded is not None:
            self.recorded += data
        else:
            self.position += len(data)
        return data

    def unread(self, data: bytes) -> None:
        """Serve `data`, the last bytes read (after the rewind), again before the rest."""
        self._replay_first(data)
        self.position -= len(data)

    def rewind(self, *, keep_recording: bool = False) -> None:
        """Serve everything read so far again; stop recording unless `keep_recording`."""
        assert self.recorded is not None
        self._replay_first(bytes(self.recorded))
        self.recorded = bytearray() if keep_recording else None

    def _replay_first(self, data: bytes) -> None:
        self.replay, self.replayed = data + self.replay[self.replayed :], 0


async def _first_char(stream: Rewindable) -> str:
    while True:
        data = await stream.read(READ_SIZE)
        if not data:
            raise InputError("empty", "the input is empty: expected a JSON array of Open Charge Map POIs")
        text = data.lstrip(b" \t\r\n\xef\xbb\xbf")
        if text:
            return chr(text[0])


async def _array_prefix(stream: Rewindable) -> str:
    """The ijson prefix of the POI array: `item` for a bare array, `<key>.item` inside an object."""
    first = await _first_char(stream)
    if first == "[":
        stream.rewind()
        return "item"
    if first != "{":
        raise InputError("not_json_array", f"the input starts with {first!r}: expected a JSON array of POIs")
    stream.rewind(keep_recording=True)  # read the object's start again, as events this time
    empty_key: str | None = None
    candidate: str | None = None  # a top-level key whose value is an array, while its first element is read
    try:
        async for prefix, event, value in ijson.parse_async(stream, use_float=True):
            if prefix == "" and event == "map_key":
                if value == "AddressInfo":
                    raise InputError("not_json_array", "a single POI object where an array of POIs is expected")
                candidate = None
            elif event == "start_array" and prefix and "." not in prefix:
                candidate = prefix
            elif candidate is not None and prefix == candidate and event == "end_array":
                empty_key = empty_key or candidate
                candidate = None
            elif candidate is not None and prefix == f"{candidate}.item":
                if event == "map_key" and value == "AddressInfo":
                    stream.rewind()
                    return f"{candidate}.item"
                if event in {"end_map", "string", "number", "boolean", "null", "start_array"}:
                    candidate = None  # the array does not hold POIs
    except (ijson.JSONError, UnicodeDecodeError) as exc:
        raise InputError("malformed_json", f"the input is not valid JSON: {_first_line(exc)}") from None
    if empty_key is not None:
        stream.rewind()
        return f"{empty_key}.item"
    raise InputError("not_json_array", "a JSON object without an array of POIs where an array is expected")


async def element_batches(stream: Rewindable, prefix: str) -> AsyncIterator[list[Any]]:
    """The POIs in lists: a bare array's decoded by orjson (`json_array.py`) as far as it goes, the rest and an
    array inside an object by ijson."""
    if prefix == "item":
        batches = ArrayBatches(stream)
        async for batch in batches:
            yield batch
        if batches.finished:
            return
    async for raw in ijson.items_async(stream, prefix, use_float=True):
        yield [raw]


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


class OcmReader:
    """Yields `(index, StationRow)` for each usable POI; rejections and the stop reason land in `report`."""

    def __init__(self, report: ReadReport, *, reference: Reference | None = None, country: str | None = None):
        self.report = report
        self.reference = reference or bundled_reference()
        self.country = country.upper() if country else None
        self.stream: Rewindable | None = None

    @property
    def bytes_read(self) -> int:
        return self.stream.position if self.stream is not None else 0

    async def stations(self, source: ByteSource) -> AsyncIterator[tuple[int, StationRow]]:
        stream = self.stream = Rewindable(source)
        prefix = await _array_prefix(stream)
        try:
            async for batch in element_batches(stream, prefix):
                for raw in batch:
                    index = self.report.records
                    self.report.records += 1
                    try:
                        row = parse_record(raw, self.reference)
                    except RecordError as exc:
                        self.report.rejected.append(ItemError(index=index, code=exc.code, message=exc.message))
                        continue
                    if self.country and row.country != self.country:
                        self.report.skipped += 1
                        continue
                    yield index, row
        except (ijson.JSONError, UnicodeDecodeError) as exc:
            # yajl lets a UTF-8-encoded surrogate through to Python's decoding, which rejects it.
            message = "invalid UTF-8" if isinstance(exc, UnicodeDecodeError) else _first_line(exc)
            code = "truncated_json" if "premature EOF" in message else "malformed_json"
            what = "ends early (truncated)" if code == "truncated_json" else f"is malformed ({message})"
            self.report.error = ItemError(
                index=self.report.records,
                code=code,
                message=f"the JSON {what} after record {self.report.records} (near byte {stream.position}); "
                f"the {self.report.records} records before it were read",
            )

"""A large Open Charge Map file is parsed in a process of its own while the importing process writes.

Parsing and mapping a record (ijson, then `ocm.parse_record`) costs more of the importing thread than writing
it, and in one process the two share the GIL: SQLite's thread needs it to bind every row. The child
(`python -m voltway.ingest.parse_process PATH [COUNTRY]`) runs the same `OcmReader` over the file and sends
its rows through its stdout in marshal frames; the importer reads them on its event loop, so it only builds
`StationRow`s and writes. Every outcome of the in-process reader (rejections, skipped records, a truncated
file, an input that is not a POI array) comes back as it is.

Files of at least `IMPORT_PARSER_PROCESS_MB` (8 MB) go this way: starting the child costs ~0.3 s, about what
it saves on a 4 MB file (5,000 stations: 1.9 s either way; 20,000: 3.3 -> 2.9 s; 300,000: 33.9 -> 24.6 s). It
holds ~37 MB of memory.

The child writes nothing to the database. If it dies, the import stops as at a truncated file: the chunks
before are committed and a second run completes the import. If the importer dies, the child's next write
fails and it ends.
"""

import asyncio
import marshal
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from voltway.core.gc_tuning import fewer_collections
from voltway.ingest.ocm_stream import FileSource, InputError, OcmReader, ReadReport
from voltway.ingest.rows import ItemError, StationRow

ROWS_PER_FRAME = 500
# The importer's pipe buffer (it stops reading at twice this): how far the child may run ahead of the writes.
# 1, 2 or 8 MB made no difference on SQLite; with 8, a PostgreSQL import (bound by its server) held 16 MB of
# frames and its peak RSS went 145 -> 189 MB.
BUFFER_BYTES = 1024 * 1024
HEADER = 4  # each frame: its length (little-endian) and a marshal dump


class ProcessReader:
    """`OcmReader`'s interface (`report`, `bytes_read`, `stations()`) over a child process parsing `path`."""

    def __init__(self, report: ReadReport, path: Path, *, country: str | None = None) -> None:
        self.report = report
        self.path = path
        self.country = country
        self.bytes_read = 0

    async def stations(self) -> AsyncIterator[tuple[int, StationRow]]:
        args = [str(self.path), *([self.country] if self.country else [])]
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", __name__, *args, stdout=asyncio.subprocess.PIPE, limit=BUFFER_BYTES
        )
        assert child.stdout is not None
        try:
            while True:
                try:
                    header = await child.stdout.readexactly(HEADER)
                    frame = marshal.loads(await child.stdout.readexactly(int.from_bytes(header, "little")))
                except asyncio.IncompleteReadError:
                    self._child_died(await child.wait())
                    return
                if frame[0] == "rows":
                    _, self.report.records, self.bytes_read, rows = frame
                    for index, values, connectors, digest in rows:
                        yield index, StationRow(values, connectors, digest)
                elif frame[0] == "input_error":
                    raise InputError(frame[1], frame[2])
                else:
                    self._finish(ReadReport.model_validate_json(frame[1]))
                    return
        finally:
            if child.returncode is None:
                child.kill()
            # Not `wait()` alone: it also waits for the end of the pipe, which a paused pipe (its buffer full,
            # the import stopped) never reads. Shutting down after Ctrl-C hung there.
            await child.communicate()

    def _finish(self, final: ReadReport) -> None:
        self.report.records, self.report.skipped, self.report.error = final.records, final.skipped, final.error
        self.report.rejected.extend(final.rejected)

    def _child_died(self, code: int) -> None:
        read = self.report.records
        self.report.error = ItemError(
            index=read,
            code="parser_failed",
            message=f"the parser process stopped (exit code {code}) after record {read}; "
            f"the {read} records before it were imported",
        )


async def _parse(path: Path, country: str | None, out: "_Frames") -> None:
    report = ReadReport()
    reader = OcmReader(report, country=country)
    rows: list[tuple[object, ...]] = []
    with path.open("rb") as file:
        try:
            async for index, row in reader.stations(FileSource(file)):
                rows.append((index, row.values, row.connectors, row.content_hash))
                if len(rows) == ROWS_PER_FRAME:
                    out.send(("rows", report.records, reader.bytes_read, rows))
                    rows = []
        except InputError as exc:
            out.send(("input_error", exc.code, exc.message))
            return
    out.send(("rows", report.records, reader.bytes_read, rows))
    out.send(("end", report.model_dump_json()))


class _Frames:
    """Writes frames to the stdout pipe with `os.write` until every byte is out: a signal can cut a write to
    a pipe short, and `sys.stdout.buffer` lost the rest of such a frame (seen while py-spy sampled the child)."""

    def __init__(self) -> None:
        self.fd = os.dup(sys.stdout.fileno())

    def send(self, payload: tuple[object, ...]) -> None:
        data = marshal.dumps(payload)
        pending = memoryview(len(data).to_bytes(HEADER, "little") + data)
        while pending:
            pending = pending[os.write(self.fd, pending) :]


def main() -> None:
    # Ctrl-C reaches the whole process group: the importer handles it (and ends this process).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    frames = _Frames()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints must not corrupt the frames
    try:
        with fewer_collections():
            asyncio.run(_parse(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None, frames))
    except BrokenPipeError:  # the importer is gone: nobody is left to tell
        sys.exit(1)


if __name__ == "__main__":
    main()

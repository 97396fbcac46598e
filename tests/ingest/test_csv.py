"""CSV import: header validation, per-row errors by line, invalid UTF-8, streaming, round trip with the export."""

import csv
import io
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from voltway.core.db import Database
from voltway.ingest.csv_io import COLUMNS, CsvHeaderError, CsvStationReader, import_csv, parse_connectors

pytestmark = pytest.mark.usefixtures("backend")
StationFactory = Callable[..., dict[str, Any]]

HEADER = b"external_id,name,latitude,longitude,operator,connectors\n"


async def _count(db: Database, table: str) -> int:
    return (await db.fetch(f"SELECT count(*) FROM {table}", {}))[0][0]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (b"external_id,name,latitude,longitude,colour\n", "unknown column(s): colour"),
        (b"external_id,name,latitude\n", "missing required column(s): longitude"),
        (b"external_id,name,name,latitude,longitude\n", "repeated column(s): name"),
        (b"name,latitude,longitude\n", "missing required column(s): external_id"),
    ],
)
async def test_bad_header_fails_before_anything_is_written(db: Database, header: bytes, message: str) -> None:
    body = header + b"a-1,Somewhere,10,20,x\n"
    with pytest.raises(CsvHeaderError) as error:
        await import_csv(db, io.BytesIO(body))
    assert message in str(error.value)
    assert str(error.value).startswith("bad CSV header:")
    assert await _count(db, "stations") == 0


async def test_empty_file_and_bad_header_bytes(db: Database) -> None:
    with pytest.raises(CsvHeaderError, match="empty file"):
        await import_csv(db, io.BytesIO(b""))
    with pytest.raises(CsvHeaderError, match="line 1: invalid UTF-8"):
        await import_csv(db, io.BytesIO(b"external_id,n\xe4me,latitude,longitude\n"))


async def test_rows_are_reported_by_line_and_the_rest_imported(db: Database) -> None:
    body = (
        "\ufeff".encode()  # a byte-order mark is fine
        + HEADER
        + b'a-1,"Hub, with comma",-36.85,174.76,Acme,ccs2:150:DC:2:available:CCS (Type 2);type2:22:AC\n'  # line 2
        + b"a-2,Caf\xe9 Latin-1,-36.86,174.76,Acme,\n"  # line 3: not UTF-8
        + b'a-3,"Two\nline name",-36.87,174.76,,chademo:50\n'  # lines 4-5
        + b"a-4,Too far north,95,174.76,Acme,\n"  # line 6
        + b"a-5,Bad plug,-36.88,174.76,Acme,warp:10\n"  # line 7
        + b"a-6,Short row,-36.89\n"  # line 8
        + b"\n"  # line 9: blank, skipped
        + b",No key,-36.9,174.76,Acme,\n"  # line 10
        + "a-7,Ōtāhuhu Ü,-36.95,174.84,Acme,type2:7.4:AC:1:unknown:Type 2 %3A socket\n".encode()  # line 11
    )
    report = await import_csv(db, io.BytesIO(body))
    assert (report.created, report.updated, report.unchanged) == (3, 0, 0)
    rejected = {e.index: (e.code, e.message) for e in report.rejected}
    assert sorted(rejected) == [3, 6, 7, 8, 10]
    assert rejected[3] == ("invalid_encoding", "line 3: invalid UTF-8 (byte 8 of the line: b'\\xe9')")
    assert rejected[6][0] == "validation_error" and rejected[6][1].startswith("line 6: latitude:")
    assert rejected[7][1].startswith("line 7: connectors.0.type:")
    assert rejected[8] == ("wrong_column_count", "line 8: 3 cells, the header has 6")
    assert rejected[10] == ("missing_external_id", "line 10: external_id is required to upsert")

    rows = await db.fetch("SELECT external_id, name, operator FROM stations ORDER BY external_id", {})
    assert rows == [("a-1", "Hub, with comma", "Acme"), ("a-3", "Two\nline name", None), ("a-7", "Ōtāhuhu Ü", "Acme")]
    connectors = await db.fetch(
        "SELECT s.external_id, c.type, c.type_name, c.power_kw, c.current, c.quantity, c.status "
        "FROM connectors c JOIN stations s ON s.id = c.station_id ORDER BY c.id",
        {},
    )
    assert connectors == [
        ("a-1", "ccs2", "CCS (Type 2)", 150.0, "DC", 2, "available"),
        ("a-1", "type2", None, 22.0, "AC", 1, "unknown"),
        ("a-3", "chademo", None, 50.0, None, 1, "unknown"),
        ("a-7", "type2", "Type 2 : socket", 7.4, "AC", 1, "unknown"),
    ]

    again = await import_csv(db, io.BytesIO(body))
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)


def test_reader_streams_rows() -> None:
    """Rows come out one by one as the stream is read: the reader never holds the file."""

    class Lines(io.RawIOBase):
        def __init__(self, count: int) -> None:
            self.count, self.served = count, 0

        def readable(self) -> bool:
            return True

        def __iter__(self):  # type: ignore[no-untyped-def]
            yield HEADER
            for n in range(self.count):
                self.served += 1
                yield f"k-{n},Station {n},1.0,2.0,,\n".encode()

    lines = Lines(1_000_000)
    reader = CsvStationReader(lines)  # type: ignore[arg-type]
    rows = iter(reader)
    for _ in range(3):
        next(rows)
    assert lines.served == 3


def test_connector_cell_format() -> None:
    assert parse_connectors("ccs2:150:DC:2:available:CCS (Type 2); type2 ;;") == [
        {"type": "ccs2", "power_kw": "150", "current": "DC", "quantity": "2", "status": "available",
         "type_name": "CCS (Type 2)"},
        {"type": "type2"},
    ]
    with pytest.raises(ValueError, match="more than 6"):
        parse_connectors("a:1:AC:1:unknown:x:y")


async def test_export_round_trips_through_import(
    client: httpx.AsyncClient, operator_headers: dict[str, str], db: Database, station_item: StationFactory,
) -> None:
    items = [
        station_item(1),
        station_item(2, price=None, usage_cost=None, address=None, operator=None, connectors=[]),
        station_item(3, name='Quote " and; semi:colon', connectors=[
            {"type": "other", "type_name": "Weird; name: 100% odd", "power_kw": 3.7, "current": "AC", "quantity": 3,
             "status": "out_of_service"},
        ], price={"currency": None, "per_kwh": None, "per_minute": None, "per_session": 2.5, "free": False}),
        station_item(4, price={"currency": None, "per_kwh": None, "per_minute": None, "per_session": None,
                               "free": True}, status="planned"),
    ]
    assert (await client.post("/api/v1/stations/bulk", json=items, headers=operator_headers)).json()["created"] == 4
    exported = (await client.get("/api/v1/stations/export", params={"format": "csv"})).content
    assert exported.splitlines()[0].decode() == ",".join(COLUMNS)
    before = (await client.get("/api/v1/stations/export", params={"format": "json"})).json()

    async with db.engine.begin() as conn:
        await conn.exec_driver_sql("DELETE FROM connectors")
        await conn.exec_driver_sql("DELETE FROM stations")
    report = await import_csv(db, io.BytesIO(exported))
    assert (report.created, report.rejected) == (4, [])
    after = (await client.get("/api/v1/stations/export", params={"format": "json"})).json()

    def comparable(stations: list[dict[str, Any]]) -> list[dict[str, Any]]:
        drop = {"id", "updated_at"}
        return [
            {**{k: v for k, v in s.items() if k not in drop},
             "connectors": [{k: v for k, v in c.items() if k != "id"} for c in s["connectors"]]}
            for s in stations
        ]

    assert comparable(after) == comparable(before)
    assert len(after) == 4


def _cli(database_url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url, "LOG_DIR": str(tmp_path / "logs"), "LOG_LEVEL": "WARNING"}
    return subprocess.run(
        [sys.executable, "-m", "voltway", *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_cli_import_summary_and_exit_codes(database_url: str, tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_bytes(HEADER + b"a-1,One,1.5,2.5,Acme,ccs2:50\na-2,Two,1.6,2.5,Acme,\n")
    result = _cli(database_url, tmp_path, "import", "csv", str(good))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == (
        "created 2, updated 0, unchanged 0, rejected 0, repeated 0, duplicates linked 0"
    )

    mixed = tmp_path / "mixed.csv"
    mixed.write_bytes(HEADER + b"a-1,One,1.5,2.5,Acme,ccs2:50\na-3,Bad,1.7,200,Acme,\n")
    result = _cli(database_url, tmp_path, "import", "csv", str(mixed))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0] == "created 0, updated 0, unchanged 1, rejected 1, repeated 0, duplicates linked 0"
    assert lines[1].startswith("  rejected line 3 [validation_error]: line 3: longitude:")

    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"id,title\n1,x\n")
    result = _cli(database_url, tmp_path, "import", "csv", str(bad))
    assert result.returncode == 2
    assert "bad CSV header: unknown column(s): id, title" in result.stderr

    exported = tmp_path / "out.csv"
    result = _cli(database_url, tmp_path, "export", "csv", "-o", str(exported))
    assert result.returncode == 0 and "exported 2 stations" in result.stderr
    assert [r["external_id"] for r in csv.DictReader(io.StringIO(exported.read_text()))] == ["a-1", "a-2"]

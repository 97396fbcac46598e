"""Importing Open Charge Map data into both databases: the real shared samples, re-imports, bad input, URLs.

Expected stations are computed here from the raw records with the test's own tables (by OCM id), then
compared with what the tables hold.
"""

import json
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from voltway.core.db import Database
from voltway.ingest.demo import load_demo
from voltway.ingest.ocm_stream import InputError
from voltway.ingest.parse_process import ProcessReader
from voltway.ingest.reader import ImportReport, import_ocm
from voltway.ingest.rows import StationRow
from voltway.settings import Settings
from tests.ingest.conftest import EXPECTED_CONNECTOR_BY_ID, EXPECTED_STATUS_BY_ID

pytestmark = pytest.mark.usefixtures("backend")

Records = list[dict[str, Any]]
CURRENT_BY_ID = {10: "AC", 20: "AC", 30: "DC"}


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, ensure_ascii=False))
    return path


def trimmed(text: str | None) -> str | None:
    return text.strip() or None if text is not None else None


def expected_station(raw: dict[str, Any], countries: dict[int, str]) -> dict[str, Any]:
    """What the tables should hold for one raw POI, from the test's own tables (texts are trimmed)."""
    address = raw["AddressInfo"]
    country = (address.get("Country") or {}).get("ISOCode") or countries.get(address.get("CountryID"))
    status = EXPECTED_STATUS_BY_ID[raw["StatusTypeID"]] if raw.get("StatusTypeID") is not None else "unknown"
    connectors = []
    for conn in raw.get("Connections") or []:
        own = conn.get("StatusTypeID")
        connectors.append((
            EXPECTED_CONNECTOR_BY_ID[conn.get("ConnectionTypeID") or 0],
            float(conn["PowerKW"]) if conn.get("PowerKW") is not None else None,
            CURRENT_BY_ID.get(conn.get("CurrentTypeID")),
            conn.get("Quantity") or 1,
            EXPECTED_STATUS_BY_ID[own] if own is not None else status,
        ))  # fmt: skip
    return {
        "name": trimmed(address["Title"]),
        "country": country,
        "latitude": address["Latitude"],
        "longitude": address["Longitude"],
        "town": trimmed(address.get("Town")),
        "status": status,
        "usage_cost": trimmed(raw.get("UsageCost")),
        "connectors": connectors,
    }


async def stored_stations(db: Database) -> dict[str, dict[str, Any]]:
    """external_id -> the stored fields compared by `expected_station`."""
    rows = await db.fetch(
        "SELECT id, external_id, name, country, latitude, longitude, town, status, usage_cost FROM stations "
        "WHERE source = 'ocm'",
        {},
    )
    conns = await db.fetch(
        "SELECT station_id, type, power_kw, current, quantity, status FROM connectors ORDER BY id", {}
    )
    by_station: dict[int, list[tuple[Any, ...]]] = {}
    for station_id, *fields in conns:
        by_station.setdefault(station_id, []).append(tuple(fields))
    return {
        ext: {"name": name, "country": country, "latitude": lat, "longitude": lon, "town": town, "status": status,
              "usage_cost": cost, "connectors": by_station.get(sid, [])}  # fmt: skip
        for sid, ext, name, country, lat, lon, town, status, cost in rows
    }


async def count(db: Database, table: str) -> int:
    return (await db.fetch(f"SELECT count(*) FROM {table}", {}))[0][0]


async def assert_consistent(db: Database) -> None:
    """Every connector has its station and, on SQLite, the R*Tree indexes exactly the stations."""
    assert await count(db, "connectors c WHERE NOT EXISTS (SELECT 1 FROM stations s WHERE s.id = c.station_id)") == 0
    if db.is_sqlite:
        assert await count(db, "station_rtree") == await count(db, "stations")
        assert await count(db, "station_rtree r JOIN stations s ON s.id = r.id") == await count(db, "stations")


def counts(report: ImportReport) -> tuple[int, int, int, int]:
    return report.created, report.updated, report.unchanged, len(report.rejected)


@pytest.fixture(params=["in_process", "parser_process"])
def file_settings(
    request: pytest.FixtureRequest, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """Settings for a file import read in this process, or by a parser process (`parse_process.py`, for every
    file size); checks that the parser process ran exactly when asked."""
    by_process = request.param == "parser_process"
    spawned: list[Path] = []
    stations = ProcessReader.stations

    def spy(reader: ProcessReader) -> AsyncIterator[tuple[int, StationRow]]:
        spawned.append(reader.path)
        return stations(reader)

    monkeypatch.setattr(ProcessReader, "stations", spy)
    yield settings.model_copy(update={"import_parser_process_mb": 0 if by_process else 8})
    assert bool(spawned) == by_process


@pytest.fixture
def countries(ocm_reference_json: dict[str, Any]) -> dict[int, str]:
    return {c["ID"]: c["ISOCode"] for c in ocm_reference_json["Countries"]}


# ------------------------------------------------------------------------------------- real samples
async def test_shared_samples_import_with_their_fields_and_connector_codes(
    db: Database, file_settings: Settings, tmp_path: Path, ocm_samples: dict[str, Records], countries: dict[int, str]
) -> None:
    everything = ocm_samples["compact"] + ocm_samples["verbose"] + ocm_samples["verbose-2020"]
    report = await import_ocm(db, write_json(tmp_path / "all.json", everything), settings=file_settings)

    last: dict[str, dict[str, Any]] = {str(raw["ID"]): raw for raw in everything}  # the last copy wins
    assert len(everything) == 1258 and len(last) == 1257
    assert counts(report) == (1257, 0, 0, 0)
    twice = [i for i, raw in enumerate(everything) if raw["ID"] == 11835]  # in the compact and the 2020 sample
    assert [(r.index, r.external_id, r.replaced_by) for r in report.repeated] == [(twice[0], "11835", twice[1])]
    stored = await stored_stations(db)
    assert stored == {ext: expected_station(raw, countries) for ext, raw in last.items()}
    assert await count(db, "connectors") == sum(len(raw.get("Connections") or []) for raw in last.values())
    await assert_consistent(db)


async def test_each_form_imports_and_a_second_import_changes_nothing(
    db: Database, file_settings: Settings, tmp_path: Path, ocm_samples: dict[str, Records]
) -> None:
    for name, size in (("compact", 152), ("verbose", 60)):
        path = write_json(tmp_path / f"{name}.json", ocm_samples[name])
        assert counts(await import_ocm(db, path, settings=file_settings)) == (size, 0, 0, 0)
        again = await import_ocm(db, path, settings=file_settings)
        assert counts(again) == (0, 0, size, 0)
    assert await count(db, "stations") == 212
    await assert_consistent(db)


async def test_a_changed_record_is_updated_and_its_connectors_replaced(
    db: Database, settings: Settings, tmp_path: Path, ocm_samples: dict[str, Records]
) -> None:
    records = json.loads(json.dumps(ocm_samples["compact"]))
    path = write_json(tmp_path / "compact.json", records)
    await import_ocm(db, path, settings=settings)
    changed = records[0]
    changed["Connections"] = [{"ConnectionTypeID": 33, "PowerKW": 150, "CurrentTypeID": 30, "Quantity": 4}]
    changed["AddressInfo"]["Latitude"] = 42.6
    before = await db.fetch("SELECT id, created_at FROM stations WHERE external_id = :e", {"e": str(changed["ID"])})

    report = await import_ocm(db, write_json(path, records), settings=settings)

    assert counts(report) == (0, 1, 151, 0)
    after = await db.fetch("SELECT id, created_at, latitude, max_power_kw FROM stations WHERE external_id = :e",
                           {"e": str(changed["ID"])})  # fmt: skip
    assert after[0][:2] == before[0] and after[0][2:] == (42.6, 150.0)
    conns = await db.fetch(
        "SELECT type, power_kw, current, quantity FROM connectors WHERE station_id = :s", {"s": before[0][0]}
    )
    assert conns == [("ccs2", 150.0, "DC", 4)]
    if db.is_sqlite:  # the upsert's UPDATE moved the R*Tree entry too
        assert await db.fetch("SELECT min_lat > 42.599 FROM station_rtree WHERE id = :s", {"s": before[0][0]}) == [(1,)]
    await assert_consistent(db)


# ---------------------------------------------------------------------------------------- bad input
async def test_unusable_records_are_rejected_by_index_and_the_rest_imported(
    db: Database, file_settings: Settings, tmp_path: Path, ocm_samples: dict[str, Records]
) -> None:
    records: list[Any] = json.loads(json.dumps(ocm_samples["compact"][:10]))
    del records[2]["AddressInfo"]["Latitude"]
    records[4]["AddressInfo"]["Longitude"] = 200
    records[5]["AddressInfo"]["Latitude"] = "42,5"
    records[7] = ["not", "a", "poi"]
    records.append(dict(records[0], UsageCost="changed"))  # index 10: the same ID as index 0; the last wins
    report = await import_ocm(db, write_json(tmp_path / "bad.json", records), settings=file_settings)

    assert [(e.index, e.code, e.message) for e in report.rejected] == [
        (2, "missing_coordinates", "AddressInfo.Latitude is missing"),
        (4, "coordinates_out_of_range", "AddressInfo.Longitude 200.0 is outside [-180, 180]"),
        (5, "wrong_type", "AddressInfo.Latitude must be a number, not '42,5'"),
        (7, "wrong_type", "the record must be an object, not list"),
    ]
    assert [(r.index, r.external_id, r.replaced_by) for r in report.repeated] == [(0, str(records[0]["ID"]), 10)]
    assert (report.created, report.updated, report.unchanged, report.records) == (6, 0, 0, 11)
    cost = await db.fetch("SELECT usage_cost FROM stations WHERE external_id = :e", {"e": str(records[0]["ID"])})
    assert cost == [("changed",)]


async def test_truncated_json_imports_the_complete_records_before_the_cut(
    db: Database, file_settings: Settings, tmp_path: Path, ocm_samples: dict[str, Records]
) -> None:
    records = ocm_samples["compact"]
    head = "[" + ",".join(json.dumps(r) for r in records[:40])
    path = tmp_path / "truncated.json"
    path.write_text(head + "," + json.dumps(records[40])[:25])

    report = await import_ocm(db, path, settings=file_settings)

    assert report.error is not None and report.error.code == "truncated_json"
    assert report.error.index == 40
    assert "after record 40" in report.error.message
    assert counts(report) == (40, 0, 0, 0)
    assert await count(db, "stations") == 40
    await assert_consistent(db)


async def test_invalid_utf8_stops_the_import_with_the_records_before_it(
    db: Database, file_settings: Settings, tmp_path: Path, ocm_samples: dict[str, Records]
) -> None:
    records = ocm_samples["compact"][:30]
    # A UTF-8-encoded surrogate: yajl passes it on, Python's decoding rejects it.
    texts = [json.dumps(r, ensure_ascii=False).encode() for r in records]
    texts[20] = texts[20].replace(b'"AddressInfo":', b'"Bad\xed\xa0\x80": 1, "AddressInfo":', 1)
    path = tmp_path / "bad-utf8.json"
    path.write_bytes(b"[" + b",".join(texts) + b"]")

    report = await import_ocm(db, path, settings=file_settings)

    assert report.error is not None and report.error.code == "malformed_json"
    assert "invalid UTF-8" in report.error.message
    assert report.error.index == report.records <= 20
    assert counts(report) == (report.records, 0, 0, 0)
    assert await count(db, "stations") == report.records
    await assert_consistent(db)


@pytest.mark.parametrize(
    ("content", "code", "message"),
    [
        ("", "empty", "the input is empty: expected a JSON array of Open Charge Map POIs"),
        ("  \n ", "empty", "the input is empty: expected a JSON array of Open Charge Map POIs"),
        ('{"ID": 1, "AddressInfo": {"Latitude": 1, "Longitude": 2}}', "not_json_array",
         "a single POI object where an array of POIs is expected"),
        ('{"status": "ok", "count": 3}', "not_json_array",
         "a JSON object without an array of POIs where an array is expected"),
        ('"stations"', "not_json_array", "the input starts with '\"': expected a JSON array of POIs"),
        ("{'ID': 1}", "malformed_json", "the input is not valid JSON: lexical error: invalid char in json text."),
    ],
)
async def test_inputs_that_cannot_be_read_write_nothing(
    db: Database, file_settings: Settings, tmp_path: Path, content: str, code: str, message: str
) -> None:
    path = tmp_path / "input.json"
    path.write_text(content)
    with pytest.raises(InputError) as caught:
        await import_ocm(db, path, settings=file_settings)
    assert (caught.value.code, caught.value.message) == (code, message)
    assert await count(db, "stations") == 0


async def test_an_api_response_object_wrapping_the_array(
    db: Database, file_settings: Settings, tmp_path: Path, ocm_samples: dict[str, Records]
) -> None:
    wrapped = {"status": "ok", "warnings": ["none"], "data": ocm_samples["verbose"][:7], "next": None}
    report = await import_ocm(db, write_json(tmp_path / "wrapped.json", wrapped), settings=file_settings)
    assert counts(report) == (7, 0, 0, 0)
    empty = await import_ocm(db, write_json(tmp_path / "empty.json", {"data": []}), settings=file_settings)
    assert counts(empty) == (0, 0, 0, 0) and empty.records == 0


async def test_country_option_keeps_only_that_country(
    db: Database, file_settings: Settings, tmp_path: Path, ocm_samples: dict[str, Records], countries: dict[int, str]
) -> None:
    records = ocm_samples["compact"]
    in_nz = sum(1 for r in records if countries[r["AddressInfo"]["CountryID"]] == "NZ")
    report = await import_ocm(db, write_json(tmp_path / "c.json", records), settings=file_settings, country="nz")
    assert (report.created, report.skipped) == (in_nz, len(records) - in_nz) == (68, 84)


# ---------------------------------------------------------------------------------------------- URL
class _OcmApi(BaseHTTPRequestHandler):
    body = b"[]"
    status = 200
    requests: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        type(self).requests.append((self.path, self.headers.get("X-API-Key")))
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def ocm_api(ocm_samples: dict[str, Records]) -> Iterator[tuple[str, type[_OcmApi]]]:
    """A real HTTP server on a free local port, answering like the OCM API with the compact sample."""
    handler = type("Handler", (_OcmApi,), {"body": json.dumps(ocm_samples["compact"]).encode(), "requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v3/poi", handler
    server.shutdown()
    server.server_close()


async def test_import_from_the_api_url_sends_the_key(
    db: Database, settings: Settings, ocm_api: tuple[str, type[_OcmApi]]
) -> None:
    url, handler = ocm_api
    keyed = settings.model_copy(update={"ocm_api_key": "ocm-test-key"})
    report = await import_ocm(db, url + "?maxresults=5000", settings=keyed, country="ad")
    assert counts(report) == (44, 0, 0, 0) and report.skipped == 108
    path, header = handler.requests[0]
    assert header == "ocm-test-key"
    assert path == "/v3/poi?maxresults=5000&output=json&compact=true&verbose=false&countrycode=AD"
    await assert_consistent(db)


async def test_an_api_error_status_is_an_input_error(
    db: Database, settings: Settings, ocm_api: tuple[str, type[_OcmApi]]
) -> None:
    url, handler = ocm_api
    handler.status = 403
    with pytest.raises(InputError, match="answered HTTP 403"):
        await import_ocm(db, url, settings=settings)
    assert await count(db, "stations") == 0


# --------------------------------------------------------------------------------------- API + demo
async def test_an_imported_station_reads_back_through_the_api(
    client: Any, db: Database, settings: Settings, tmp_path: Path, ocm_samples: dict[str, Records]
) -> None:
    raw = next(r for r in ocm_samples["compact"] if r["ID"] == 107630)  # Queenstown Supercharger
    await import_ocm(db, write_json(tmp_path / "one.json", [raw]), settings=settings)
    station_id = (await db.fetch("SELECT id FROM stations WHERE external_id = '107630'", {}))[0][0]

    response = await client.get(f"/api/v1/stations/{station_id}")

    assert response.status_code == 200, response.text
    body = response.json()
    body.pop("updated_at")
    assert body == {
        "id": station_id, "source": "ocm", "external_id": "107630", "name": "Queenstown Supercharger",
        "address": "Remarkables Park Town Centre", "town": "Queenstown", "postcode": "9300", "country": "NZ",
        "latitude": raw["AddressInfo"]["Latitude"], "longitude": raw["AddressInfo"]["Longitude"],
        "operator": "Tesla (Tesla-only charging)", "usage": "Public - Membership Required", "status": "available",
        "usage_cost": "NZD 0.35/kWh;other tariffs for older cars",
        "price": {"currency": "NZD", "per_kwh": 0.35, "per_minute": None, "per_session": None, "free": False},
        "connectors": [{"id": body["connectors"][0]["id"], "type": "nacs", "type_name": "NACS / Tesla Supercharger",
                        "power_kw": 120.0, "current": "DC", "quantity": 4, "status": "available"}],
        "max_power_kw": 120.0, "rating": {"average": None, "count": 0},
    }  # fmt: skip


async def test_demo_loads_the_bundled_sample_into_an_empty_database_only(db: Database, settings: Settings) -> None:
    message = await load_demo(settings)
    assert message.startswith("demo data loaded: 1257 stations from Open Charge Map")
    assert await count(db, "stations") == 1257
    await assert_consistent(db)
    assert await load_demo(settings) == "demo data not loaded: the database already holds 1257 stations"
    assert await count(db, "stations") == 1257

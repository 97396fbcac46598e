"""Open Charge Map parsing: the title-based mapping tables, both record forms, and the usage cost parser.

Expected values are written out here by hand (tables keyed by OCM id and by real usage cost strings taken
from the shared samples), not derived from the code under test.
"""

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voltway.ingest.ocm import RecordError, parse_record
from voltway.ingest.prices import parse_usage_cost
from voltway.ingest.reference import Reference, bundled_reference, connector_code, status_code
from voltway.ingest.rows import StationRow
from voltway.ingest.upsert import CONNECTOR_COLUMNS, INSERTED_COLUMNS, station_row
from voltway.stations.schemas import Price, StationIn
from tests.ingest.conftest import EXPECTED_CONNECTOR_BY_ID, EXPECTED_STATUS_BY_ID

# The shared samples beside the repository (../shared/data/ocm); the tests read the bundled copies.
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "ocm"
SHARED_FILES = {"compact": "poi-compact-sample.json", "verbose": "poi-verbose-sample.json",
                "verbose-2020": "poi-verbose-2020-sample.json"}  # fmt: skip

# Older titles found in the verbose samples (the wording changed over the years, the id did not).
EXPECTED_CONNECTOR_BY_OLD_TITLE = {
    "J1772": "type1",
    "SAE Combo (DC Fast Charge J1772)": "ccs1",
    "Tesla Supercharger": "nacs",
    "Tesla (Model S onwards)": "tesla",
}



@pytest.mark.skipif(not SHARED.is_dir(), reason="the shared OCM samples are not beside the repository")
def test_bundled_data_are_the_shared_samples(
    ocm_samples: dict[str, list[dict[str, Any]]], ocm_reference_json: dict[str, Any]
) -> None:
    for name, file in SHARED_FILES.items():
        assert ocm_samples[name] == json.loads((SHARED / file).read_text()), name
    assert ocm_reference_json == json.loads((SHARED / "referencedata.json").read_text())


def test_every_reference_connection_type_maps_to_its_code(ocm_reference_json: dict[str, Any]) -> None:
    titles = {item["ID"]: item["Title"] for item in ocm_reference_json["ConnectionTypes"]}
    assert set(titles) == set(EXPECTED_CONNECTOR_BY_ID)
    assert {i: connector_code(t).value for i, t in titles.items()} == EXPECTED_CONNECTOR_BY_ID


@pytest.mark.parametrize(("title", "code"), EXPECTED_CONNECTOR_BY_OLD_TITLE.items())
def test_old_titles_map_like_their_ids(title: str, code: str) -> None:
    assert connector_code(title).value == code


def test_every_reference_status_type_maps_to_its_status(ocm_reference_json: dict[str, Any]) -> None:
    titles = {item["ID"]: item["Title"] for item in ocm_reference_json["StatusTypes"]}
    assert {i: status_code(t).value for i, t in titles.items()} == EXPECTED_STATUS_BY_ID


# ------------------------------------------------------------------------------------------ records
def _poi(**overrides: Any) -> dict[str, Any]:
    """A compact-form POI like those of ocm-export."""
    poi: dict[str, Any] = {
        "ID": 4242,
        "OperatorID": 1,
        "UsageTypeID": 4,
        "UsageCost": "0,35€/kWh",
        "StatusTypeID": 50,
        "AddressInfo": {
            "Title": "Canillo Prat del Riu",
            "AddressLine1": "Carrer Prat del Riu",
            "AddressLine2": "Parking",
            "Town": "Canillo",
            "Postcode": "AD100",
            "CountryID": 10,
            "Latitude": 42.5659,
            "Longitude": 1.5989,
        },
        "Connections": [
            {"ConnectionTypeID": 25, "StatusTypeID": 100, "PowerKW": 22, "CurrentTypeID": 20, "Quantity": 2},
            {"ConnectionTypeID": 33, "PowerKW": 50, "CurrentTypeID": 30},
            {"ConnectionTypeID": 0},
        ],
    }
    poi.update(overrides)
    return poi


def station_fields(row: StationRow) -> dict[str, Any]:
    """A parsed row as the StationIn fields it stands for (the derived columns left out)."""
    fields = dict(zip(INSERTED_COLUMNS, row.values, strict=False))
    for derived in ("x", "y", "z", "max_power_kw"):
        del fields[derived]
    fields["price"] = orjson.loads(fields["price"]) if fields["price"] is not None else None
    fields["connectors"] = [dict(zip(CONNECTOR_COLUMNS[1:], c, strict=True)) for c in row.connectors]
    return fields


def test_compact_record_maps_every_field() -> None:
    row = parse_record(_poi(), bundled_reference())
    assert row.values[9:12] == pytest.approx((0.73621, 0.02055, 0.67644), abs=1e-5)  # unit vector of 42.5659N 1.5989E
    assert row.values[17] == 50.0  # max_power_kw
    assert station_fields(row) == {
        "source": "ocm",
        "external_id": "4242",
        "name": "Canillo Prat del Riu",
        "address": "Carrer Prat del Riu, Parking",
        "town": "Canillo",
        "postcode": "AD100",
        "country": "AD",
        "latitude": 42.5659,
        "longitude": 1.5989,
        "operator": None,  # OperatorID 1 is "(Unknown Operator)"
        "usage": "Public - Membership Required",
        "status": "available",
        "usage_cost": "0,35€/kWh",
        "price": {"currency": "EUR", "per_kwh": 0.35, "per_minute": None, "per_session": None, "free": False},
        "connectors": [
            {"type": "type2", "type_name": "Type 2 (Socket Only)", "power_kw": 22.0, "current": "AC",
             "quantity": 2, "status": "out_of_service"},
            {"type": "ccs2", "type_name": "CCS (Type 2)", "power_kw": 50.0, "current": "DC", "quantity": 1,
             "status": "available"},  # no status of its own: the station's
            {"type": "unknown", "type_name": "Unknown", "power_kw": None, "current": None, "quantity": 1,
             "status": "available"},
        ],
    }


def _compact(verbose: dict[str, Any]) -> dict[str, Any]:
    """The compact form of a verbose record, as OCM writes it: nested reference objects and nulls dropped."""
    nested = {"DataProvider", "OperatorInfo", "UsageType", "StatusType", "SubmissionStatus", "Country",
              "ConnectionType", "CurrentType", "Level"}  # fmt: skip

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if v is not None and k not in nested}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(copy.deepcopy(verbose))


def test_compact_and_verbose_forms_of_the_same_poi_give_the_same_station(
    ocm_samples: dict[str, list[dict[str, Any]]],
) -> None:
    ref = bundled_reference()
    compared = 0
    for record in ocm_samples["verbose-2020"]:
        titles = {(c.get("ConnectionType") or {}).get("Title") for c in record.get("Connections") or []}
        reference_titles = {ref.connection_types.get(c.get("ConnectionTypeID")) for c in record.get("Connections") or []}
        from_verbose = station_fields(parse_record(record, ref))
        from_compact = station_fields(parse_record(_compact(record), ref))
        if titles != reference_titles:  # an older title: same code, OCM's own (older) wording kept
            for conn in from_verbose["connectors"] + from_compact["connectors"]:
                conn.pop("type_name")
        if (record.get("OperatorInfo") or {}).get("Title") != ref.operators.get(record.get("OperatorID")):
            continue  # the operator was renamed since 2020
        assert from_compact == from_verbose, record["ID"]
        compared += 1
    assert compared > 900


def test_each_sample_row_is_the_row_of_its_validated_station(
    ocm_samples: dict[str, list[dict[str, Any]]],
) -> None:
    """The mapping shapes rows without StationIn: each row must be what validating its fields gives."""
    ref = bundled_reference()
    for record in (r for sample in ocm_samples.values() for r in sample):
        row = parse_record(record, ref)
        assert row == station_row(StationIn.model_validate(station_fields(row))), record["ID"]


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        ({"ID": "x" * 65}, "invalid", "external_id: String should have at most 64 characters"),
        ({"AddressInfo": {"Latitude": 1, "Longitude": 2, "Country": {"ISOCode": "1A"}}}, "invalid",
         "country: String should match pattern '^[A-Za-z]{2}$'"),
        ({"AddressInfo": {"Title": "x"}}, "missing_coordinates", "AddressInfo.Latitude is missing"),
        ({"AddressInfo": {"Latitude": 91, "Longitude": 0}}, "coordinates_out_of_range",
         "AddressInfo.Latitude 91.0 is outside [-90, 90]"),
        ({"AddressInfo": {"Latitude": 0, "Longitude": -180.5}}, "coordinates_out_of_range",
         "AddressInfo.Longitude -180.5 is outside [-180, 180]"),
        ({"AddressInfo": {"Latitude": "north", "Longitude": 0}}, "wrong_type",
         "AddressInfo.Latitude must be a number, not 'north'"),
        ({"AddressInfo": "Main Street"}, "wrong_type", "AddressInfo must be an object, not str"),
        ({"Connections": {"ID": 1}}, "wrong_type", "Connections must be a list, not dict"),
        ({"Connections": [{"PowerKW": "fast"}]}, "wrong_type", "Connections[0].PowerKW must be a number, not 'fast'"),
        ({"ID": None}, "missing_id", "the record has no ID"),
    ],
)
def test_unusable_records_are_rejected_with_the_reason(change: dict[str, Any], code: str, message: str) -> None:
    with pytest.raises(RecordError) as caught:
        parse_record(_poi(**change), bundled_reference())
    assert (caught.value.code, caught.value.message) == (code, message)


def test_a_record_that_is_not_an_object_is_rejected() -> None:
    with pytest.raises(RecordError, match="the record must be an object, not int"):
        parse_record(7, bundled_reference())


# Values of a compact connection's fields, plain and tricky: of the wrong type, not finite, and values equal to
# others but of another type (25 and 25.0, 1 and True, 0.0 and -0.0), which must not share a mapping.
EQUAL_VALUES = [0, 0.0, -0.0, False, 1, 1.0, True, 20, 20.0, 25, 25.0, 50, 50.0]
CONNECTION_VALUES = [*EQUAL_VALUES, None, 2, 33, 1036, 9999, 10, 30, 75, 100, 150, 200, 7.4, 2500.0, "25", "", [25],
                     float("nan")]  # fmt: skip
CONNECTION_KEYS = ["ConnectionTypeID", "PowerKW", "CurrentTypeID", "Quantity", "StatusTypeID", "Comments"]


def _mapped(connection: dict[str, Any], station_status: int | None, reference: Reference) -> object:
    record = _poi(Connections=[connection], StatusTypeID=station_status)
    try:
        row = parse_record(record, reference)
    except RecordError as exc:
        return exc.code, exc.message
    return repr(row.connectors), row.content_hash  # repr: -0.0 == 0.0


def _twins(connection: dict[str, Any]) -> list[dict[str, Any]]:
    """The connection, then copies with one value replaced by an equal value of another type or sign."""
    return [connection] + [
        {**connection, key: twin}
        for key, value in connection.items()
        for twin in EQUAL_VALUES
        if type(value) in (int, float, bool) and twin == value and repr(twin) != repr(value)
    ]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.dictionaries(st.sampled_from(CONNECTION_KEYS), st.sampled_from(CONNECTION_VALUES)),
            st.sampled_from([None, 0, 50, 75, 150, 200]),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_connections_mapped_once_map_as_they_do_each_time(connections: list[tuple[dict[str, Any], int | None]]) -> None:
    """Compact connections are mapped once per set of values (`ocm._connector`); a key must never stand for
    values that map otherwise."""
    shared = dataclasses.replace(bundled_reference(), connections={})
    connections.append(({"ConnectionTypeID": 25, "PowerKW": 22.0}, 50))
    for connection, station_status in connections * 2:
        for twin in _twins(connection):
            fresh = dataclasses.replace(bundled_reference(), connections={})
            assert _mapped(twin, station_status, shared) == _mapped(twin, station_status, fresh)
    assert shared.connections  # the second round hit what the first stored


# ------------------------------------------------------------------------------------------- prices
def _price(currency: str | None = None, *, kwh: float | None = None, minute: float | None = None,
           session: float | None = None, free: bool = False) -> Price:  # fmt: skip
    return Price(currency=currency, per_kwh=kwh, per_minute=minute, per_session=session, free=free)


# Real UsageCost strings of the shared samples, with the country of their POI.
USAGE_COSTS = [
    ("Free", "FR", _price(free=True)),
    ("free", "AD", _price(free=True)),
    ("Gratis para los clientes del hotel, el resto hablar con recepción", "AD", _price(free=True)),
    ("Free (but pay for parking)", "JP", _price(free=True)),
    ("Free for 2 hours", "CA", _price(free=True)),
    ("Not Free", "LT", None),
    ("Freen untill end 2013", "BE", None),
    ("0,35€/kWh ", "AD", _price("EUR", kwh=0.35)),
    ("0.20€ kWh AC, 0.35€ kWh DC", "AD", _price("EUR", kwh=0.2)),
    ("5,60€/hour", "AD", _price("EUR", minute=0.093333)),
    ("0,29 € per kWh + VAT", "BE", _price("EUR", kwh=0.29)),
    ("€0.24/kWh; Autres tarifs pour les voitures anciennes", "FR", _price("EUR", kwh=0.24)),
    ("5€ for a full charge", "FR", _price("EUR", session=5.0)),
    ("4€/10minutes                 Pre-paid card or cash", "NL", _price("EUR", minute=0.4)),
    ("Free for residents, otherwise 2€ per hour", "DE", _price("EUR", minute=0.033333)),
    ("AED 0.29/kWh", "AE", _price("AED", kwh=0.29)),
    ("29 fils per kWh", "AE", _price("AED", kwh=0.29)),
    ("0.00/kWh; other tariffs for older cars", "AE", _price("AED", kwh=0.0, free=True)),
    ("100 AED", "AE", None),
    ("NZD 0.35/kWh;other tariffs for older cars", "NZ", _price("NZD", kwh=0.35)),
    ("$0.25/kWh + $0.25/min, Type 2 free", "NZ", _price("NZD", kwh=0.25, minute=0.25)),
    (" DC: $0.20 / kWh + $0.275 / minute,  AC: $0.20 / kWh", "NZ", _price("NZD", kwh=0.2, minute=0.275)),
    ("$0.275 per min and $0.20 per kWh to use for DC charging and $0.20 per kWh only for AC", "NZ",
     _price("NZD", kwh=0.2, minute=0.275)),
    ("25 c/kWh + 25 c/min", "NZ", _price("NZD", kwh=0.25, minute=0.25)),
    ("60c/kWh", "NZ", _price("NZD", kwh=0.6)),
    ("20$ Full charge", "NZ", _price("NZD", session=20.0)),
    ("$0.40 kWh billing through chargnet app", "NZ", _price("NZD", kwh=0.4)),
    ("Münzautomat. 1 Euro Münzen, 3kW für 1 Euro / vending machine, 1 Euro coins, 3 kW for 1 Euro", "DE", None),
    ("kelbezoek (gedurende max. 1 uur)", "BE", None),
    ("4€ per unit", "BE", None),
    ("0,24", "BE", None),
    ("Pay by SMS", "BE", None),
]


@pytest.mark.parametrize(("text", "country", "expected"), USAGE_COSTS)
def test_usage_cost_of_real_records(text: str, country: str, expected: Price | None) -> None:
    assert parse_usage_cost(text, country) == expected


def test_usage_cost_without_a_currency_in_a_country_we_cannot_map() -> None:
    assert parse_usage_cost("0.30/kWh", "ZZ") == _price(None, kwh=0.3)
    assert parse_usage_cost("$0.30/kWh", None) == _price("USD", kwh=0.3)
    assert parse_usage_cost("2,50 kr/kWh", "DK") == _price("DKK", kwh=2.5)
    assert parse_usage_cost("1.234,50 € per session", "DE") == _price("EUR", session=1234.5)


def test_the_test_strings_are_real(ocm_samples: dict[str, list[dict[str, Any]]]) -> None:
    texts = {p.get("UsageCost") for records in ocm_samples.values() for p in records}
    assert {text for text, _, _ in USAGE_COSTS} <= texts

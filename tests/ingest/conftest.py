"""Fixtures of the ingest tests: station factories (raw items as clients send them)."""

import gzip
from collections.abc import Callable
from importlib import resources
from typing import Any

import orjson
import pytest

StationFactory = Callable[..., dict[str, Any]]


def _station_item(n: int = 1, **overrides: Any) -> dict[str, Any]:
    """A valid bulk item with connectors; `n` varies the key, name and position (about 1 km per step)."""
    item: dict[str, Any] = {
        "source": "acme",
        "external_id": f"acme-{n}",
        "name": f"Acme Charging Hub {n}",
        "address": f"{n} Harbour Street",
        "town": "Auckland",
        "postcode": "1010",
        "country": "NZ",
        "latitude": -36.8485 + n * 0.01,
        "longitude": 174.7633,
        "operator": "Acme Energy",
        "usage": "Public",
        "status": "available",
        "usage_cost": "0.45 NZD/kWh",
        "price": {"currency": "NZD", "per_kwh": 0.45, "per_minute": None, "per_session": None, "free": False},
        "connectors": [
            {"type": "ccs2", "type_name": "CCS (Type 2)", "power_kw": 150, "current": "DC", "quantity": 2,
             "status": "available"},
            {"type": "type2", "type_name": "Type 2 (Socket Only)", "power_kw": 22, "current": "AC", "quantity": 1,
             "status": "occupied"},
        ],
    }
    item.update(overrides)
    return item


@pytest.fixture
def station_item() -> StationFactory:
    return _station_item


# ------------------------------------------------------------------------------------- OCM samples
OCM_SAMPLE_SIZES = {"compact": 152, "verbose": 60, "verbose-2020": 1046}


def bundled_ocm_samples() -> dict[str, list[dict[str, Any]]]:
    """The shared OCM samples as bundled in the package (data/ocm-demo.json.gz holds them in this order)."""
    raw = resources.files("voltway").joinpath("data", "ocm-demo.json.gz").read_bytes()
    records = orjson.loads(gzip.decompress(raw))
    samples, start = {}, 0
    for name, size in OCM_SAMPLE_SIZES.items():
        samples[name] = records[start : start + size]
        start += size
    assert start == len(records)
    return samples


@pytest.fixture(scope="session")
def ocm_samples() -> dict[str, list[dict[str, Any]]]:
    return bundled_ocm_samples()


@pytest.fixture(scope="session")
def ocm_reference_json() -> dict[str, Any]:
    return orjson.loads(gzip.decompress(resources.files("voltway").joinpath("data", "ocm-referencedata.json.gz").read_bytes()))


# Every connection type of the reference data, by id, with the code the contract asks for.
EXPECTED_CONNECTOR_BY_ID = {
    0: "unknown", 1: "type1", 2: "chademo", 3: "three_pin", 4: "cee", 5: "other", 6: "other", 7: "other",
    8: "tesla", 9: "other", 10: "other", 11: "other", 13: "other", 14: "other", 15: "other", 16: "cee",
    17: "cee", 18: "cee", 21: "other", 22: "other", 23: "other", 24: "other", 25: "type2", 26: "other",
    27: "nacs", 28: "schuko", 29: "other", 30: "tesla", 31: "other", 32: "ccs1", 33: "ccs2", 34: "cee",
    35: "cee", 36: "other", 1036: "type2", 1037: "other", 1038: "gbt_ac", 1039: "gbt_ac", 1040: "gbt_dc",
    1041: "other", 1042: "other", 1043: "other",
}  # fmt: skip

# Every status type of the reference data, by id, with the contract's status.
EXPECTED_STATUS_BY_ID = {
    0: "unknown", 10: "available", 20: "occupied", 30: "out_of_service", 50: "available", 75: "available",
    100: "out_of_service", 150: "planned", 200: "removed", 210: "removed",
}  # fmt: skip

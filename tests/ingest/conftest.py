"""Fixtures of the ingest tests: station factories (raw items as clients send them)."""

from collections.abc import Callable
from typing import Any

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

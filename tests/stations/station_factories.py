"""Factories for station tests: request bodies and a geo dataset."""

from typing import Any


def make_station(**overrides: Any) -> dict[str, Any]:
    """A valid StationIn body; keyword arguments replace fields."""
    station: dict[str, Any] = {
        "name": "Berlin Hauptbahnhof P+R",
        "address": "Europaplatz 1",
        "town": "Berlin",
        "postcode": "10557",
        "country": "DE",
        "latitude": 52.5251,
        "longitude": 13.3694,
        "operator": "Ionity",
        "usage": "Public",
        "status": "available",
        "usage_cost": "0,59 EUR/kWh",
        "connectors": [
            {"type": "ccs2", "type_name": "CCS (Type 2)", "power_kw": 350, "current": "DC", "quantity": 4,
             "status": "available"},
            {"type": "type2", "type_name": "Type 2 (Socket Only)", "power_kw": 22, "current": "AC", "quantity": 2,
             "status": "available"},
        ],
    }
    station.update(overrides)
    return station

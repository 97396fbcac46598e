"""Factories for station tests: request bodies and a geo dataset."""

import math
import random
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


CONNECTOR_CODES = ("ccs2", "type2", "chademo", "nacs", "type1")
OPERATORS = ("Ionity", "Allego", "Tesla", "EnBW", "Énergie Ström", None)  # one non-ASCII: Unicode case folding
STATUSES = ("available", "occupied", "out_of_service", "planned", "removed", "unknown")
# Cluster centres: a city, the antimeridian, both poles' surroundings, the date line in the south.
CLUSTERS = ((52.52, 13.4, 20.0), (0.0, 180.0, 50.0), (-16.5, -179.9, 30.0), (89.5, 40.0, 60.0),
            (-89.7, -120.0, 40.0), (35.68, 139.77, 5.0))


def geo_dataset(count: int = 3000, seed: int = 20261128) -> list[dict[str, Any]]:
    """Stations for the geo tests: uniform on the sphere, in clusters (including across the antimeridian and
    around the poles), exact duplicates of positions, points on the poles and on both signs of 180°.

    Each dict has the station's columns (id, latitude, longitude, status, operator, country, name, town,
    max_power_kw, rating_average, duplicate_of_id) and `connectors` [(type, power_kw)].
    """
    rng = random.Random(seed)
    stations: list[dict[str, Any]] = []
    specials = [(90.0, 0.0), (-90.0, 77.0), (10.0, 180.0), (-10.0, -180.0), (0.0, 0.0), (45.0, 179.999999),
                (45.0, -179.999999)]
    for i in range(count):
        if i < len(specials):  # visible in every search without filters
            lat, lon = specials[i]
        elif i % 10 == 0 and stations:
            twin = stations[rng.randrange(len(stations))]
            lat, lon = twin["latitude"], twin["longitude"]  # an exact duplicate position
        elif rng.random() < 0.4:
            z = rng.uniform(-1, 1)
            lat, lon = math.degrees(math.asin(z)), rng.uniform(-180, 180)
        else:
            clat, clon, sigma_km = rng.choice(CLUSTERS)
            lat = clat + rng.gauss(0, sigma_km) / 111.2
            spread = sigma_km / (111.2 * max(math.cos(math.radians(clat)), 0.02))
            lon = (clon + rng.gauss(0, spread) + 180.0) % 360.0 - 180.0
            if abs(lat) > 90:  # over the pole: the point on the other side
                lat, lon = math.copysign(180.0, lat) - lat, lon - math.copysign(180.0, lon)
        connectors = [(rng.choice(CONNECTOR_CODES), rng.choice((None, 3.7, 11.0, 22.0, 50.0, 150.0, 350.0)))
                      for _ in range(rng.choice((0, 1, 1, 2, 3)))]
        powers = [p for _t, p in connectors if p is not None]
        operator = rng.choice(OPERATORS)
        special = i < len(specials)
        stations.append({
            "id": i + 1,
            "latitude": lat,
            "longitude": lon,
            "status": "available" if special else rng.choices(STATUSES, weights=(10, 3, 1, 1, 2, 3))[0],
            "operator": operator,
            "country": rng.choice(("DE", "FR", "NZ", "US")),
            "name": f"{operator or 'Independent'} charger {i}",
            "town": rng.choice(("Berlin", "Wellington", "Suva", None)),
            "max_power_kw": max(powers) if powers else None,
            "rating_average": rng.choice((None, 1.0, 2.5, 3.0, 4.5, 5.0)),
            "duplicate_of_id": rng.randrange(1, i + 1) if i > 10 and rng.random() < 0.03 else None,
            "connectors": connectors,
        })
    return stations

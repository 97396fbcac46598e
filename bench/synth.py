"""Synthetic charging stations with a realistic spread, and a fast loader for benchmarks.

    python bench/synth.py voltway-bench.db [-n 300000] [--seed 7]           # a SQLite file (migrated here)
    python bench/synth.py postgresql+asyncpg://postgres@127.0.0.1/bench     # or a PostgreSQL database

As a library: `generate(n, seed)` yields dicts in the StationIn shape; `load(url, stations)` writes them
with direct bulk inserts (bypassing the API, so only for benchmarks).

The spread: ~65% of stations in ~120 cities (Gaussian around the centre, a few km wide, city sizes
weighted by a rough share of the world's public chargers), ~25% in the region around a city (tens to
hundreds of km), ~10% scattered over the continents' land boxes. Connectors follow the region: Type 2 /
CCS2 in Europe, J1772 / CCS1 / NACS in North America, GB/T in China, and so on.
"""

import argparse
import asyncio
import math
import random
import sqlite3
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from voltway.core.db import sqlite_path
from voltway.migrations import upgrade
from voltway.stations.service import derived_columns

KM_PER_DEG = 111.195

# name, country, lat, lon, weight (share of stations), spread in km (1 sigma)
CITIES: list[tuple[str, str, float, float, float, float]] = [
    ("London", "GB", 51.5072, -0.1276, 60, 10), ("Paris", "FR", 48.8566, 2.3522, 55, 8),
    ("Berlin", "DE", 52.52, 13.405, 45, 9), ("Amsterdam", "NL", 52.3676, 4.9041, 50, 7),
    ("Rotterdam", "NL", 51.9244, 4.4777, 25, 6), ("Utrecht", "NL", 52.0907, 5.1214, 20, 5),
    ("The Hague", "NL", 52.0705, 4.3007, 20, 5), ("Brussels", "BE", 50.8503, 4.3517, 25, 7),
    ("Antwerp", "BE", 51.2194, 4.4025, 15, 6), ("Munich", "DE", 48.1351, 11.582, 35, 8),
    ("Hamburg", "DE", 53.5511, 9.9937, 30, 8), ("Frankfurt", "DE", 50.1109, 8.6821, 25, 7),
    ("Cologne", "DE", 50.9375, 6.9603, 20, 7), ("Stuttgart", "DE", 48.7758, 9.1829, 20, 7),
    ("Düsseldorf", "DE", 51.2277, 6.7735, 15, 6), ("Vienna", "AT", 48.2082, 16.3738, 25, 7),
    ("Zurich", "CH", 47.3769, 8.5417, 20, 6), ("Geneva", "CH", 46.2044, 6.1432, 10, 5),
    ("Milan", "IT", 45.4642, 9.19, 25, 8), ("Rome", "IT", 41.9028, 12.4964, 20, 9),
    ("Madrid", "ES", 40.4168, -3.7038, 25, 9), ("Barcelona", "ES", 41.3874, 2.1686, 25, 7),
    ("Lisbon", "PT", 38.7223, -9.1393, 15, 7), ("Porto", "PT", 41.1579, -8.6291, 8, 6),
    ("Oslo", "NO", 59.9139, 10.7522, 35, 8), ("Bergen", "NO", 60.3913, 5.3221, 12, 5),
    ("Stockholm", "SE", 59.3293, 18.0686, 25, 8), ("Gothenburg", "SE", 57.7089, 11.9746, 10, 6),
    ("Copenhagen", "DK", 55.6761, 12.5683, 20, 7), ("Helsinki", "FI", 60.1699, 24.9384, 15, 7),
    ("Warsaw", "PL", 52.2297, 21.0122, 12, 8), ("Prague", "CZ", 50.0755, 14.4378, 10, 7),
    ("Budapest", "HU", 47.4979, 19.0402, 8, 7), ("Dublin", "IE", 53.3498, -6.2603, 10, 7),
    ("Manchester", "GB", 53.4808, -2.2426, 15, 8), ("Birmingham", "GB", 52.4862, -1.8904, 12, 8),
    ("Edinburgh", "GB", 55.9533, -3.1883, 8, 6), ("Lyon", "FR", 45.764, 4.8357, 12, 7),
    ("Marseille", "FR", 43.2965, 5.3698, 10, 7), ("Moscow", "RU", 55.7558, 37.6173, 8, 12),
    ("Istanbul", "TR", 41.0082, 28.9784, 8, 12), ("Athens", "GR", 37.9838, 23.7275, 5, 8),
    ("New York", "US", 40.7128, -74.006, 40, 12), ("Los Angeles", "US", 34.0522, -118.2437, 55, 18),
    ("San Francisco", "US", 37.7749, -122.4194, 40, 12), ("San Jose", "US", 37.3382, -121.8863, 25, 10),
    ("Seattle", "US", 47.6062, -122.3321, 20, 10), ("Portland", "US", 45.5152, -122.6784, 12, 8),
    ("Chicago", "US", 41.8781, -87.6298, 20, 14), ("Boston", "US", 42.3601, -71.0589, 15, 10),
    ("Washington", "US", 38.9072, -77.0369, 15, 12), ("Atlanta", "US", 33.749, -84.388, 12, 14),
    ("Miami", "US", 25.7617, -80.1918, 10, 12), ("Dallas", "US", 32.7767, -96.797, 12, 15),
    ("Houston", "US", 29.7604, -95.3698, 10, 15), ("Denver", "US", 39.7392, -104.9903, 12, 10),
    ("Phoenix", "US", 33.4484, -112.074, 10, 14), ("Austin", "US", 30.2672, -97.7431, 10, 10),
    ("San Diego", "US", 32.7157, -117.1611, 15, 10), ("Toronto", "CA", 43.6532, -79.3832, 15, 12),
    ("Vancouver", "CA", 49.2827, -123.1207, 15, 9), ("Montreal", "CA", 45.5017, -73.5673, 15, 10),
    ("Mexico City", "MX", 19.4326, -99.1332, 6, 12), ("São Paulo", "BR", -23.5505, -46.6333, 6, 12),
    ("Santiago", "CL", -33.4489, -70.6693, 3, 9), ("Buenos Aires", "AR", -34.6037, -58.3816, 3, 10),
    ("Beijing", "CN", 39.9042, 116.4074, 45, 15), ("Shanghai", "CN", 31.2304, 121.4737, 50, 15),
    ("Shenzhen", "CN", 22.5431, 114.0579, 40, 12), ("Guangzhou", "CN", 23.1291, 113.2644, 35, 13),
    ("Hangzhou", "CN", 30.2741, 120.1551, 20, 10), ("Chengdu", "CN", 30.5728, 104.0668, 20, 12),
    ("Wuhan", "CN", 30.5928, 114.3055, 15, 12), ("Xi'an", "CN", 34.3416, 108.9398, 12, 10),
    ("Tokyo", "JP", 35.6762, 139.6503, 25, 15), ("Osaka", "JP", 34.6937, 135.5023, 12, 10),
    ("Seoul", "KR", 37.5665, 126.978, 30, 12), ("Busan", "KR", 35.1796, 129.0756, 10, 8),
    ("Taipei", "TW", 25.033, 121.5654, 10, 8), ("Singapore", "SG", 1.3521, 103.8198, 8, 8),
    ("Bangkok", "TH", 13.7563, 100.5018, 6, 12), ("Delhi", "IN", 28.7041, 77.1025, 8, 14),
    ("Mumbai", "IN", 19.076, 72.8777, 6, 10), ("Bangalore", "IN", 12.9716, 77.5946, 6, 10),
    ("Dubai", "AE", 25.2048, 55.2708, 5, 10), ("Tel Aviv", "IL", 32.0853, 34.7818, 4, 7),
    ("Johannesburg", "ZA", -26.2041, 28.0473, 3, 10), ("Cape Town", "ZA", -33.9249, 18.4241, 2, 8),
    ("Sydney", "AU", -33.8688, 151.2093, 10, 14), ("Melbourne", "AU", -37.8136, 144.9631, 10, 14),
    ("Brisbane", "AU", -27.4698, 153.0251, 5, 10), ("Perth", "AU", -31.9505, 115.8605, 4, 10),
    ("Auckland", "NZ", -36.8485, 174.7633, 5, 9), ("Wellington", "NZ", -41.2865, 174.7762, 2, 5),
    ("Honolulu", "US", 21.3069, -157.8583, 2, 6), ("Anchorage", "US", 61.2181, -149.9003, 1, 6),
    ("Reykjavik", "IS", 64.1466, -21.9426, 2, 5), ("Tromsø", "NO", 69.6492, 18.9553, 1, 4),
    ("Suva", "FJ", -18.1248, 178.4501, 0.3, 4),
]

# Land boxes for scattered countryside stations: (min_lat, max_lat, min_lon, max_lon, country, weight).
LAND: list[tuple[float, float, float, float, str, float]] = [
    (43.0, 55.0, -1.0, 16.0, "DE", 30), (56.0, 69.0, 6.0, 30.0, "SE", 8), (36.5, 43.5, -9.0, 3.0, "ES", 8),
    (33.0, 48.0, -120.0, -75.0, "US", 30), (45.0, 55.0, -125.0, -65.0, "CA", 6), (23.0, 40.0, 103.0, 121.0, "CN", 20),
    (-38.0, -27.0, 115.0, 153.0, "AU", 3), (-47.0, -35.0, 166.0, 178.0, "NZ", 1), (33.0, 43.0, 130.0, 141.0, "JP", 4),
    (55.0, 65.0, -170.0, -150.0, "US", 0.5), (64.0, 71.0, 175.0, 180.0, "RU", 0.2),
    (64.0, 71.0, -180.0, -172.0, "RU", 0.2), (-20.0, -15.0, 177.0, 180.0, "FJ", 0.1),
]

OPERATORS = {
    "EU": ["Ionity", "Allego", "Fastned", "EnBW", "Shell Recharge", "Tesla", "Vattenfall InCharge", "Total Energies",
           "Pod Point", "BP Pulse", "Mer", "Circle K", "Electra", "Be Charge", "Endesa X Way"],
    "NA": ["ChargePoint", "Electrify America", "EVgo", "Tesla", "Blink", "Flo", "Shell Recharge", "Volta"],
    "CN": ["State Grid", "TELD", "Star Charge", "China Southern Power Grid", "Tesla", "NIO Power"],
    "OTHER": ["Evie Networks", "Chargefox", "Tesla", "ChargePoint", "Shell Recharge", "GridCars"],
}
REGION = {"US": "NA", "CA": "NA", "MX": "NA", "CN": "CN"}
EUROPE = {"GB", "FR", "DE", "NL", "BE", "AT", "CH", "IT", "ES", "PT", "NO", "SE", "DK", "FI", "PL", "CZ", "HU",
          "IE", "RU", "TR", "GR", "IS"}
# code, OCM title, current, power choices (kW) with weights
PLUGS: dict[str, list[tuple[str, str, str, list[float], list[float]]]] = {
    "EU": [
        ("type2", "Type 2 (Socket Only)", "AC", [3.7, 7.4, 11, 22], [1, 3, 5, 6]),
        ("ccs2", "CCS (Type 2)", "DC", [50, 100, 150, 300, 350], [6, 2, 3, 1, 2]),
        ("chademo", "CHAdeMO", "DC", [50], [1]),
        ("schuko", "CEE 7/4 - Schuko - Type F", "AC", [2.3, 3.7], [1, 1]),
    ],
    "NA": [
        ("type1", "Type 1 (J1772)", "AC", [3.8, 6.6, 7.2, 9.6, 19.2], [1, 4, 4, 2, 1]),
        ("ccs1", "CCS (Type 1)", "DC", [50, 62.5, 150, 350], [4, 1, 3, 2]),
        ("nacs", "NACS / Tesla Supercharger", "DC", [72, 150, 250], [1, 2, 4]),
        ("chademo", "CHAdeMO", "DC", [50], [1]),
    ],
    "CN": [
        ("gbt_ac", "GB-T AC - GB/T 20234.2 (Socket)", "AC", [7, 11, 21], [5, 1, 1]),
        ("gbt_dc", "GB-T DC - GB/T 20234.3", "DC", [30, 60, 120, 180, 360], [1, 4, 4, 2, 1]),
    ],
    "OTHER": [
        ("type2", "Type 2 (Socket Only)", "AC", [7, 11, 22], [3, 2, 2]),
        ("ccs2", "CCS (Type 2)", "DC", [25, 50, 75, 150, 350], [1, 4, 1, 2, 1]),
        ("chademo", "CHAdeMO", "DC", [50], [1]),
    ],
}
PLUG_WEIGHTS = {"EU": [8, 4, 1, 1], "NA": [8, 3, 2, 1], "CN": [5, 4], "OTHER": [6, 4, 1]}
STATUSES = ["available", "occupied", "out_of_service", "planned", "removed", "unknown"]
STATUS_WEIGHTS = [55, 12, 4, 3, 2, 24]
STREETS = ["Main Street", "Station Road", "Market Square", "Park Avenue", "Ring Road", "High Street", "Harbour Way"]


def _region(country: str) -> str:
    if country in EUROPE:
        return "EU"
    return REGION.get(country, "OTHER")


def _offset(rng: random.Random, lat: float, lon: float, sigma_km: float) -> tuple[float, float]:
    """A point with Gaussian offsets of `sigma_km` (kept within valid coordinates, wrapped at the antimeridian)."""
    dlat = rng.gauss(0, sigma_km) / KM_PER_DEG
    dlon = rng.gauss(0, sigma_km) / (KM_PER_DEG * max(math.cos(math.radians(lat)), 0.01))
    new_lon = (lon + dlon + 180.0) % 360.0 - 180.0
    return max(-89.9, min(89.9, lat + dlat)), new_lon


def _connectors(rng: random.Random, region: str) -> list[dict[str, Any]]:
    plugs = PLUGS[region]
    chosen = rng.choices(plugs, weights=PLUG_WEIGHTS[region], k=rng.choices([1, 2, 3, 4], weights=[4, 4, 2, 1])[0])
    connectors = []
    for code, title, current, powers, weights in chosen:
        power = rng.choices(powers, weights=weights)[0]
        connectors.append({
            "type": code, "type_name": title, "power_kw": float(power), "current": current,
            "quantity": rng.choices([1, 2, 4, 6], weights=[5, 6, 2, 1])[0],
            "status": rng.choices(STATUSES, weights=STATUS_WEIGHTS)[0],
        })
    return connectors


def generate(n: int = 300_000, seed: int = 7) -> Iterator[dict[str, Any]]:
    """`n` stations as StationIn-shaped dicts, deterministic for a seed."""
    rng = random.Random(seed)
    city_weights = [c[4] for c in CITIES]
    land_weights = [box[5] for box in LAND]
    for i in range(n):
        kind = rng.random()
        if kind < 0.90:
            name, country, clat, clon, _w, sigma = rng.choices(CITIES, weights=city_weights)[0]
            spread = sigma if kind < 0.65 else rng.uniform(40, 150)
            lat, lon = _offset(rng, clat, clon, spread)
            town = name if kind < 0.65 else f"{name} region"
        else:
            min_lat, max_lat, min_lon, max_lon, country, _w = rng.choices(LAND, weights=land_weights)[0]
            lat, lon = rng.uniform(min_lat, max_lat), rng.uniform(min_lon, max_lon)
            town = None
        region = _region(country)
        operator = rng.choice(OPERATORS[region])
        yield {
            "source": "synth",
            "external_id": str(i),
            "name": f"{operator} {town or 'Highway'} #{i}",
            "address": f"{rng.randint(1, 400)} {rng.choice(STREETS)}",
            "town": town,
            "postcode": f"{rng.randint(1000, 99999)}",
            "country": country,
            "latitude": round(lat, 6),
            "longitude": round(lon, 6),
            "operator": operator,
            "usage": rng.choice(["Public", "Public", "Public - Membership Required", "Private - For Staff"]),
            "status": rng.choices(STATUSES, weights=STATUS_WEIGHTS)[0],
            "usage_cost": rng.choice([None, "Free", "0.39 EUR/kWh", "$0.45 per kWh", "0,59 €/kWh"]),
            "connectors": _connectors(rng, region),
        }


# -------------------------------------------------------------------------------------------- loader
STATION_FIELDS = ("source", "external_id", "name", "address", "town", "postcode", "country", "latitude",
                  "longitude", "operator", "usage", "status", "usage_cost")
DERIVED = ("x", "y", "z", "max_power_kw")
CONNECTOR_FIELDS = ("type", "type_name", "power_kw", "current", "quantity", "status")


def _station_rows(stations: Iterable[dict[str, Any]], first_id: int) -> Iterator[tuple[tuple[Any, ...], list[tuple[Any, ...]]]]:
    for offset, s in enumerate(stations):
        derived = derived_columns(s["latitude"], s["longitude"], s["connectors"])
        station_id = first_id + offset
        row = (station_id, *(s[f] for f in STATION_FIELDS), *(derived[f] for f in DERIVED), 0)
        yield row, [(station_id, *(c[f] for f in CONNECTOR_FIELDS)) for c in s["connectors"]]


def _load_sqlite(path: str, stations: Iterable[dict[str, Any]], batch: int = 20_000) -> int:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    first_id = (conn.execute("SELECT COALESCE(MAX(id), 0) FROM stations").fetchone()[0]) + 1
    columns = ("id", *STATION_FIELDS, *DERIVED, "rating_count", "created_at", "updated_at")
    station_sql = f"INSERT INTO stations ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    connector_sql = f"INSERT INTO connectors (station_id, {', '.join(CONNECTOR_FIELDS)}) VALUES (?, ?, ?, ?, ?, ?, ?)"
    count = 0
    station_batch: list[tuple[Any, ...]] = []
    connector_batch: list[tuple[Any, ...]] = []

    def flush() -> None:
        conn.executemany(station_sql, station_batch)
        conn.executemany(connector_sql, connector_batch)
        station_batch.clear()
        connector_batch.clear()

    with conn:
        for row, connectors in _station_rows(stations, first_id):
            station_batch.append((*row, now, now))
            connector_batch.extend(connectors)
            count += 1
            if len(station_batch) >= batch:
                flush()
        flush()
    conn.execute("ANALYZE")
    conn.close()
    return count


async def _load_postgres(url: str, stations: Iterable[dict[str, Any]]) -> int:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        first_id = await conn.fetchval("SELECT COALESCE(MAX(id), 0) + 1 FROM stations")
        now = datetime.now(UTC)
        rows, connectors = [], []
        for row, station_connectors in _station_rows(stations, first_id):
            rows.append((*row, now, now))
            connectors.extend(station_connectors)
        async with conn.transaction():
            await conn.copy_records_to_table(
                "stations", records=rows, columns=["id", *STATION_FIELDS, *DERIVED, "rating_count", "created_at",
                                                   "updated_at"])
            await conn.copy_records_to_table("connectors", records=connectors,
                                             columns=["station_id", *CONNECTOR_FIELDS])
            await conn.execute("SELECT setval(pg_get_serial_sequence('stations', 'id'), (SELECT MAX(id) FROM stations))")
        await conn.execute("ANALYZE stations; ANALYZE connectors")
        return len(rows)
    finally:
        await conn.close()


def load(url: str, stations: Iterable[dict[str, Any]]) -> int:
    """Migrate the database at `url` and bulk-insert `stations`; returns how many were written."""
    upgrade(url)
    if url.startswith("sqlite"):
        return _load_sqlite(sqlite_path(url), stations)
    return asyncio.run(_load_postgres(url, stations))


def database_url(target: str) -> str:
    """A SQLAlchemy URL from a file path or a URL."""
    return target if "://" in target else f"sqlite+aiosqlite:///{Path(target).resolve()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", help="a SQLite file path or a database URL")
    parser.add_argument("-n", type=int, default=300_000, help="number of stations (default 300,000)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    started = time.perf_counter()
    count = load(database_url(args.target), generate(args.n, args.seed))
    print(f"loaded {count:,} stations into {args.target} in {time.perf_counter() - started:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()

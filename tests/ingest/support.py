"""Import tests' helpers: synthetic Open Charge Map records, a SQLite file's schema."""

import sqlite3
from typing import Any

from voltway.core.db import sqlite_path


def synthetic_pois(n: int) -> list[dict[str, Any]]:
    """n compact POIs on a grid over New Zealand, two connectors each."""
    return [
        {
            "ID": 500_000 + i,
            "StatusTypeID": 50,
            "AddressInfo": {"Title": f"Synthetic {i}", "CountryID": 168, "Latitude": -46 + (i % 400) * 0.02,
                            "Longitude": 167 + (i // 400) * 0.02},  # fmt: skip
            "Connections": [
                {"ConnectionTypeID": 33, "PowerKW": 50, "CurrentTypeID": 30},
                {"ConnectionTypeID": 25, "PowerKW": 22, "CurrentTypeID": 20, "Quantity": 2},
            ],
        }
        for i in range(n)
    ]


def schema(url: str) -> dict[str, str]:
    """Name -> SQL of every index and trigger (read by a connection of its own, as another process would)."""
    with sqlite3.connect(sqlite_path(url)) as conn:
        rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE type IN ('index', 'trigger')").fetchall()
    return {name: sql for name, sql in rows}

"""Station recommendations: the nearby stations ranked for one driver (or for anyone).

Candidates are the `CANDIDATES` stations nearest to the point (the stations geo search, `nearest_stations`;
removed stations are left out). Each gets a score in [0, 1], a weighted sum of components in [0, 1]:

| component     | weight | value                                                                            |
|---------------|--------|----------------------------------------------------------------------------------|
| distance      | 0.28   | 1 / (1 + km / 5): 1 at the spot, 0.5 at 5 km, 0.2 at 20 km                        |
| compatibility | 0.22   | 1 if a connector fits the driver's car (`car_connectors`), else 0; 1 when anonymous |
| power         | 0.13   | min(kW / 150, 1) of the best (compatible) connector; 0 when unknown                |
| reliability   | 0.12   | the check-ins' reliability score (`reviews.service.reliability_of`); unknown 0.5  |
| rating        | 0.08   | (r - 1) / 4 of the Bayesian average r = (sum + 3.5 x 2) / (count + 2)             |
| availability  | 0.08   | available 1, unknown 0.5, occupied 0.2, out of service / planned 0               |
| price         | 0.05   | free 1, per kWh p: max(0, 1 - p / 0.80), unknown 0.5                              |
| favorite      | 0.02   | 1 if the driver saved the station                                               |
| history       | 0.02   | min(sessions of the driver there, 5) / 5                                         |

Anonymous callers get the same ranking without the personal parts (compatibility counts as 1, favorite and
history as 0). Ties go to the nearer station. Every result lists its reasons, e.g.
"compatible ccs2, 150 kW, 4.6★, 92% reliable, 1.2 km". The reliability of all candidates is one statement.
"""

from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from voltway.accounts.models import User
from voltway.core.db import Database
from voltway.reviews.service import reliability_of
from voltway.stations.search import StationFilters, nearest_stations

CANDIDATES = 50
WEIGHTS = {
    "distance": 0.28,
    "compatibility": 0.22,
    "power": 0.13,
    "reliability": 0.12,
    "rating": 0.08,
    "availability": 0.08,
    "price": 0.05,
    "favorite": 0.02,
    "history": 0.02,
}
AVAILABILITY = {"available": 1.0, "unknown": 0.5, "occupied": 0.2}
UNKNOWN_RELIABILITY = 0.5
FULL_POWER_KW = 150.0
EXPENSIVE_PER_KWH = 0.80
PRIOR_RATING, PRIOR_WEIGHT = 3.5, 2


def _availability(station: dict[str, Any], connectors: list[dict[str, Any]]) -> tuple[float, str]:
    statuses = {c["status"] for c in connectors} | {station["status"]}
    for status in ("available", "unknown", "occupied"):
        if status in statuses:
            return AVAILABILITY[status], status
    return 0.0, station["status"]


def _price(price: dict[str, Any] | None) -> tuple[float, str | None]:
    if not price:
        return 0.5, None
    if price.get("free"):
        return 1.0, "free"
    per_kwh = price.get("per_kwh")
    if per_kwh is None:
        return 0.5, None
    return max(0.0, 1 - per_kwh / EXPENSIVE_PER_KWH), f"{per_kwh:g} {price.get('currency') or ''}/kWh".replace(
        " /", "/"
    )


def score_station(
    station: dict[str, Any], *, car: list[str] | None, reliability: float | None, favorite: bool, visits: int
) -> tuple[float, list[str]]:
    """The score and the reasons of one candidate (see the module docstring)."""
    reasons: list[str] = []
    parts: dict[str, float] = {}
    connectors = station["connectors"]
    if car is None:
        fitting, parts["compatibility"] = connectors, 1.0
    else:
        fitting = [c for c in connectors if c["type"] in car]
        parts["compatibility"] = 1.0 if fitting else 0.0
        types = sorted({c["type"] for c in fitting})
        reasons.append(f"compatible {'/'.join(types)}" if types else "no compatible connector")
    power = max((c["power_kw"] for c in fitting if c["power_kw"] is not None), default=None)
    parts["power"] = min(power / FULL_POWER_KW, 1.0) if power else 0.0
    if power:
        reasons.append(f"{power:g} kW")
    rating = station["rating"]
    count, average = rating["count"] or 0, rating["average"]
    bayes = ((average or 0) * count + PRIOR_RATING * PRIOR_WEIGHT) / (count + PRIOR_WEIGHT)
    parts["rating"] = (bayes - 1) / 4
    if average is not None and count:
        reasons.append(f"{average:.1f}★")
    parts["reliability"] = UNKNOWN_RELIABILITY if reliability is None else reliability
    if reliability is not None:
        reasons.append(f"{reliability:.0%} reliable")
    km = station["distance_km"]
    parts["distance"] = 1 / (1 + km / 5)
    reasons.append(f"{km:.1f} km")
    parts["availability"], status = _availability(station, connectors)
    reasons.append(status.replace("_", " "))
    parts["price"], price_text = _price(station["price"])
    if price_text:
        reasons.append(price_text)
    parts["favorite"] = 1.0 if favorite else 0.0
    if favorite:
        reasons.append("favorite")
    parts["history"] = min(visits, 5) / 5
    if visits:
        reasons.append(f"charged here {visits}×")
    return round(sum(WEIGHTS[k] * v for k, v in parts.items()), 4), reasons


async def _personal(
    session: AsyncSession, db: Database, user: User, ids: list[int]
) -> tuple[set[int], dict[int, int]]:
    """The driver's favorites among `ids` and their number of sessions at each (counted in SQL)."""
    if not ids:
        return set(), {}
    among, params = db.one_of("station_id", ids)
    params["user_id"] = user.id
    favorites = await session.execute(
        text(f"SELECT station_id FROM favorites WHERE user_id = :user_id AND {among}"), params
    )
    visits = await session.execute(
        text(
            f"SELECT station_id, COUNT(*) FROM charging_sessions WHERE user_id = :user_id AND {among} "
            "GROUP BY station_id"
        ),
        params,
    )
    return {row[0] for row in favorites}, {row[0]: int(row[1]) for row in visits}


def _with_connector_list(station: dict[str, Any]) -> dict[str, Any]:
    """The search answers connectors as stored JSON text (an orjson Fragment); scoring needs them as dicts."""
    connectors = station["connectors"]
    if isinstance(connectors, orjson.Fragment):
        station = {**station, "connectors": orjson.loads(orjson.dumps(connectors))}
    return station


async def recommend(
    session: AsyncSession, db: Database, *, lat: float, lon: float, limit: int, user: User | None
) -> dict[str, Any]:
    found = await nearest_stations(db, lat=lat, lon=lon, k=CANDIDATES, filters=StationFilters())
    candidates = [_with_connector_list(s) for s in found["items"]]
    ids = [s["id"] for s in candidates]
    reliability = await reliability_of(db, ids)
    favorites, visits = await _personal(session, db, user, ids) if user is not None else (set(), {})
    car = list(user.car_connectors or []) if user is not None else None
    scored = []
    for station in candidates:
        known = reliability.get(station["id"])
        score, reasons = score_station(
            station,
            car=car,
            reliability=known.score if known else None,
            favorite=station["id"] in favorites,
            visits=visits.get(station["id"], 0),
        )
        scored.append({"station": station, "score": score, "reasons": reasons, "summary": ", ".join(reasons)})
    scored.sort(key=lambda item: (-item["score"], item["station"]["distance_km"], item["station"]["id"]))
    return {"personalized": user is not None, "items": scored[:limit]}

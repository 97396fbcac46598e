"""Station search: radius, bounding box and k-nearest, every filter combinable, keyset pagination.

One SQL builder serves both databases; only the bounding-box predicate differs. Distances are exact: each
station stores its unit vector (x, y, z) and the squared chord to the query point, plain arithmetic in SQL,
orders stations exactly as their great-circle distance does. An index narrows the candidates first: the
R*Tree `station_rtree` on SQLite, the (latitude, longitude) btree on PostgreSQL.

Distance-sorted searches expand a circle around the query point (from 1 km, growing by the density seen,
up to the requested radius or the whole sphere) and stop as soon as one page (plus one row, to know if there
is a next page) is inside it: everything outside the circle is farther than everything inside, so that page
is exact, and a dense city costs a hundred candidates instead of every station within the radius. The first
circle of a search near an earlier one (same 0.1° cell, same filters) is sized by the distance its page
needed (`_RadiusHints`): one statement instead of two, most of the time; a circle still too small grows.

On SQLite a page in distance order sorts only (id, sort key) pairs, in a subquery, and joins the rows of just
the page's ids to them: a sorter carrying whole rows (each with its connectors' JSON) made a dense-city radius
search about 2.5 times dearer. Other orders mostly come from an index, without a sorter, and PostgreSQL reads
each candidate's row with its index entry anyway: there the rows are selected and sorted directly.
"""

import base64
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from voltway.core.db import SQLITE_UNICODE_LOWER, Database
from voltway.core.errors import InvalidInput
from voltway.core.geo import (
    HALF_CIRCUMFERENCE_KM,
    SAME_POINT_KM,
    SPHERE_AREA_KM2,
    GeoBox,
    chord2_to_km,
    chord2_within,
    circle_box,
    split_longitudes,
    unit_vector,
)
from voltway.stations.service import STATION_COLUMNS, stored_station_dicts

FIRST_RADIUS_KM = 1.0
MIN_GROWTH, MAX_GROWTH = 1.5, 4.0
RADIUS_SLACK = 1.5
HINT_CELL_DEG = 0.1
HINT_SLACK = 1.15  # radius: ~32% more area than the page needed last time
MIN_HINT_KM = 0.05
# A statement narrowed to more than this may read thousands of rows (hundreds of milliseconds over a continent
# with a filter few stations pass): it runs off the event loop (`Database.fetch(slow=True)`), a ~0.1 ms hop.
SLOW_AREA_KM2 = 10_000.0


class SortKey(StrEnum):
    distance = "distance"
    id = "id"
    power = "power"
    rating = "rating"


# Sort keys other than id and distance, both descending: the SQL of the key, NULLs last.
_SORT_SQL = {
    SortKey.power: "COALESCE(s.max_power_kw, -1.0)",
    SortKey.rating: "COALESCE(s.rating_average, -1.0)",
}
_D2_SQL = "((s.x - :x0) * (s.x - :x0) + (s.y - :y0) * (s.y - :y0) + (s.z - :z0) * (s.z - :z0))"


@dataclass(frozen=True, slots=True)
class Cursor:
    """The last row of a page: its sort key value and id (keyset pagination)."""

    sort: SortKey
    key: float | None
    id: int

    def encode(self) -> str:
        raw = orjson.dumps([self.sort.value, self.key, self.id])
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    @classmethod
    def decode(cls, token: str, sort: SortKey) -> "Cursor":
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            sort_name, key, last_id = orjson.loads(raw)
            cursor = cls(SortKey(sort_name), None if key is None else float(key), int(last_id))
        except (ValueError, TypeError):  # includes binascii.Error and orjson.JSONDecodeError
            raise invalid_query("cursor", "not a cursor returned by this search") from None
        if cursor.sort != sort or (cursor.key is None) != (sort == SortKey.id):
            raise invalid_query("cursor", "the cursor belongs to a search with another sort order")
        if cursor.key is not None and not math.isfinite(cursor.key):
            raise invalid_query("cursor", "not a cursor returned by this search")
        return cursor


@dataclass(frozen=True, slots=True)
class StationFilters:
    connectors: tuple[str, ...] = ()
    min_power_kw: float | None = None
    status: str | None = None
    operator: str | None = None
    country: str | None = None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class StationQuery:
    """A validated search. `origin` is (lat, lon); `radius_km` needs it; `box` is the caller's bbox."""

    origin: tuple[float, float] | None = None
    radius_km: float | None = None
    box: GeoBox | None = None
    filters: StationFilters = field(default_factory=StationFilters)
    sort: SortKey | None = None
    limit: int = 50
    cursor: str | None = None


def invalid_query(name: str, message: str) -> InvalidInput:
    """A 422 naming the query parameter `name`, in the shape of FastAPI's validation errors."""
    return InvalidInput(
        f"invalid input: {name} ({message})", details=[{"field": name, "in": "query", "message": message}]
    )


def parse_bbox(value: str) -> GeoBox:
    """`minLon,minLat,maxLon,maxLat`; minLon > maxLon is a box across the antimeridian."""
    parts = value.split(",")
    try:
        min_lon, min_lat, max_lon, max_lat = (float(p) for p in parts)
    except ValueError:
        raise invalid_query("bbox", "expected four numbers: minLon,minLat,maxLon,maxLat") from None
    if not all(math.isfinite(v) for v in (min_lon, min_lat, max_lon, max_lat)):
        raise invalid_query("bbox", "coordinates must be finite numbers")
    if not (-180 <= min_lon <= 180 and -180 <= max_lon <= 180):
        raise invalid_query("bbox", "longitudes must be within -180..180")
    if not (-90 <= min_lat <= max_lat <= 90):
        raise invalid_query("bbox", "latitudes must be within -90..90 with minLat <= maxLat")
    return GeoBox(min_lat, max_lat, split_longitudes(min_lon, max_lon))


# ---------------------------------------------------------------------------------------- builder
class StationWhere:
    """Accumulates the FROM clause and WHERE predicates over `stations s`, and their named parameters."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.tables = "stations s"
        self.where: list[str] = []
        self.params: dict[str, Any] = {}

    def param(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f":{name}"

    def exact_box(self, box: GeoBox) -> str:
        lons = " OR ".join(
            f"s.longitude BETWEEN {self.param(west)} AND {self.param(east)}" for west, east in box.lon_ranges
        )
        return f"s.latitude BETWEEN {self.param(box.min_lat)} AND {self.param(box.max_lat)} AND ({lons})"

    def narrow(self, box: GeoBox, *, exact: bool, every: bool = False) -> None:
        """Restrict to `box` through the index; `exact` also tests the stored coordinates themselves.

        SQLite: the R*Tree yields the ids; it keeps 32-bit coordinates rounded outwards, a superset of the box.
        With `every` (a distance order reads every candidate anyway) the stations are joined to those ids,
        2-3 times cheaper than `s.id IN (ids)`, which builds a temporary index of them first; without it the
        planner may still walk an index in the requested order and stop after one page, much the cheaper for
        a large box. (A station on the antimeridian falls in both halves of a box across it: UNION keeps it
        once.) PostgreSQL: ranges on the (latitude, longitude) btree, which are exact.
        """
        if self.dialect != "sqlite":
            self.where.append(self.exact_box(box))
            return
        lat = f"max_lat >= {self.param(box.min_lat)} AND min_lat <= {self.param(box.max_lat)}"
        ids = " UNION ".join(
            f"SELECT id FROM station_rtree WHERE {lat} AND max_lon >= {self.param(west)} "
            f"AND min_lon <= {self.param(east)}"
            for west, east in box.lon_ranges
        )
        if every:
            self.tables = f"({ids}) r CROSS JOIN stations s ON s.id = r.id"
        else:
            self.where.append(f"s.id IN ({ids})")
        if exact:
            self.where.append(self.exact_box(box))

    def lower(self, needle: str) -> str:
        """The SQL function that lower-cases a column for comparing with `needle` lower-cased by Python.

        SQLite's built-in lower() folds ASCII only, which is exact for an ASCII needle (and cheap: no Python
        call per row); any other needle needs the Unicode fold of `core.db`'s `unicode_lower`."""
        return SQLITE_UNICODE_LOWER if self.dialect == "sqlite" and not needle.isascii() else "lower"

    def filters(self, f: StationFilters) -> None:
        self.where.append("s.duplicate_of_id IS NULL")
        if f.status is not None:
            self.where.append(f"s.status = {self.param(f.status)}")
        else:
            self.where.append("s.status <> 'removed'")
        if f.operator is not None:
            self.where.append(f"{self.lower(f.operator)}(s.operator) = {self.param(f.operator.lower())}")
        if f.country is not None:
            self.where.append(f"s.country = {self.param(f.country.upper())}")
        if f.text is not None:
            pattern = self.param("%" + _escape_like(f.text.lower()) + "%")
            self.where.append(
                "(" + " OR ".join(
                    f"{self.lower(f.text)}(s.{column}) LIKE {pattern} ESCAPE '\\'"
                    for column in ("name", "address", "town", "operator")
                ) + ")"
            )
        if f.connectors:
            # Type and power are tested on the same connector. On SQLite a unary plus keeps the planner on the
            # station_id index (without statistics it would scan ix_connectors_type_power for every station).
            plus = "+" if self.dialect == "sqlite" else ""
            types = ", ".join(self.param(code) for code in f.connectors)
            power = f" AND {plus}c.power_kw >= {self.param(f.min_power_kw)}" if f.min_power_kw is not None else ""
            self.where.append(
                f"EXISTS (SELECT 1 FROM connectors c WHERE c.station_id = s.id AND {plus}c.type IN ({types}){power})"
            )
        elif f.min_power_kw is not None:
            # max_power_kw is the highest connector power, so this is "some connector has that power".
            self.where.append(f"s.max_power_kw >= {self.param(f.min_power_kw)}")


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _keys_first(dialect: str, sort: SortKey) -> bool:
    """Whether a page's (id, sort key) pairs are sorted before its rows are joined (see the module docstring)."""
    return dialect == "sqlite" and sort is SortKey.distance


def _statement(
    dialect: str,
    query: StationQuery,
    sort: SortKey,
    cursor: Cursor | None,
    radius_km: float | None,
) -> tuple[str, dict[str, Any]]:
    """SELECT of one page plus one: STATION_COLUMNS and the sort key, in order unless `_keys_first` (the page's
    rows joined to its sorted keys come in the join's order); `radius_km` None means no distance limit."""
    sql = StationWhere(dialect)
    circle = None
    if query.origin is not None and radius_km is not None:
        circle = circle_box(*query.origin, radius_km)  # None: the circle covers the whole sphere
    if query.origin is not None and (circle is not None or sort is SortKey.distance):
        x0, y0, z0 = unit_vector(*query.origin)
        sql.params.update(x0=x0, y0=y0, z0=z0)
    if circle is not None and radius_km is not None:
        sql.narrow(circle, exact=False, every=sort is SortKey.distance)
        sql.where.append(f"{_D2_SQL} <= {sql.param(chord2_within(radius_km + SAME_POINT_KM))}")
    if query.box is not None:
        # One index lookup per query: the circle's when there is one, else the box's.
        if circle is None:
            sql.narrow(query.box, exact=True, every=sort is SortKey.distance)
        else:
            sql.where.append(sql.exact_box(query.box))
    sql.filters(query.filters)

    if sort is SortKey.id:
        key_sql, order = "NULL", "s.id"
        if cursor is not None:
            sql.where.append(f"s.id > {sql.param(cursor.id)}")
    else:
        ascending = sort is SortKey.distance
        key_sql = _D2_SQL if ascending else _SORT_SQL[sort]
        # By the result column's name: SQLite computes the key once per row instead of again for the sort.
        order = f"sort_key {'ASC' if ascending else 'DESC'}, s.id"
        if cursor is not None:
            key, last_id = sql.param(cursor.key), sql.param(cursor.id)
            beyond = ">" if ascending else "<"
            sql.where.append(f"({key_sql} {beyond} {key} OR ({key_sql} = {key} AND s.id > {last_id}))")
    keys_first = _keys_first(dialect, sort)
    statement = (
        f"SELECT {'s.id' if keys_first else STATION_COLUMNS}, {key_sql} AS sort_key "
        f"FROM {sql.tables} WHERE {' AND '.join(sql.where)} "
        f"ORDER BY {order} LIMIT {sql.param(query.limit + 1)}"
    )
    if keys_first:
        statement = f"SELECT {STATION_COLUMNS}, k.sort_key FROM ({statement}) k CROSS JOIN stations s ON s.id = k.id"
    return statement, sql.params


def narrowed_area_km2(query: StationQuery, radius_km: float | None) -> float:
    """The area `_statement` narrows to for `radius_km`: the box around the circle, the query's box, the smaller
    of both, or the whole sphere."""
    area = SPHERE_AREA_KM2
    if query.origin is not None and radius_km is not None:
        circle = circle_box(*query.origin, radius_km)
        if circle is not None:
            area = circle.area_km2()
    if query.box is not None:
        area = min(area, query.box.area_km2())
    return area


async def _fetch_page(
    db: Database, query: StationQuery, sort: SortKey, cursor: Cursor | None, radius_km: float | None
) -> list[Any]:
    """The rows of the `_statement` for these arguments, in the page's order."""
    statement = _statement(db.dialect, query, sort, cursor, radius_km)
    rows = list(await db.fetch(*statement, slow=narrowed_area_km2(query, radius_km) > SLOW_AREA_KM2))
    if _keys_first(db.dialect, sort):
        rows.sort(key=_sort_key_then_id)  # a few dozen rows, most often in order already
    return rows


def _sort_key_then_id(row: Sequence[Any]) -> tuple[Any, Any]:
    return row[-1], row[0]


class _RadiusHints:
    """How far a page reached near a point: per database, 0.1° cell and filters, the distance of the last row
    a first page needed, per square root of its row count (for a uniform density, the radius holding n rows
    grows with √n). At most `size` entries, the oldest dropped first. Only a starting size: answers never
    depend on it."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self.reach: dict[tuple[Any, ...], float] = {}

    @staticmethod
    def key(db: Database, query: StationQuery) -> tuple[Any, ...]:
        assert query.origin is not None
        lat, lon = query.origin
        return db.url, round(lat / HINT_CELL_DEG), round(lon / HINT_CELL_DEG), query.filters

    def radius(self, key: tuple[Any, ...], wanted: int) -> float:
        reach = self.reach.get(key)
        return FIRST_RADIUS_KM if reach is None else max(reach * math.sqrt(wanted) * HINT_SLACK, MIN_HINT_KM)

    def learn(self, key: tuple[Any, ...], wanted: int, radius: float, rows: Sequence[Any]) -> None:
        # The page's last row, or (fewer rows than wanted within the limit) what the density seen implies.
        if len(rows) >= wanted:
            needed = chord2_to_km(rows[wanted - 1][-1])
        else:
            needed = radius * math.sqrt(wanted / max(len(rows), 1))
        self.reach.pop(key, None)
        if len(self.reach) >= self.size:
            del self.reach[next(iter(self.reach))]
        self.reach[key] = needed / math.sqrt(wanted)


_hints = _RadiusHints()


async def _page(db: Database, query: StationQuery, sort: SortKey, cursor: Cursor | None) -> list[Any]:
    """One page plus one, in order, expanding the circle for distance order (see the module docstring): each row
    is STATION_COLUMNS and the sort key."""
    if sort is not SortKey.distance:
        return await _fetch_page(db, query, sort, cursor, query.radius_km)
    limit_km = HALF_CIRCUMFERENCE_KM if query.radius_km is None else min(query.radius_km, HALF_CIRCUMFERENCE_KM)
    wanted = query.limit + 1
    hint: tuple[Any, ...] | None = None
    if cursor is None:
        hint = _hints.key(db, query)
        start_km, radius = 0.0, min(_hints.radius(hint, wanted), limit_km)
    else:  # a later page: from its first row's distance on
        start_km = chord2_to_km(cursor.key or 0.0)
        radius = min(start_km + FIRST_RADIUS_KM, limit_km)
    while True:
        rows = await _fetch_page(db, query, sort, cursor, radius)
        if radius >= limit_km or len(rows) >= wanted:
            if hint is not None:
                _hints.learn(hint, wanted, radius, rows)
            return rows
        # Grow the circle's area by the shortfall (with some slack), between x1.5 and x4 in radius.
        growth = math.sqrt(RADIUS_SLACK * wanted / len(rows)) if rows else MAX_GROWTH
        radius = min(start_km + (radius - start_km) * min(max(growth, MIN_GROWTH), MAX_GROWTH), limit_km)


async def search_stations(db: Database, *, query: StationQuery, embed: bool = False) -> dict[str, Any]:
    """One page of stations matching `query`: {"items": [Station dict], "next_cursor": str | None}.

    `embed`: the items' connectors are `orjson.Fragment`s (the answers' path; see `stored_station_dicts`)."""
    sort = query.sort or (SortKey.distance if query.origin is not None else SortKey.id)
    if sort is SortKey.distance and query.origin is None:
        raise invalid_query("sort", "sort=distance needs lat and lon")
    cursor = Cursor.decode(query.cursor, sort) if query.cursor else None
    page = await _page(db, query, sort, cursor)
    next_cursor = None
    if len(page) > query.limit:
        page = page[: query.limit]
        last = page[-1]
        next_cursor = Cursor(sort, last[-1] if sort is not SortKey.id else None, last[0]).encode()
    return {"items": stored_station_dicts(page, origin=query.origin, embed=embed), "next_cursor": next_cursor}


async def nearest_stations(
    db: Database, *, lat: float, lon: float, k: int, filters: StationFilters, embed: bool = False
) -> dict[str, Any]:
    """The k stations nearest to (lat, lon) at any distance, nearest first (`embed` as in `search_stations`)."""
    query = StationQuery(origin=(lat, lon), filters=filters, sort=SortKey.distance, limit=k)
    rows = (await _page(db, query, SortKey.distance, None))[:k]
    return {"items": stored_station_dicts(rows, origin=(lat, lon), embed=embed), "next_cursor": None}

"""Duplicate detection: several listings of one physical charging site are linked to one canonical station.

The rule. Two stations (of different sources, or two listings of one source) are the same site when all of
these hold:

1. **Distance**: at most `MAX_DISTANCE_M` (250 m) apart (great-circle).
2. **Name or address**: `similarity` of the names, or of the addresses when both have one, is at least
   `MIN_SIMILARITY` (0.75). Texts are normalised (accents removed, case folded, punctuation dropped, generic
   words such as "charging" or "station" left out) and compared as token sets: the larger of difflib's
   ratio over the sorted tokens and the share of the smaller token set found in the other. Numbers must
   agree: when both texts hold numbers and they differ ("Hub 1" / "Hub 2", "12 High St" / "14 High St"),
   the similarity is 0.
3. **Operator**: the normalised operators are equal (legal suffixes such as "GmbH" or "Ltd" ignored). An
   unknown operator (null, empty, or Open Charge Map's "(Unknown Operator)") on either side does not block a
   match: open data often lacks the operator that the operator's own feed has, and the distance and name
   tests still have to pass. Two known, different operators never match.

Matches are grouped transitively (A ~ B and B ~ C puts A, B, C in one group, together with the groups that
neighbours already belong to), best matches first (highest similarity, then shortest distance), and a group
never takes in two known, different operators: a listing of unknown operator between two operators' sites
joins the better match. The canonical station of a group is the most complete one (most of address,
town, postcode, operator, usage cost and maximum power filled in), the oldest (lowest id) on a tie; every
other member gets `duplicate_of_id` = the canonical id, so links never chain. A checked station that no
longer matches anything loses its link.

Only the stations an import touched are checked, in batches: candidates come from the (latitude, longitude)
index (a box of +-250 m around each) and an exact chord test on the stored unit vectors, never a comparison of
all pairs. When an import touched a large share of the table (a first import), one sweep over the table in
latitude order, holding only the current 500 m band in memory, finds the same neighbours more cheaply.
"""

import contextlib
import difflib
import math
import re
import unicodedata
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, update

from voltway.core.db import SQLITE_NO_MMAP, SQLITE_SMALL_CACHE, Database, stored_time, to_the_end
from voltway.core.geo import EARTH_RADIUS_KM, haversine_km
from voltway.ingest.first_load import linking_indexes_deferred, write_turn
from voltway.stations.models import Station

MAX_DISTANCE_M = 250.0
MIN_SIMILARITY = 0.75
BATCH = 2000
# A sweep over the whole table replaces the per-station box queries when an import touched this share of it.
SWEEP_SHARE = 0.25
SWEEP_PAGE = 20_000

_GENERIC_WORDS = frozenset(
    "ev electric vehicle vehicles charging charge charger chargers recharge station stations point points "
    "hub borne bornes ladestation ladepunkt ladesaule the de la le du des at".split()
)
_LEGAL_SUFFIXES = frozenset("gmbh ltd limited inc llc ag sa sas srl bv nv plc co corp pty as ab oy kg".split())
_UNKNOWN_OPERATORS = frozenset({"", "unknown", "unknown operator"})

_DLAT_DEG = math.degrees(MAX_DISTANCE_M / 1000 / EARTH_RADIUS_KM)
# Squared chord between unit vectors of two points MAX_DISTANCE_M apart.
_CHORD2 = (2 * math.sin(MAX_DISTANCE_M / 1000 / EARTH_RADIUS_KM / 2)) ** 2
# Longitude buckets of the sweep.
_CELL_DEG = 0.01
_CELL_COUNT = 36_000


@dataclass(frozen=True, slots=True)
class DuplicateLink:
    station_id: int
    duplicate_of_id: int
    distance_m: float
    similarity: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------------------------- the rule
def _tokens(text: str | None) -> list[str]:
    if not text:
        return []
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().casefold()
    return re.findall(r"[a-z0-9]+", folded)


@lru_cache(maxsize=1 << 16)  # a site takes part in several pairs; operators repeat across thousands
def _significant(text: str | None) -> tuple[str, ...]:
    tokens = _tokens(text)
    return tuple(t for t in tokens if t not in _GENERIC_WORDS) or tuple(tokens)


def text_similarity(a: str | None, b: str | None) -> float:
    """0..1 similarity of two names or addresses (0 when either is empty, or their numbers differ)."""
    ta, tb = _significant(a), _significant(b)
    if not ta or not tb:
        return 0.0
    numbers_a, numbers_b = {t for t in ta if t.isdigit()}, {t for t in tb if t.isdigit()}
    if numbers_a and numbers_b and numbers_a != numbers_b:
        return 0.0  # "Hub 1" and "Hub 2", "12 High St" and "14 High St" are different places
    ratio = difflib.SequenceMatcher(None, " ".join(sorted(ta)), " ".join(sorted(tb))).ratio()
    sa, sb = set(ta), set(tb)
    overlap = len(sa & sb) / min(len(sa), len(sb))
    return max(ratio, overlap)


@lru_cache(maxsize=1 << 12)
def normalize_operator(operator: str | None) -> str | None:
    """The operator as compared by the rule; None when unknown."""
    tokens = [t for t in _tokens(operator) if t not in _LEGAL_SUFFIXES]
    name = " ".join(tokens)
    return None if name in _UNKNOWN_OPERATORS else name


@dataclass(slots=True)
class _Site:
    id: int
    name: str
    address: str | None
    operator: str | None
    latitude: float
    longitude: float
    duplicate_of_id: int | None
    completeness: int


def _site_similarity(a: _Site, b: _Site) -> float:
    similarity = text_similarity(a.name, b.name)
    if a.address and b.address:
        similarity = max(similarity, text_similarity(a.address, b.address))
    return similarity


def _match(a: _Site, b: _Site) -> tuple[float, float] | None:
    """(similarity, distance_m) when `a` and `b` are the same site by the rule, else None."""
    op_a, op_b = normalize_operator(a.operator), normalize_operator(b.operator)
    if op_a is not None and op_b is not None and op_a != op_b:
        return None
    distance_m = haversine_km(a.latitude, a.longitude, b.latitude, b.longitude) * 1000
    if distance_m > MAX_DISTANCE_M:
        return None
    similarity = _site_similarity(a, b)
    return (similarity, distance_m) if similarity >= MIN_SIMILARITY else None


def _canonical_key(site: _Site) -> tuple[int, int]:
    return site.completeness, -site.id


# ------------------------------------------------------------------------------------------ queries
# Reads go through `Database.fetch` (plain SQL; on SQLite the direct read connection), writes through the engine.
# A site's fields, then the columns whose filling makes a record more complete (see _canonical_key).
_SITE_SQL = (
    "SELECT s.id, s.name, s.address, s.operator, s.latitude, s.longitude, s.duplicate_of_id, "
    "s.address, s.town, s.postcode, s.operator, s.usage_cost, s.max_power_kw FROM stations s"
)
_NEAR_SQL = "b.latitude BETWEEN a.latitude - :dlat AND a.latitude + :dlat"
_LON_SQL = " AND b.longitude BETWEEN a.longitude - :dlon AND a.longitude + :dlon"
_PAIRS_SQL = (
    "SELECT a.id, b.id FROM stations a JOIN stations b ON {near} AND b.id <> a.id "
    "AND (a.x - b.x) * (a.x - b.x) + (a.y - b.y) * (a.y - b.y) + (a.z - b.z) * (a.z - b.z) <= :chord2 "
    "WHERE {checked}"
)


def _site(row: Sequence[Any]) -> _Site:
    filled = row[7:]
    return _Site(*row[:7], completeness=len(filled) - filled.count(None))


async def _load_sites(db: Database, ids: Iterable[int]) -> dict[int, _Site]:
    condition, params = db.one_of("s.id", ids)
    rows = await _read(db, f"{_SITE_SQL} WHERE {condition}", params)
    return {row[0]: _site(row) for row in rows}


async def _linked_to(db: Database, ids: Iterable[int]) -> set[int]:
    """The stations whose `duplicate_of_id` is one of `ids` (ids only: SQLite then reads the index alone)."""
    condition, params = db.one_of("s.duplicate_of_id", ids)
    rows = await _read(db, f"SELECT s.id FROM stations s WHERE {condition}", params)
    return {row[0] for row in rows}


async def _neighbour_pairs(
    db: Database, checked: str, params: dict[str, Any], lon_margin: float | None
) -> list[tuple[int, int]]:
    """(checked id, neighbour id) for every other station within MAX_DISTANCE_M of a checked one (`checked`
    is the condition on `a`).

    The (latitude, longitude) index narrows the candidates to a box around each checked station; the chord
    test on the stored unit vectors is exact.
    """
    near = _NEAR_SQL + (_LON_SQL if lon_margin is not None else "")
    sql = _PAIRS_SQL.format(near=near, checked=checked)
    rows = await _read(db, sql, {**params, "dlat": _DLAT_DEG, "dlon": lon_margin, "chord2": _CHORD2})
    return [(a, b) for a, b in rows]


def _lon_margin(rows: Sequence[Sequence[Any]]) -> float | None:
    """The box half-width in longitude for a batch: taken at its highest latitude. None (latitude bands only)
    near a pole or the antimeridian, where a longitude range would miss neighbours."""
    top = max(abs(row[1]) for row in rows) + _DLAT_DEG
    if top >= 89.0:
        return None
    margin = _DLAT_DEG / math.cos(math.radians(top))
    return None if any(abs(row[2]) + margin >= 180.0 for row in rows) else margin


class _Groups:
    """Union-find over sites that never puts two known, different operators in one group."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}
        self.operator: dict[int, str | None] = {}  # by root: the group's known operator

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def add(self, site: _Site) -> None:
        self.parent[site.id] = site.id
        self.operator[site.id] = normalize_operator(site.operator)

    def union(self, x: int, y: int) -> None:
        rx, ry = self.find(x), self.find(y)
        ox, oy = self.operator[rx], self.operator[ry]
        if rx != ry and (ox is None or oy is None or ox == oy):
            self.parent[rx] = ry
            self.operator[ry] = oy or ox


async def _link_batch(
    db: Database,
    checked: set[int],
    holders: set[int],
    lon_margin: float | None,
    swept: dict[int, list[int]] | None,
) -> list[DuplicateLink]:
    """Check one batch of stations (`holders`: those already linked) against their neighbours and store the
    links; returns the new links. `swept` holds every checked station's neighbours when a sweep found them.

    Stations linked to a checked one are checked too: their canonical may have changed or moved away.
    """
    if swept is None:
        pairs = await _neighbour_pairs(db, *db.one_of("a.id", checked), lon_margin)
    else:
        pairs = [(a, b) for a in checked for b in swept.get(a, ())]
    followers = await _linked_to(db, checked) - checked
    if followers:
        pairs += await _neighbour_pairs(db, *db.one_of("a.id", followers), None)
        checked = checked | followers
    linked = holders | followers
    if not pairs and not linked:
        return []  # the common case: nothing near, nothing linked
    sites = await _load_sites(db, {*linked, *(i for pair in pairs for i in pair)})
    # Groups that neighbours already belong to join the new ones.
    missing = {s.duplicate_of_id for s in sites.values() if s.duplicate_of_id and s.duplicate_of_id not in sites}
    sites.update(await _load_sites(db, missing))
    # So do the stations already linked to any of these, so that a new canonical is never a chain's middle.
    sites.update(await _load_sites(db, await _linked_to(db, sites) - sites.keys()))

    groups = _Groups()
    for site in sites.values():
        groups.add(site)
    for site in sites.values():
        if site.id not in checked and site.duplicate_of_id in sites:
            groups.union(site.id, site.duplicate_of_id)
    # Best matches first: a listing of unknown operator between two operators' sites joins the closer match.
    matches = []
    for a, b in pairs:
        if b in checked and b < a:
            continue  # the pair also comes the other way round
        found = _match(sites[a], sites[b])
        if found is not None:
            similarity, distance_m = found
            matches.append((-similarity, distance_m, a, b))
    for *_order, a, b in sorted(matches):
        groups.union(a, b)

    members: dict[int, list[_Site]] = {}
    for site in sites.values():
        members.setdefault(groups.find(site.id), []).append(site)

    links: list[DuplicateLink] = []
    changes: dict[int, int | None] = {}
    for group in members.values():
        if len(group) == 1:
            (site,) = group
            if site.id in checked and site.duplicate_of_id is not None:
                changes[site.id] = None
            continue
        canonical = max(group, key=_canonical_key)
        if canonical.duplicate_of_id is not None:
            changes[canonical.id] = None
        for site in group:
            if site is canonical or site.duplicate_of_id == canonical.id:
                continue
            changes[site.id] = canonical.id
            distance_m = haversine_km(site.latitude, site.longitude, canonical.latitude, canonical.longitude) * 1000
            similarity = _site_similarity(site, canonical)
            links.append(DuplicateLink(site.id, canonical.id, round(distance_m, 1), round(similarity, 3)))

    if changes:
        await to_the_end(_store_links(db, changes))
    return sorted(links, key=lambda link: link.station_id)


async def _store_links(db: Database, changes: dict[int, int | None]) -> None:
    table = Station.__table__
    async with write_turn(db), db.engine.begin() as conn:
        await conn.execute(
            update(table)
            .where(table.c.id == bindparam("sid"))
            # Linking is bookkeeping, not a change of the station's public record: updated_at stays.
            .values(duplicate_of_id=bindparam("dup"), updated_at=table.c.updated_at),
            [{"sid": sid, "dup": dup} for sid, dup in changes.items()],
        )


async def _sweep(db: Database, since: Any) -> dict[int, list[int]]:
    """Every station written since `since` -> its neighbours within MAX_DISTANCE_M, in one pass over the table
    in latitude order (the lat/lon index), keeping only the stations of the current +-250 m band in memory,
    bucketed by longitude. Cheaper than a box query per station once an import has touched much of the table.
    """
    neighbours: dict[int, list[int]] = {}
    band: deque[tuple[float, int, float, float, float, bool, int]] = deque()  # lat, id, x, y, z, touched, cell
    cells: dict[int, list[tuple[float, int, float, float, float, bool, int]]] = {}
    last: tuple[float, float, int] = (-91.0, 0.0, 0)
    while True:
        rows = await _read(
            db,
            "SELECT latitude, longitude, id, x, y, z, CASE WHEN updated_at >= :since THEN 1 ELSE 0 END "
            # The first comparison matches the (latitude, longitude) index, so PostgreSQL can range-scan it.
            "FROM stations WHERE (latitude, longitude) >= (:lat, :lon) "
            "AND (latitude, longitude, id) > (:lat, :lon, :id) "
            f"ORDER BY latitude, longitude, id LIMIT {SWEEP_PAGE}",
            {"since": since, "lat": last[0], "lon": last[1], "id": last[2]},
        )
        if not rows:
            return neighbours
        for lat, lon, sid, x, y, z, touched in rows:
            while band and band[0][0] < lat - _DLAT_DEG:
                old = band.popleft()
                cells[old[6]].remove(old)
            top = abs(lat) + _DLAT_DEG
            cell = int((lon + 180.0) // _CELL_DEG) % _CELL_COUNT
            if top >= 89.0:  # near a pole every longitude is close
                near_cells: Iterable[int] = list(cells)
            else:
                reach = math.ceil(_DLAT_DEG / math.cos(math.radians(top)) / _CELL_DEG)
                near_cells = ((cell + offset) % _CELL_COUNT for offset in range(-reach, reach + 1))
            for near_cell in near_cells:
                for other in cells.get(near_cell, ()):
                    _lat2, oid, ox, oy, oz, otouched, _cell = other
                    if (touched or otouched) and (x - ox) ** 2 + (y - oy) ** 2 + (z - oz) ** 2 <= _CHORD2:
                        if touched:
                            neighbours.setdefault(sid, []).append(oid)
                        if otouched:
                            neighbours.setdefault(oid, []).append(sid)
            entry = (lat, sid, x, y, z, bool(touched), cell)
            band.append(entry)
            cells.setdefault(cell, []).append(entry)
        last = (rows[-1][0], rows[-1][1], rows[-1][2])


async def _read(db: Database, sql: str, params: dict[str, Any]) -> Sequence[Sequence[Any]]:
    """Linking's reads: off the event loop (a batch's box queries or a sweep's page can take tens of
    milliseconds), on the slow-read connection (`Database.fetch(slow=True)`), which `_streaming_reads` sets up."""
    return await db.fetch(sql, params, slow=True)


# Linkings running per Database object: the first sets the small read settings up, the last one out undoes them.
_streaming: dict[int, int] = {}


@contextlib.asynccontextmanager
async def _streaming_reads(db: Database) -> AsyncIterator[None]:
    """On SQLite, linking reads through a small page cache and without memory-mapped I/O.

    The sweep reads the whole table once: cached or mapped pages would not be read again, yet they count in
    the process's resident memory (up to `cache_size` plus `mmap_size`, a few hundred MB at 300,000
    stations). The connection's usual settings come back when the last of overlapping linkings ends (two bulk
    requests' linkings may overlap: each restoring what it found would leave the small settings behind).
    """
    if not db.is_sqlite:
        yield
        return
    key = id(db)
    if not _streaming.get(key):
        for one_pass, _default in (SQLITE_NO_MMAP, SQLITE_SMALL_CACHE):
            await _read(db, one_pass, {})
    _streaming[key] = _streaming.get(key, 0) + 1
    try:
        yield
    finally:
        _streaming[key] -= 1
        if not _streaming[key]:
            del _streaming[key]
            for _one_pass, default in (SQLITE_NO_MMAP, SQLITE_SMALL_CACHE):
                await _read(db, default, {})


async def link_duplicates_since(db: Database, since: datetime) -> list[DuplicateLink]:
    """Run the rule over every station written (`updated_at`) at or after `since`: after an import.

    Neighbours come from a box query per checked station, or, when the import touched at least
    `SWEEP_SHARE` of the table (a first import), from one sweep over the table. Nothing while a first load has
    the indexes linking reads deferred: without them this would read the whole table again and again, and the
    load links every station written since it started once they are back (`first_load.py`).
    """
    if await linking_indexes_deferred(db):
        return []
    async with _streaming_reads(db):
        return await _link_since(db, since)


async def _link_since(db: Database, since: datetime) -> list[DuplicateLink]:
    since_param = stored_time(since, sqlite=db.is_sqlite)
    # Both through an index (updated_at, the primary key); max(id) stands for the table's size.
    ((touched, size),) = await _read(
        db,
        "SELECT (SELECT COUNT(*) FROM stations WHERE updated_at >= :since), (SELECT MAX(id) FROM stations)",
        {"since": since_param},
    )
    if not touched:
        return []
    if touched >= SWEEP_SHARE * (size or 0):
        return await _link_swept(db, since_param)
    # Found through the updated_at index (`+id` keeps SQLite off the primary key).
    batch_sql = (
        "SELECT id, latitude, longitude, duplicate_of_id FROM stations WHERE updated_at >= :since AND +id > :last "
        f"ORDER BY +id LIMIT {BATCH}"
    )
    links: list[DuplicateLink] = []
    last = 0
    while rows := await _read(db, batch_sql, {"since": since_param, "last": last}):
        holders = {row[0] for row in rows if row[3] is not None}
        links.extend(await _link_batch(db, {row[0] for row in rows}, holders, _lon_margin(rows), None))
        last = rows[-1][0]
    return links


async def _link_swept(db: Database, since: Any) -> list[DuplicateLink]:
    """Linking after an import that touched much of the table: one sweep finds every touched station's
    neighbours, and the batches take the stations in the sweep's order (by latitude), so that a batch's
    neighbours are mostly its own stations and each site is read about once. (In id order, the 76,000 synthetic
    stations with neighbours among 300,000 read 198,000 site rows: 0.66 s of SQL, 0.33 s of building them.)

    A touched station without neighbours needs checking only when it is linked, or has stations linked to it:
    its link may have to go, theirs to be checked again.
    """
    swept = await _sweep(db, since)
    linked: dict[int, int] = dict(
        await _read(db, "SELECT id, duplicate_of_id FROM stations WHERE duplicate_of_id IS NOT NULL", {})  # type: ignore[arg-type]
    )
    order = list(swept)
    if others := {*linked, *linked.values()} - swept.keys():
        condition, params = db.one_of("id", others)
        sql = f"SELECT id FROM stations WHERE {condition} AND updated_at >= :since"
        rows = await _read(db, sql, {**params, "since": since})
        order += sorted(row[0] for row in rows)
    links: list[DuplicateLink] = []
    for start in range(0, len(order), BATCH):
        checked = set(order[start : start + BATCH])
        links.extend(await _link_batch(db, checked, checked & linked.keys(), None, swept))
    return sorted(links, key=lambda link: link.station_id)

"""Duplicate detection: several listings of one physical charging site are linked to one canonical station.

The rule. Two stations (of different sources, or two listings of one source) are the same site when all of
these hold:

1. **Distance**: at most `MAX_DISTANCE_M` (250 m) apart (great-circle).
2. **Name or address**: `similarity` of the names, or of the addresses when both have one, is at least
   `MIN_SIMILARITY` (0.75). Texts are normalised (accents removed, case folded, punctuation dropped, generic
   words such as "charging" or "station" left out) and compared as token sets: the larger of difflib's
   ratio over the sorted tokens and the share of the smaller token set found in the other.
3. **Operator**: the normalised operators are equal (legal suffixes such as "GmbH" or "Ltd" ignored). An
   unknown operator (null, empty, or Open Charge Map's "(Unknown Operator)") on either side does not block a
   match: open data often lacks the operator that the operator's own feed has, and the distance and name
   tests still have to pass. Two known, different operators never match.

Matches are grouped transitively (A ~ B and B ~ C puts A, B, C in one group, together with the groups that
neighbours already belong to). The canonical station of a group is the most complete one (most of address,
town, postcode, operator, usage cost and maximum power filled in), the oldest (lowest id) on a tie; every
other member gets `duplicate_of_id` = the canonical id, so links never chain. A checked station that no
longer matches anything loses its link.

Only the stations an import touched are checked, in batches: candidates come from the latitude index
(a band of +-250 m) and an exact chord test on the stored unit vectors, never a scan of all pairs.
"""

import difflib
import math
import re
import unicodedata
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, select, update
from sqlalchemy.orm import aliased

from voltway.core.db import Database
from voltway.core.geo import EARTH_RADIUS_KM, haversine_km
from voltway.stations.models import Station

MAX_DISTANCE_M = 250.0
MIN_SIMILARITY = 0.75
BATCH = 500

_GENERIC_WORDS = frozenset(
    "ev electric vehicle vehicles charging charge charger chargers recharge station stations point points "
    "hub borne bornes ladestation ladepunkt ladesaule the de la le du des at".split()
)
_LEGAL_SUFFIXES = frozenset("gmbh ltd limited inc llc ag sa sas srl bv nv plc co corp pty as ab oy kg".split())
_UNKNOWN_OPERATORS = frozenset({"", "unknown", "unknown operator"})

_DLAT_DEG = math.degrees(MAX_DISTANCE_M / 1000 / EARTH_RADIUS_KM)
# Squared chord between unit vectors of two points MAX_DISTANCE_M apart.
_CHORD2 = (2 * math.sin(MAX_DISTANCE_M / 1000 / EARTH_RADIUS_KM / 2)) ** 2


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


def _significant(text: str | None) -> list[str]:
    tokens = _tokens(text)
    return [t for t in tokens if t not in _GENERIC_WORDS] or tokens


def text_similarity(a: str | None, b: str | None) -> float:
    """0..1 similarity of two names or addresses (0 when either is empty)."""
    ta, tb = _significant(a), _significant(b)
    if not ta or not tb:
        return 0.0
    ratio = difflib.SequenceMatcher(None, " ".join(sorted(ta)), " ".join(sorted(tb))).ratio()
    sa, sb = set(ta), set(tb)
    overlap = len(sa & sb) / min(len(sa), len(sb))
    return max(ratio, overlap)


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


def _match(a: _Site, b: _Site) -> tuple[float, float] | None:
    """(distance_m, similarity) when `a` and `b` are the same site by the rule, else None."""
    op_a, op_b = normalize_operator(a.operator), normalize_operator(b.operator)
    if op_a is not None and op_b is not None and op_a != op_b:
        return None
    distance = haversine_km(a.latitude, a.longitude, b.latitude, b.longitude) * 1000
    if distance > MAX_DISTANCE_M:
        return None
    similarity = text_similarity(a.name, b.name)
    if a.address and b.address:
        similarity = max(similarity, text_similarity(a.address, b.address))
    if similarity < MIN_SIMILARITY:
        return None
    return round(distance, 1), round(similarity, 3)


def _canonical_key(site: _Site) -> tuple[int, int]:
    return site.completeness, -site.id


# ------------------------------------------------------------------------------------------ queries
_COMPLETENESS_COLUMNS = ("address", "town", "postcode", "operator", "usage_cost", "max_power_kw")


def _site_columns(table: Any) -> list[Any]:
    return [
        table.id, table.name, table.address, table.operator, table.latitude, table.longitude,
        table.duplicate_of_id, *(getattr(table, c) for c in _COMPLETENESS_COLUMNS),
    ]


def _site(row: Sequence[Any]) -> _Site:
    return _Site(*row[:7], completeness=sum(v is not None for v in row[7:]))


async def _load_sites(conn: Any, ids: Iterable[int]) -> dict[int, _Site]:
    ids = list(ids)
    if not ids:
        return {}
    rows = await conn.execute(select(*_site_columns(Station)).where(Station.id.in_(ids)))
    return {row[0]: _site(row) for row in rows}


async def _neighbour_pairs(conn: Any, ids: Sequence[int]) -> list[tuple[int, int]]:
    """(checked id, neighbour id) for every other station within MAX_DISTANCE_M of a checked one."""
    a, b = aliased(Station), aliased(Station)
    chord2 = (a.x - b.x) * (a.x - b.x) + (a.y - b.y) * (a.y - b.y) + (a.z - b.z) * (a.z - b.z)
    query = (
        select(a.id, b.id)
        .join(
            b,
            and_(
                b.latitude >= a.latitude - _DLAT_DEG,
                b.latitude <= a.latitude + _DLAT_DEG,
                b.id != a.id,
                chord2 <= _CHORD2,
            ),
        )
        .where(a.id.in_(ids))
    )
    return [(row[0], row[1]) for row in await conn.execute(query)]


class _Groups:
    """Union-find over station ids."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, x: int, y: int) -> None:
        self.parent[self.find(x)] = self.find(y)


async def link_duplicates(db: Database, station_ids: Sequence[int]) -> list[DuplicateLink]:
    """Check the given stations against their neighbours and store the links; returns the new links."""
    async with db.engine.begin() as conn:
        pairs = await _neighbour_pairs(conn, station_ids)
        sites = await _load_sites(conn, {*station_ids, *(b for _, b in pairs)})
        # Groups that neighbours already belong to join the new ones.
        missing = {s.duplicate_of_id for s in sites.values() if s.duplicate_of_id and s.duplicate_of_id not in sites}
        sites.update(await _load_sites(conn, missing))
        # So are the stations already linked to any of these, so that a new canonical is never a chain's middle.
        followers = await conn.execute(
            select(*_site_columns(Station)).where(Station.duplicate_of_id.in_(list(sites)), Station.id.not_in(list(sites)))
        )
        sites.update({row[0]: _site(row) for row in followers})

        groups = _Groups()
        checked = set(station_ids)
        for site in sites.values():
            if site.id not in checked and site.duplicate_of_id in sites:
                groups.union(site.id, site.duplicate_of_id)
        for a, b in pairs:
            if _match(sites[a], sites[b]):
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
                distance = haversine_km(site.latitude, site.longitude, canonical.latitude, canonical.longitude)
                similarity = text_similarity(site.name, canonical.name)
                if site.address and canonical.address:
                    similarity = max(similarity, text_similarity(site.address, canonical.address))
                links.append(DuplicateLink(site.id, canonical.id, round(distance * 1000, 1), round(similarity, 3)))

        if changes:
            table = Station.__table__
            await conn.execute(
                update(table)
                .where(table.c.id == bindparam("sid"))
                # Linking is bookkeeping, not a change of the station's public record: updated_at stays.
                .values(duplicate_of_id=bindparam("dup"), updated_at=table.c.updated_at),
                [{"sid": sid, "dup": dup} for sid, dup in changes.items()],
            )
    return sorted(links, key=lambda link: link.station_id)


async def stations_touched_since(db: Database, since: datetime) -> AsyncIterator[list[int]]:
    """Batches of ids of the stations written (`updated_at`) at or after `since`, by ascending id."""
    last = 0
    while True:
        async with db.engine.connect() as conn:
            rows = await conn.execute(
                select(Station.id)
                .where(Station.updated_at >= since, Station.id > last)
                .order_by(Station.id)
                .limit(BATCH)
            )
            ids = list(rows.scalars())
        if not ids:
            return
        yield ids
        last = ids[-1]


async def link_duplicates_since(db: Database, since: datetime) -> list[DuplicateLink]:
    """Run the rule over every station written since `since` (after an import)."""
    links: list[DuplicateLink] = []
    async for ids in stations_touched_since(db, since):
        links.extend(await link_duplicates(db, ids))
    return links

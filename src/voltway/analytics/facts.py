"""The SQL relations every analytics answer is aggregated from: rollups for closed hours, raw rows for the rest.

A *fact* is `(t, currency, sessions, energy_wh, revenue_cents, occupied_s)` at UTC epoch second `t`:
- a session counts (sessions, energy, revenue) once, at its start;
- its occupied time is split into pieces at the window's granularity (hours, or quarter hours for zones with
  fractional offsets), each piece counting at its own start, clipped to the window; a running session is
  occupied until now.
Rollup rows are the same facts summed per UTC hour, so the two sources add up to identical figures.

`series_facts` gives facts over time (for bucketing in local time); `station_facts` gives one row per station
and currency (popular, revenue per station/operator, utilization), read from the running totals.
"""

from dataclasses import dataclass
from typing import Any

from voltway.analytics.models import ALL
from voltway.analytics.window import HOUR, Dialect, Window

MEASURES = ("sessions", "energy_wh", "revenue_cents", "occupied_s")


@dataclass(frozen=True)
class Scope:
    """Which stations an answer covers; the conditions apply to `stations s`."""

    station_id: int | None = None
    operator: str | None = None
    country: str | None = None
    bbox: tuple[float, float, float, float] | None = None  # min_lon, min_lat, max_lon, max_lat

    @property
    def station_level(self) -> bool:
        """The cube (country x operator) cannot answer a station or bounding-box filter."""
        return self.station_id is not None or self.bbox is not None

    @property
    def needs_stations(self) -> bool:
        return self.operator is not None or self.country is not None or self.bbox is not None

    def where(self, params: dict[str, Any], column: str = "s.id") -> str:
        conditions = ["1 = 1"]
        if self.station_id is not None:
            params["scope_station_id"] = self.station_id
            conditions.append(f"{column} = :scope_station_id")
        if self.operator is not None:
            params["scope_operator"] = self.operator
            conditions.append("s.operator = :scope_operator")
        if self.country is not None:
            params["scope_country"] = self.country
            conditions.append("s.country = :scope_country")
        if self.bbox is not None:
            params.update(zip(("bb_min_lon", "bb_min_lat", "bb_max_lon", "bb_max_lat"), self.bbox, strict=True))
            conditions.append("s.latitude BETWEEN :bb_min_lat AND :bb_max_lat")
            conditions.append("s.longitude BETWEEN :bb_min_lon AND :bb_max_lon")
        return " AND ".join(conditions)


@dataclass(frozen=True)
class Plan:
    """Which part of [start, end) comes from the rollups ([start, split)) and which from raw rows."""

    start: int
    split: int
    end: int

    @property
    def source(self) -> str:
        if self.split == self.start:
            return "raw"
        return "rollups" if self.split == self.end else "rollups+raw"


def plan(start: int, end: int, window: Window, rolled_through: int | None, use_rollups: bool) -> Plan:
    if not use_rollups or rolled_through is None or not window.rollups_exact or rolled_through <= start:
        return Plan(start, start, end)
    return Plan(start, min(end, rolled_through), end)


def _bigint(d: Dialect, name: str) -> str:
    return f":{name}" if d.sqlite else f"CAST(:{name} AS BIGINT)"


def raw_ctes(d: Dialect, scope: Scope, r0: int, r1: int, now: int, step: int, params: dict[str, Any]) -> list[str]:
    """CTEs `raw_starts(station_id, t, currency, measures...)` and `pieces(station_id, currency, p, e)` for the
    sessions of [r0, r1): starts inside it and occupied time overlapping it, split at `step`."""
    params.update(
        raw_r0=r0, raw_r1=r1, raw_now=now, raw_step=step,
        raw_r0_ts=d.timestamp_param(r0), raw_r1_ts=d.timestamp_param(r1),
    )
    join = d.sessions_first_join() if scope.needs_stations else ""
    where = scope.where(params, "cs.station_id")
    started, ended = d.epoch("cs.started_at"), d.epoch("cs.ended_at")
    step_sql = _bigint(d, "raw_step")
    starts = f"""raw_starts AS (
        SELECT cs.station_id AS station_id, {started} AS t, COALESCE(cs.currency, '') AS currency, 1 AS sessions,
            COALESCE(CAST(ROUND(cs.energy_kwh * 1000) AS BIGINT), 0) AS energy_wh,
            COALESCE(CAST(ROUND(cs.cost * 100) AS BIGINT), 0) AS revenue_cents, 0 AS occupied_s
        FROM charging_sessions cs {join}
        WHERE cs.started_at >= :raw_r0_ts AND cs.started_at < :raw_r1_ts AND {where})"""
    pieces = f"""pieces(station_id, currency, p, e) AS (
        SELECT cs.station_id, COALESCE(cs.currency, ''),
            {d.greatest(started, _bigint(d, "raw_r0"))},
            {d.least(f"COALESCE({ended}, {_bigint(d, 'raw_now')})", _bigint(d, "raw_r1"))}
        FROM charging_sessions cs {join}
        WHERE {d.unindexed("cs.started_at")} < :raw_r1_ts AND (cs.ended_at > :raw_r0_ts OR cs.ended_at IS NULL)
            AND {where}
        UNION ALL
        SELECT station_id, currency, (p / {step_sql} + 1) * {step_sql}, e FROM pieces
        WHERE (p / {step_sql} + 1) * {step_sql} < e)"""
    return [starts, pieces]


def raw_selects(d: Dialect, *, with_station: bool) -> list[str]:
    """The fact rows `([station_id,] t, currency, measures...)` of the raw CTEs."""
    step = _bigint(d, "raw_step")
    station = "station_id, " if with_station else ""
    return [
        f"SELECT {station}t, currency, sessions, energy_wh, revenue_cents, occupied_s FROM raw_starts",
        f"""SELECT {station}p AS t, currency, 0, 0, 0, {d.least('e', f'(p / {step} + 1) * {step}')} - p
            FROM pieces WHERE e > p""",
    ]


def series_facts(
    d: Dialect, scope: Scope, p: Plan, window: Window, params: dict[str, Any]
) -> tuple[list[str], str]:
    """(CTEs, SELECT) of the facts `(t, currency, measures...)` over the plan's range."""
    ctes: list[str] = []
    selects: list[str] = []
    cols = ", ".join(MEASURES)
    if p.split > p.start:
        params.update(roll_a=p.start, roll_b=p.split)
        hours = f"hour >= {_bigint(d, 'roll_a')} AND hour < {_bigint(d, 'roll_b')}"
        if scope.station_level:
            where = scope.where(params, "h.station_id")
            join = "JOIN stations s ON s.id = h.station_id" if scope.needs_stations else ""
            selects.append(
                f"SELECT h.hour AS t, h.currency, {', '.join('h.' + m for m in MEASURES)} "
                f"FROM analytics_station_hours h {join} WHERE h.{hours} AND {where}"
            )
        else:
            params.update(cube_country=scope.country or ALL, cube_operator=scope.operator or ALL)
            selects.append(
                f"SELECT hour AS t, currency, {cols} FROM analytics_cube_hours "
                f"WHERE country = :cube_country AND operator = :cube_operator AND {hours}"
            )
    if p.end > p.split:
        ctes += raw_ctes(d, scope, p.split, p.end, window.now, window.granularity, params)
        selects += raw_selects(d, with_station=False)
    return ctes, " UNION ALL ".join(selects)


def station_facts(
    d: Dialect, scope: Scope, p: Plan, window: Window, params: dict[str, Any]
) -> tuple[list[str], str]:
    """(CTEs, SELECT) of `(station_id, currency, measures...)` rows (several per station may appear)."""
    ctes: list[str] = []
    selects: list[str] = []
    if p.split > p.start:
        params.update(tot_a=p.start, tot_b=p.split)
        where = scope.where(params, "k.station_id")
        join = "JOIN stations s ON s.id = k.station_id" if scope.needs_stations else ""
        latest = (
            "(SELECT MAX(x.hour) FROM analytics_station_totals x WHERE x.station_id = k.station_id "
            "AND x.currency = k.currency AND x.hour < {bound})"
        )
        ctes.append(
            # Materialized: the latest-hour lookups run once per key, not again in each join below.
            f"""tot_keys AS MATERIALIZED (
            SELECT k.station_id, k.currency, {latest.format(bound=_bigint(d, "tot_b"))} AS hb,
                {latest.format(bound=_bigint(d, "tot_a"))} AS ha
            FROM analytics_station_currencies k {join} WHERE {where})"""
        )
        diffs = ", ".join(f"COALESCE(b.{m}, 0) - COALESCE(a.{m}, 0) AS {m}" for m in MEASURES)
        selects.append(
            f"""SELECT k.station_id, k.currency, {diffs} FROM tot_keys k
            LEFT JOIN analytics_station_totals b
                ON b.station_id = k.station_id AND b.currency = k.currency AND b.hour = k.hb
            LEFT JOIN analytics_station_totals a
                ON a.station_id = k.station_id AND a.currency = k.currency AND a.hour = k.ha
            WHERE k.hb IS NOT NULL"""
        )
    if p.end > p.split:
        ctes += raw_ctes(d, scope, p.split, p.end, window.now, HOUR, params)
        sums = ", ".join(f"SUM({m}) AS {m}" for m in MEASURES)
        raw = " UNION ALL ".join(raw_selects(d, with_station=True))
        selects.append(f"SELECT station_id, currency, {sums} FROM ({raw}) r GROUP BY station_id, currency")
    return ctes, " UNION ALL ".join(selects)


def with_clause(ctes: list[str]) -> str:
    return f"WITH RECURSIVE {', '.join(ctes)} " if ctes else ""

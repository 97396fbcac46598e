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
    rolled_through: int | None = None

    @property
    def reaches_through(self) -> bool:
        """The rolled-up part ends where the rollups end: its end totals are the latest ones."""
        return self.split > self.start and self.split == self.rolled_through

    @property
    def source(self) -> str:
        if self.split == self.start:
            return "raw"
        return "rollups" if self.split == self.end else "rollups+raw"


def plan(start: int, end: int, window: Window, rolled_through: int | None, use_rollups: bool) -> Plan:
    if not use_rollups or rolled_through is None or not window.rollups_exact or rolled_through <= start:
        return Plan(start, start, end)
    return Plan(start, min(end, rolled_through), end, rolled_through)


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


def station_facts(d: Dialect, scope: Scope, p: Plan, window: Window, params: dict[str, Any]) -> list[str]:
    """CTEs ending with `per(station_id, currency, measures...)`: the window's totals, one row per station and
    currency (rows of zeros may appear). The rolled-up part is each key's running total at the split (its latest
    one when the split is where the rollups end) less its total at the start; the raw part is added per key, and
    keys new since the rollups come from the raw part alone."""
    ctes: list[str] = []
    parts: list[str] = []
    raw = p.end > p.split
    if raw:
        ctes += raw_ctes(d, scope, p.split, p.end, window.now, HOUR, params)
        sums = ", ".join(f"SUM({m}) AS {m}" for m in MEASURES)
        facts = " UNION ALL ".join(raw_selects(d, with_station=True))
        ctes.append(
            f"raw_per AS MATERIALIZED (SELECT station_id, currency, {sums} FROM ({facts}) r "
            f"GROUP BY station_id, currency)"
        )
    if p.split > p.start:
        params.update(tot_a=p.start, tot_b=p.split)
        where = scope.where(params, "k.station_id")
        join = "JOIN stations s ON s.id = k.station_id" if scope.needs_stations else ""

        def total_before(m: str, bound: str) -> str:
            """Measure `m` of the key's running total before `bound`: 0 when its first hour is not before it (no
            seek). Scalar subqueries, not joins: PostgreSQL would hash the whole totals table for a join."""
            b = _bigint(d, bound)
            return (
                f"COALESCE(CASE WHEN k.first_hour < {b} THEN (SELECT x.{m} FROM analytics_station_totals x "
                f"WHERE x.station_id = k.station_id AND x.currency = k.currency AND x.hour < {b} "
                f"ORDER BY x.hour DESC LIMIT 1) END, 0)"
            )

        tail_join = "LEFT JOIN raw_per r ON r.station_id = k.station_id AND r.currency = k.currency" if raw else ""
        measures = ", ".join(
            f"{f'k.{m}' if p.reaches_through else total_before(m, 'tot_b')} - {total_before(m, 'tot_a')}"
            f"{f' + COALESCE(r.{m}, 0)' if raw else ''} AS {m}"
            for m in MEASURES
        )
        parts.append(
            f"SELECT k.station_id, k.currency, {measures} FROM analytics_station_currencies k {join} {tail_join} "
            f"WHERE {where}"
        )
        if raw:
            parts.append(
                "SELECT * FROM raw_per r WHERE NOT EXISTS (SELECT 1 FROM analytics_station_currencies k "
                "WHERE k.station_id = r.station_id AND k.currency = r.currency)"
            )
    elif raw:
        parts.append("SELECT * FROM raw_per")
    ctes.append(f"per AS ({' UNION ALL '.join(parts)})")
    return ctes


def with_clause(ctes: list[str]) -> str:
    return f"WITH RECURSIVE {', '.join(ctes)} " if ctes else ""

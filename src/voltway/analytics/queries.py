"""Analytics answers, each one SQL aggregation over the facts of `analytics/facts.py` (never rows in Python).

Python only shapes the aggregated rows: it fills empty buckets, turns Wh into kWh and cents into amounts, and
computes the calendar (how many seconds of each local hour a window holds) for mean occupancy.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from voltway.analytics.facts import MEASURES, Plan, Scope, plan, series_facts, station_facts, with_clause
from voltway.analytics.models import ALL, GAP_CAP
from voltway.analytics.rollups import dialect_of, rolled_through
from voltway.analytics.window import DAY, HOUR, Window, epoch

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
UNAVAILABLE = ("out_of_service", "removed", "planned")
PACK = 2**32  # two counts in one integer: low + high * PACK (a count is far below 2**32)


@dataclass(frozen=True)
class Query:
    """What every analytics answer needs: the stations, the window, and whether rollups may be read."""

    scope: Scope
    window: Window
    use_rollups: bool = True


async def _rows(session: AsyncSession, sql: str, params: dict[str, Any]) -> list[Any]:
    if not dialect_of(session).sqlite:
        # PostgreSQL's JIT compiles these plans for ~100 ms, more than most of them take to run; a prepared
        # statement run a sixth time may switch to a generic plan, blind to the window and the cube cell (a
        # trends query went from 50 ms to over a second): plan for the actual values every time; and the
        # per-station aggregates (10,000s of groups) spill to disk in the default 4 MB of work memory.
        await session.execute(text(
            "SELECT set_config('jit', 'off', true), set_config('plan_cache_mode', 'force_custom_plan', true), "
            "set_config('work_mem', '64MB', true)"
        ))
    return list((await session.execute(text(sql), params)).all())


def kwh(wh: Any) -> float:
    return round(int(wh or 0) / 1000, 3)  # int(): PostgreSQL sums bigints as numeric


def amount(cents: Any) -> float:
    return round(int(cents or 0) / 100, 2)


def _window_info(q: Query, p: Plan) -> dict[str, Any]:
    return {"from": q.window.start, "to": q.window.end, "tz": q.window.tz, "source": p.source}


async def _plan(session: AsyncSession, q: Query, start: int | None = None) -> Plan:
    through = await rolled_through(session) if q.use_rollups else None
    return plan(q.window.start if start is None else start, q.window.end, q.window, through, q.use_rollups)


async def capacity(session: AsyncSession, scope: Scope) -> int:
    """Connectors (counting each connector's quantity) of the stations in scope."""
    params: dict[str, Any] = {}
    rows = await _rows(
        session,
        f"SELECT COALESCE(SUM(c.quantity), 0) FROM connectors c JOIN stations s ON s.id = c.station_id "
        f"WHERE {scope.where(params)}",
        params,
    )
    return int(rows[0][0])


async def _bucketed(
    session: AsyncSession, q: Query, p: Plan, bucket: Callable[[str], str]
) -> list[Any]:
    """Facts summed per local bucket, period and currency: rows of (bucket, period, currency, sessions, energy,
    revenue, occupied). Period 1 is the window, 0 what comes before it (the previous period of trends)."""
    d = dialect_of(session)
    params: dict[str, Any] = {"period_start": q.window.start}
    ctes, facts = series_facts(d, q.scope, p, q.window, params)
    local = d.local("f.t", q.window, params)
    period = f"CASE WHEN f.t < {':period_start' if d.sqlite else 'CAST(:period_start AS BIGINT)'} THEN 0 ELSE 1 END"
    sums = ", ".join(f"SUM({m})" for m in MEASURES)
    sql = (
        f"{with_clause(ctes)}SELECT b, period, currency, {sums} FROM "
        f"(SELECT {bucket(local)} AS b, {period} AS period, f.* FROM ({facts}) f) x GROUP BY b, period, currency"
    )
    return await _rows(session, sql, params)


def hour_of_day(local: str) -> str:
    return f"(({local}) / {HOUR}) % 24"


def day_number(local: str) -> str:
    return f"(({local}) / {DAY})"


def weekday(local: str) -> str:
    # 1970-01-01 was a Thursday: day 0 is weekday 3 (Monday = 0).
    return f"((({local}) / {DAY}) + 3) % 7"


def week_number(local: str) -> str:
    # Weeks start on Monday; week n starts on day 7n - 3.
    return f"(((({local}) / {DAY}) + 3) / 7)"


async def _occupancy_buckets(
    session: AsyncSession, q: Query, bucket: Callable[[str], str], calendar_key: Callable[[int], int], size: int
) -> tuple[Plan, int, list[dict[str, Any]]]:
    p = await _plan(session, q)
    rows = await _bucketed(session, q, p, bucket)
    seconds = q.window.local_seconds_by(calendar_key)
    cap = await capacity(session, q.scope)
    totals: dict[int, list[int]] = {i: [0, 0] for i in range(size)}
    for b, _period, _currency, sessions, _energy, _revenue, occupied in rows:
        totals[int(b)][0] += int(sessions)
        totals[int(b)][1] += int(occupied)
    out = []
    for i in range(size):
        sessions, occupied = totals[i]
        span = seconds.get(i, 0)
        active = occupied / span if span else 0.0
        out.append(
            {
                "sessions": sessions,
                "occupied_hours": round(occupied / HOUR, 3),
                "mean_active_sessions": round(active, 4),
                "occupancy": round(active / cap, 4) if cap else 0.0,
            }
        )
    return p, cap, out


async def peak_hours(session: AsyncSession, *, q: Query) -> dict[str, Any]:
    p, cap, buckets = await _occupancy_buckets(session, q, hour_of_day, lambda t: (t // HOUR) % 24, 24)
    return {
        "window": _window_info(q, p),
        "capacity": cap,
        "buckets": [{"hour": h, **b} for h, b in enumerate(buckets)],
    }


async def peak_days(session: AsyncSession, *, q: Query) -> dict[str, Any]:
    p, cap, buckets = await _occupancy_buckets(session, q, weekday, lambda t: (t // DAY + 3) % 7, 7)
    return {
        "window": _window_info(q, p),
        "capacity": cap,
        "buckets": [{"weekday": i, "name": WEEKDAYS[i], **b} for i, b in enumerate(buckets)],
    }


def _local_midnight(q: Query, day: int) -> int:
    """UTC epoch second of the start of local day `day` (days since 1970-01-01) in the window's zone."""
    date = datetime(1970, 1, 1) + timedelta(days=day)
    return epoch(date.replace(tzinfo=q.window.zone))


async def _unique_drivers(
    session: AsyncSession, q: Query, p: Plan, buckets: list[int], interval: str
) -> tuple[dict[int, int], dict[int, int]]:
    """Distinct drivers per local bucket of the window and per period (0 = previous, 1 = the window).

    Distinct counts do not add up across hours. Each range (a bucket's local midnights, from zoneinfo) is
    counted by correlated subqueries: its rolled-up hours [lo, rhi) from the cube cell's driver rollups, and its
    open tail [tlo, hi) from the sessions, by the covering index (started_at, user_id, station_id), leaving out
    drivers already counted in the rolled-up part. Without usable driver rollups (station or bbox filter, raw
    answers) the whole range is tail. The rolled-up part of a range is, by the cheapest exact means:
    - a day (at most GAP_CAP hours): the sum of `analytics_driver_gaps` rows whose gap reaches back before lo;
    - the window, when it reaches the end of the rollups: the drivers active since its start, a plain sum of
      `analytics_driver_gaps` from lo on;
    - otherwise the rows of `analytics_driver_hours` whose previous hour is before lo: one per driver. The
      window's drivers are then the rows of the buckets whose previous hour is before the window, counted in
      the same pass (in the high bits of each bucket's count) when the buckets are counted that way."""
    d = dialect_of(session)
    cube = p.split > p.start and not q.scope.station_level
    split = p.split if cube else p.start
    ranges = [(-1, p.start, q.window.start), (-2, q.window.start, q.window.end)]
    for b in buckets:
        first_day = b if interval == "day" else b * 7 - 3
        lo = _local_midnight(q, first_day)
        hi = _local_midnight(q, first_day + (1 if interval == "day" else 7))
        ranges.append((b, max(lo, q.window.start), min(hi, q.window.end)))
    by_gaps = cube and all(hi - lo <= GAP_CAP * HOUR for _k, lo, hi in ranges[2:])
    since = cube and p.reaches_through
    params: dict[str, Any] = {"cube_country": q.scope.country or ALL, "cube_operator": q.scope.operator or ALL}
    values = []

    def typed(name: str, sql_type: str) -> str:  # PostgreSQL cannot infer the types of a VALUES list
        return f":{name}" if d.sqlite else f"CAST(:{name} AS {sql_type})"

    for i, (key, lo, hi) in enumerate(ranges):
        params.update({f"uk{i}": key, f"ulo{i}": lo, f"urhi{i}": min(hi, split),
                       f"utlo{i}": d.timestamp_param(max(lo, split)), f"uhi{i}": d.timestamp_param(hi)})
        values.append(f"({typed(f'uk{i}', 'INTEGER')}, {typed(f'ulo{i}', 'BIGINT')}, {typed(f'urhi{i}', 'BIGINT')}, "
                      f"{typed(f'utlo{i}', 'TIMESTAMPTZ')}, {typed(f'uhi{i}', 'TIMESTAMPTZ')})")
    params["window_start"] = q.window.start
    in_cell = "x.country = :cube_country AND x.operator = :cube_operator AND x.hour >= b.lo"
    cell = f"{in_cell} AND x.hour < b.rhi"
    scan = (
        f"(SELECT COALESCE(SUM(CASE WHEN x.prev_hour < b.lo THEN 1 ELSE 0 END) "
        f"+ SUM(CASE WHEN x.prev_hour < {typed('window_start', 'BIGINT')} THEN {PACK} ELSE 0 END), 0) "
        f"FROM analytics_driver_hours x WHERE {cell})"
    )
    new_in_range = (
        f"(SELECT COALESCE(SUM(x.n), 0) FROM analytics_driver_gaps x WHERE {cell} AND x.gap * {HOUR} > x.hour - b.lo)"
    )
    active_since = f"(SELECT COALESCE(SUM(x.n), 0) FROM analytics_driver_gaps x WHERE {in_cell})"
    window_in_buckets = not by_gaps and not since  # the window's rolled drivers from the buckets' high bits
    window = active_since if since else ("0" if window_in_buckets else scan)
    rolled = f"CASE WHEN b.k = -2 THEN {window} WHEN b.k = -1 THEN {scan} ELSE {new_in_range if by_gaps else scan} END"
    seen = f" AND NOT EXISTS (SELECT 1 FROM analytics_driver_hours x WHERE {cell} AND x.user_id = cs.user_id)"
    join = d.sessions_first_join() if q.scope.needs_stations else ""
    tail = (
        f"(SELECT COUNT(DISTINCT cs.user_id) FROM charging_sessions cs {join} "
        f"WHERE cs.started_at >= b.tlo AND cs.started_at < b.hi AND cs.user_id IS NOT NULL "
        f"AND {q.scope.where(params, 'cs.station_id')}{seen if cube else ''})"
    )
    rows = await _rows(session, f"WITH b(k, lo, rhi, tlo, hi) AS (VALUES {', '.join(values)}) "
                                f"SELECT b.k, {rolled if cube else '0'}, CASE WHEN b.tlo < b.hi THEN {tail} ELSE 0 END "
                                f"FROM b", params)
    counts = {int(k): int(packed) % PACK + int(n) for k, packed, n in rows}
    in_window = counts.get(-2, 0)
    if window_in_buckets:
        in_window += sum(int(packed) // PACK for k, packed, _n in rows if int(k) >= 0)
    return {b: counts.get(b, 0) for b in buckets}, {0: counts.get(-1, 0), 1: in_window}


def _pct(current: float, previous: float) -> float | None:
    return round((current - previous) / previous * 100, 2) if previous else None


async def trends(session: AsyncSession, *, q: Query, interval: Literal["day", "week"]) -> dict[str, Any]:
    """A daily or weekly series over the window, with totals against the previous period of the same length."""
    length = q.window.end - q.window.start
    previous_start = q.window.start - length
    p = await _plan(session, q, start=previous_start)
    bucket = day_number if interval == "day" else week_number
    rows = await _bucketed(session, q, p, bucket)

    def bucket_of(t: int) -> int:
        day = (t + q.window.offset(t)) // DAY
        return day if interval == "day" else (day + 3) // 7

    first, last = bucket_of(q.window.start), bucket_of(q.window.measured_end - 1)
    drivers, period_drivers = await _unique_drivers(session, q, p, list(range(first, last + 1)), interval)
    series: dict[int, dict[str, Any]] = {
        b: {"sessions": 0, "energy_wh": 0, "revenue": {}} for b in range(first, last + 1)
    }
    periods = [{"sessions": 0, "energy_wh": 0, "revenue": {}} for _ in range(2)]
    for b, period, currency, sessions, energy, revenue, _occupied in rows:
        targets = [periods[int(period)]] + ([series[int(b)]] if int(period) == 1 and int(b) in series else [])
        for target in targets:
            target["sessions"] += int(sessions)
            target["energy_wh"] += int(energy)
            if revenue:
                target["revenue"][currency] = target["revenue"].get(currency, 0) + int(revenue)

    def shaped(values: dict[str, Any], unique: int) -> dict[str, Any]:
        return {
            "sessions": values["sessions"],
            "energy_kwh": kwh(values["energy_wh"]),
            "revenue": {c: amount(v) for c, v in sorted(values["revenue"].items())},
            "unique_drivers": unique,
        }

    def start_date(b: int) -> str:
        return q.window.local_date(b if interval == "day" else b * 7 - 3)

    current = shaped(periods[1], period_drivers.get(1, 0))
    previous = shaped(periods[0], period_drivers.get(0, 0))
    currencies = sorted(set(current["revenue"]) | set(previous["revenue"]))
    return {
        "window": _window_info(q, p),
        "interval": interval,
        "series": [{"start": start_date(b), **shaped(v, drivers.get(b, 0))} for b, v in sorted(series.items())],
        "current": current,
        "previous": previous,
        "change_pct": {
            "sessions": _pct(current["sessions"], previous["sessions"]),
            "energy_kwh": _pct(current["energy_kwh"], previous["energy_kwh"]),
            "unique_drivers": _pct(current["unique_drivers"], previous["unique_drivers"]),
            "revenue": {
                c: _pct(current["revenue"].get(c, 0.0), previous["revenue"].get(c, 0.0)) for c in currencies
            },
        },
    }


async def popular(
    session: AsyncSession,
    *,
    q: Query,
    by: Literal["sessions", "energy", "revenue"],
    currency: str,
    limit: int,
) -> dict[str, Any]:
    """The top stations by sessions, energy or revenue (in `currency`), with all their figures."""
    p = await _plan(session, q)
    params: dict[str, Any] = {"limit": limit, "rank_currency": currency}
    order = {"sessions": "sessions", "energy": "energy_wh", "revenue": "rank_revenue"}[by]
    select = f"""SELECT r.station_id, s.name, s.operator, s.country, r.sessions, r.energy_wh, r.occupied_s,
            per.currency, per.revenue_cents
        FROM (SELECT station_id, SUM(sessions) AS sessions, SUM(energy_wh) AS energy_wh,
                     SUM(occupied_s) AS occupied_s,
                     SUM(CASE WHEN currency = :rank_currency THEN revenue_cents ELSE 0 END) AS rank_revenue
              FROM per GROUP BY station_id HAVING SUM(sessions) > 0
              ORDER BY {order} DESC, station_id LIMIT :limit) r
        JOIN stations s ON s.id = r.station_id
        JOIN per ON per.station_id = r.station_id"""
    ctes = station_facts(dialect_of(session), q.scope, p, q.window, params)
    rows = await _rows(session, f"{with_clause(ctes)}{select} ORDER BY r.{order} DESC, r.station_id", params)
    items: dict[int, dict[str, Any]] = {}
    for station_id, name, operator, country, sessions, energy, occupied, cur, revenue in rows:
        item = items.setdefault(
            station_id,
            {
                "station_id": station_id,
                "name": name,
                "operator": operator,
                "country": country,
                "sessions": int(sessions),
                "energy_kwh": kwh(energy),
                "occupied_hours": round(int(occupied) / HOUR, 3),
                "revenue": {},
            },
        )
        if revenue:
            item["revenue"][cur] = amount(revenue)
    return {"window": _window_info(q, p), "by": by, "currency": currency, "items": list(items.values())}


async def revenue(
    session: AsyncSession, *, q: Query, group_by: Literal["day", "station", "operator"], limit: int
) -> dict[str, Any]:
    """Revenue totals (and sessions, energy) per local day, station or operator, per currency."""
    p = await _plan(session, q)
    if group_by == "day":
        rows = await _bucketed(session, q, p, day_number)
        # Buckets holding only the occupied time of sessions started earlier have no revenue row.
        keyed = [(q.window.local_date(int(b)), None, cur, s, e, r) for b, _p, cur, s, e, r, _o in rows if s]
    else:
        params: dict[str, Any] = {"limit": limit}
        if group_by == "station":
            key, label, group = "per.station_id", "MIN(s.name)", "per.station_id"
        else:
            key, label, group = "COALESCE(s.operator, '')", "NULL", "COALESCE(s.operator, '')"
        select = f"""SELECT {key} AS k, {label} AS label, per.currency, SUM(per.sessions), SUM(per.energy_wh),
                SUM(per.revenue_cents)
            FROM per JOIN stations s ON s.id = per.station_id GROUP BY {group}, per.currency
            HAVING SUM(per.sessions) > 0"""
        ctes = station_facts(dialect_of(session), q.scope, p, q.window, params)
        rows = await _rows(session, f"{with_clause(ctes)}{select} ORDER BY 6 DESC, 1 LIMIT :limit", params)
        keyed = [(str(k), label, cur, s, e, r) for k, label, cur, s, e, r in rows]
    out = [
        {
            "key": k,
            "label": label,
            "currency": cur,
            "sessions": int(s),
            "energy_kwh": kwh(e),
            "amount": amount(r),
        }
        for k, label, cur, s, e, r in keyed
    ]
    if group_by == "day":
        out.sort(key=lambda row: (row["key"], row["currency"]))
    totals: dict[str, int] = {}
    for _k, _label, cur, _s, _e, r in keyed:
        totals[cur] = totals.get(cur, 0) + int(r)
    return {
        "window": _window_info(q, p),
        "group_by": group_by,
        "rows": out,
        "totals": {c: amount(v) for c, v in sorted(totals.items()) if group_by == "day"},
    }


async def utilization(session: AsyncSession, *, q: Query, limit: int) -> dict[str, Any]:
    """Occupied time / available time per station over the window (up to now).

    Available time is the station's connectors (x quantity) times the window, less the time the status
    history shows the station (all its connectors) or a connector as out of service, removed or planned."""
    p = await _plan(session, q)
    d = dialect_of(session)
    w0, w1 = q.window.start, q.window.measured_end
    params: dict[str, Any] = {"limit": limit, "u_w0": w0, "u_w1": w1, "u_w1_ts": d.timestamp_param(w1)}
    big = (lambda n: f":{n}") if d.sqlite else (lambda n: f"CAST(:{n} AS BIGINT)")
    stations = "JOIN stations s ON s.id = {}.station_id" if q.scope.needs_stations else ""
    changed = d.epoch("h.changed_at")
    unavailable = ", ".join(f"'{u}'" for u in UNAVAILABLE)
    unavailable_until = d.least(f"COALESCE(hist.t1, {big('u_w1')})", big("u_w1"))
    unavailable_from = d.greatest("hist.t0", big("u_w0"))
    ctes = [
        *station_facts(d, q.scope, p, q.window, params),
        f"""cap AS (SELECT c.station_id, SUM(c.quantity) AS n FROM connectors c {stations.format("c")}
            WHERE {q.scope.where(params, "c.station_id")} GROUP BY c.station_id)""",
        f"""hist AS (
            SELECT h.station_id, h.connector_id, h.status, {changed} AS t0,
                LEAD({changed}) OVER (PARTITION BY h.station_id, h.connector_id ORDER BY h.changed_at, h.id) AS t1
            FROM status_history h {stations.format("h")}
            WHERE h.changed_at < :u_w1_ts AND {q.scope.where(params, "h.station_id")}
              AND (h.status IN ({unavailable}) OR h.previous_status IN ({unavailable})))""",
        f"""down AS (
            SELECT hist.station_id, SUM(({unavailable_until} - {unavailable_from})
                * CASE WHEN hist.connector_id IS NULL THEN COALESCE(cap.n, 0) ELSE COALESCE(c.quantity, 1) END
            ) AS seconds
            FROM hist LEFT JOIN cap ON cap.station_id = hist.station_id
            LEFT JOIN connectors c ON c.id = hist.connector_id
            WHERE hist.status IN ({unavailable}) AND {unavailable_until} > {unavailable_from}
            GROUP BY hist.station_id)""",
    ]
    params["u_span"] = w1 - w0
    # One pass per station over its connectors, its facts and its downtime (the stations with connectors).
    ctes.append(
        f"""u AS (SELECT station_id, SUM(n) AS n, SUM(occupied_s) AS occupied_s, SUM(sessions) AS sessions,
            {d.greatest(f"SUM(n) * {big('u_span')} - SUM(down_s)", "0")} AS available
        FROM (SELECT c.station_id, c.quantity AS n, 0 AS occupied_s, 0 AS sessions, 0 AS down_s, 1 AS listed
              FROM connectors c {stations.format("c")} WHERE {q.scope.where(params, "c.station_id")}
              UNION ALL SELECT station_id, 0, occupied_s, sessions, 0, 0 FROM per
              UNION ALL SELECT station_id, 0, 0, 0, seconds, 0 FROM down) x
        GROUP BY station_id HAVING SUM(listed) > 0)"""
    )
    # Ranked, limited and rounded in SQL (names looked up for the top rows only); the row whose station_id is
    # NULL is the overall figure.
    rows = await _rows(
        session,
        f"""{with_clause(ctes)}SELECT top.station_id, s.name, s.operator, n, occupied_s, sessions, available,
            utilization FROM (
                SELECT station_id, n, occupied_s, sessions, available,
                    {d.ratio("occupied_s", "available", 4)} AS utilization
                FROM u ORDER BY utilization DESC, station_id LIMIT :limit) top
            JOIN stations s ON s.id = top.station_id
        UNION ALL
        SELECT NULL, NULL, NULL, COUNT(*), SUM(occupied_s), NULL, SUM(available),
            {d.ratio("SUM(occupied_s)", "SUM(available)", 4)} FROM u""",
        params,
    )
    overall = next(r for r in rows if r[0] is None)
    top = sorted((r for r in rows if r[0] is not None), key=lambda r: (-r[7], r[0]))
    items = [
        {
            "station_id": station_id,
            "name": name,
            "operator": operator,
            "connectors": int(n),
            "sessions": int(sessions),
            "occupied_hours": round(int(occupied) / HOUR, 3),
            "available_hours": round(int(available) / HOUR, 3),
            "utilization": float(utilization),
        }
        for station_id, name, operator, n, occupied, sessions, available, utilization in top
    ]
    return {
        "window": _window_info(q, p),
        "overall": float(overall[7] or 0),
        "stations": int(overall[3]),
        "items": items,
    }


async def ratings(session: AsyncSession, *, q: Query, windowed: bool, limit: int) -> dict[str, Any]:
    """Average, count and 1-5 distribution of reviews per station and per operator (reviews updated in the
    window when one is asked for): sums of `analytics_review_hours`, or with `rollups=false` the reviews
    themselves (the window is on whole hours, so both count the same reviews)."""
    params: dict[str, Any] = {"limit": limit}
    d = dialect_of(session)
    if q.use_rollups:
        source, bounds = "analytics_review_hours r", (q.window.start, q.window.end)
        counts = ["SUM(r.n)", "SUM(r.total)", *(f"SUM(r.d{i})" for i in range(1, 6))]
        in_window = "r.hour >= :r_a AND r.hour < :r_b" if d.sqlite else (
            "r.hour >= CAST(:r_a AS BIGINT) AND r.hour < CAST(:r_b AS BIGINT)")
    else:
        source, bounds = "reviews r", (d.timestamp_param(q.window.start), d.timestamp_param(q.window.end))
        counts = ["COUNT(*)", "SUM(r.rating)",
                  *(f"SUM(CASE WHEN r.rating = {i} THEN 1 ELSE 0 END)" for i in range(1, 6))]
        in_window = "r.updated_at >= :r_a AND r.updated_at < :r_b"
    where = q.scope.where(params, "r.station_id")
    if windowed:
        params.update(r_a=bounds[0], r_b=bounds[1])
        where += f" AND {in_window}"
    join = "JOIN stations s ON s.id = r.station_id" if q.scope.needs_stations else ""
    names = ("n", "total", *(f"d{i}" for i in range(1, 6)))
    per_cols = ", ".join(f"{c} AS {n}" for c, n in zip(counts, names, strict=True))
    cols = ", ".join(names[2:])
    sums = ", ".join(f"SUM({n})" for n in names[2:])
    # One pass over the station's rows (grouped by station, the leading key of both sources: no sort); names
    # are looked up for the top stations only, operators for every station with reviews.
    rows = await _rows(
        session,
        f"""WITH per AS MATERIALIZED (
            SELECT r.station_id AS id, {per_cols} FROM {source} {join} WHERE {where} GROUP BY r.station_id
            HAVING {counts[0]} > 0)
        SELECT * FROM (SELECT 0 AS part, t.id, s.name, s.operator, n, total, {cols}
                       FROM (SELECT * FROM per ORDER BY n DESC, id LIMIT :limit) t
                       JOIN stations s ON s.id = t.id) top_stations
        UNION ALL
        SELECT * FROM (SELECT 1, CAST(NULL AS INTEGER), CAST(NULL AS TEXT), COALESCE(s.operator, ''), SUM(n),
                              SUM(total), {sums}
                       FROM per JOIN stations s ON s.id = per.id GROUP BY COALESCE(s.operator, '')
                       ORDER BY SUM(n) DESC, COALESCE(s.operator, '') LIMIT :limit) top_operators""",
        params,
    )

    def stats(row: Any) -> dict[str, Any]:
        return {
            "count": int(row[4]),
            "average": round(int(row[5]) / int(row[4]), 3),
            "distribution": {str(i + 1): int(v) for i, v in enumerate(row[6:])},
        }

    stations = sorted((r for r in rows if r[0] == 0), key=lambda r: (-int(r[4]), r[1]))
    operators = sorted((r for r in rows if r[0] == 1), key=lambda r: (-int(r[4]), r[3]))
    return {
        "window": {"from": q.window.start, "to": q.window.end, "tz": q.window.tz,
                   "source": "rollups" if q.use_rollups else "raw"}
        if windowed
        else None,
        "stations": [{"station_id": r[1], "name": r[2], "operator": r[3], **stats(r)} for r in stations],
        "operators": [{"operator": r[3], **stats(r)} for r in operators],
    }

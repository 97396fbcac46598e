"""Maintaining the hourly rollups (see `analytics/models.py`) from `charging_sessions`, all in SQL.

`refresh` is the incremental step run by the scheduled job: it rolls up every hour that has closed since the
last run and re-rolls the hours touched by sessions that started or ended since then (a session stopped late
changes the energy and revenue of its start hour). Rolled hours stop before the start of the earliest running
session, so a rolled hour never changes when a running session stops. `rebuild` recomputes everything.

Sessions written with a start and end both in the past (imports, demo data) are not seen by `refresh`
(nothing marks them as new): run `rebuild` after such a bulk load (`voltway analytics rebuild`; the demo
loader does). Answers stay exact meanwhile only for the raw part of a window.
"""

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from voltway.analytics.facts import MEASURES, Scope, raw_ctes, raw_selects, with_clause
from voltway.analytics.models import ALL, GAP_CAP
from voltway.analytics.window import HOUR, Dialect, epoch, floor_to

# Sessions started or ended this long before the previous run are re-rolled too (commit delays).
LATE_MARGIN = timedelta(minutes=10)
STATE_ID = 1
HOURLY_TABLES = (
    "analytics_station_hours", "analytics_cube_hours", "analytics_station_totals", "analytics_driver_hours",
    "analytics_driver_gaps",
)
ROLLUP_TABLES = (*HOURLY_TABLES, "analytics_station_currencies")


def dialect_of(session: AsyncSession) -> Dialect:
    return Dialect(session.get_bind().dialect.name)


async def _scalar(session: AsyncSession, sql: str, params: dict[str, Any] | None = None) -> Any:
    return (await session.execute(text(sql), params or {})).scalar()


def _as_epoch(value: Any) -> int | None:
    if value is None:
        return None
    return epoch(datetime.fromisoformat(value) if isinstance(value, str) else value)


async def rolled_through(session: AsyncSession) -> int | None:
    """The end (UTC epoch hour) of the rolled-up period, None before the first run."""
    value = await _scalar(session, "SELECT rolled_through FROM analytics_rollup_state WHERE id = :id", {"id": STATE_ID})
    return int(value) if value is not None else None


async def _close_limit(session: AsyncSession, now: datetime) -> int:
    """Hours before this are closed: past, and before the start of the earliest running session."""
    limit = floor_to(epoch(now), HOUR)
    running = _as_epoch(await _scalar(session, "SELECT MIN(started_at) FROM charging_sessions WHERE ended_at IS NULL"))
    return min(limit, floor_to(running, HOUR)) if running is not None else limit


async def recompute(session: AsyncSession, *, start: int, end: int, now: datetime) -> int:
    """Replace the rollups of hours >= `start` by those of [start, end) computed from the sessions.

    Returns the number of station-hour rows written. The caller commits."""
    d = dialect_of(session)
    params: dict[str, Any] = {"a": start}
    a = ":a" if d.sqlite else "CAST(:a AS BIGINT)"
    await _count_returns(session, a, params, sign=1)
    for table in HOURLY_TABLES:
        await session.execute(text(f"DELETE FROM {table} WHERE hour >= {a}"), params)
    if end > start:
        ctes = raw_ctes(d, Scope(), start, end, epoch(now), HOUR, params)
        facts = " UNION ALL ".join(raw_selects(d, with_station=True))
        sums = ", ".join(f"SUM({m})" for m in MEASURES)
        await session.execute(
            text(
                f"{with_clause(ctes)}INSERT INTO analytics_station_hours (station_id, hour, currency, "
                f"{', '.join(MEASURES)}) SELECT station_id, t / {HOUR} * {HOUR}, currency, {sums} "
                f"FROM ({facts}) f GROUP BY station_id, t / {HOUR} * {HOUR}, currency"
            ),
            params,
        )
    await _derive(session, d, start)
    await _driver_hours(session, d, start, end)
    await _driver_gaps(session, a, params)
    return int(await _scalar(session, f"SELECT COUNT(*) FROM analytics_station_hours WHERE hour >= {a}", params))


async def _derive(session: AsyncSession, d: Dialect, start: int) -> None:
    """The cube, the running totals and the station currencies of hours >= `start` from the station hours."""
    params = {"a": start}
    a = ":a" if d.sqlite else "CAST(:a AS BIGINT)"
    every = f"'{ALL}'"
    cols = ", ".join(MEASURES)
    # The finest cells first (a station without country or operator counts under ''), then each coarser
    # level from the previous one, which is much smaller than the station hours.
    await session.execute(
        text(
            f"INSERT INTO analytics_cube_hours (country, operator, hour, currency, {cols}) "
            f"SELECT COALESCE(s.country, ''), COALESCE(s.operator, ''), h.hour, h.currency, "
            f"{', '.join(f'SUM(h.{m})' for m in MEASURES)} FROM analytics_station_hours h "
            f"JOIN stations s ON s.id = h.station_id WHERE h.hour >= {a} "
            f"GROUP BY COALESCE(s.country, ''), COALESCE(s.operator, ''), h.hour, h.currency"
        ),
        params,
    )
    sums = ", ".join(f"SUM({m})" for m in MEASURES)
    for country, operator, source in (
        (every, "operator", f"country <> {every} AND operator <> {every}"),
        ("country", every, f"country <> {every} AND operator <> {every}"),
        (every, every, f"country <> {every} AND operator = {every}"),
    ):
        group = ", ".join(c for c in (country, operator) if c != every)
        await session.execute(
            text(
                f"INSERT INTO analytics_cube_hours (country, operator, hour, currency, {cols}) "
                f"SELECT {country}, {operator}, hour, currency, {sums} FROM analytics_cube_hours "
                f"WHERE hour >= {a} AND {source} GROUP BY {group + ', ' if group else ''}hour, currency"
            ),
            params,
        )
    await session.execute(
        text(
            f"""INSERT INTO analytics_station_currencies (station_id, currency)
            SELECT DISTINCT h.station_id, h.currency FROM analytics_station_hours h WHERE h.hour >= {a}
            AND NOT EXISTS (SELECT 1 FROM analytics_station_currencies k
                            WHERE k.station_id = h.station_id AND k.currency = h.currency)"""
        ),
        params,
    )
    # Running totals continue from each (station, currency)'s last total before `start`.
    running = ", ".join(
        f"COALESCE(b.{m}, 0) + SUM(h.{m}) OVER (PARTITION BY h.station_id, h.currency ORDER BY h.hour "
        f"ROWS UNBOUNDED PRECEDING)"
        for m in MEASURES
    )
    base = f"""base AS (
        SELECT t.station_id, t.currency, {', '.join('t.' + m for m in MEASURES)}
        FROM analytics_station_currencies k JOIN analytics_station_totals t
            ON t.station_id = k.station_id AND t.currency = k.currency
            AND t.hour = (SELECT MAX(x.hour) FROM analytics_station_totals x
                          WHERE x.station_id = k.station_id AND x.currency = k.currency AND x.hour < {a})
        WHERE EXISTS (SELECT 1 FROM analytics_station_hours n
                      WHERE n.station_id = k.station_id AND n.currency = k.currency AND n.hour >= {a}))"""
    select = f"""SELECT h.station_id, h.currency, h.hour, {running} FROM analytics_station_hours h
        LEFT JOIN base b ON b.station_id = h.station_id AND b.currency = h.currency WHERE h.hour >= {a}"""
    insert = f"INSERT INTO analytics_station_totals (station_id, currency, hour, {cols}) "
    await session.execute(text(f"WITH {base} {insert}{select}"), params)
    # Each (station, currency) keeps its latest running total and its first hour.
    key = ("t.station_id = analytics_station_currencies.station_id "
           "AND t.currency = analytics_station_currencies.currency")
    await session.execute(
        text(f"DELETE FROM analytics_station_currencies WHERE NOT EXISTS "
             f"(SELECT 1 FROM analytics_station_totals t WHERE {key})")
    )
    await session.execute(
        text(f"UPDATE analytics_station_currencies SET ({cols}) = (SELECT {', '.join('t.' + m for m in MEASURES)} "
             f"FROM analytics_station_totals t WHERE {key} ORDER BY t.hour DESC LIMIT 1), "
             f"first_hour = (SELECT MIN(t.hour) FROM analytics_station_totals t WHERE {key})")
    )


async def _driver_hours(session: AsyncSession, d: Dialect, start: int, end: int) -> None:
    """The driver hours of sessions started in [start, end), in every cube cell; each row's previous hour comes
    from the same batch or, for a driver's first row in it, from the rows kept before `start`."""
    if end <= start:
        return
    every = f"'{ALL}'"
    cells = f"""cells AS (
        SELECT DISTINCT COALESCE(s.country, '') AS c, COALESCE(s.operator, '') AS o, cs.user_id AS u,
            {d.epoch("cs.started_at")} / {HOUR} * {HOUR} AS h
        FROM charging_sessions cs JOIN stations s ON s.id = cs.station_id
        WHERE cs.started_at >= :a_ts AND cs.started_at < :b_ts AND cs.user_id IS NOT NULL)"""
    levels = " UNION ALL ".join(
        f"SELECT DISTINCT {c} AS c, {o} AS o, u, h FROM cells"
        for c, o in (("c", "o"), (every, "o"), ("c", every), (every, every))
    )
    earlier = (
        "(SELECT MAX(x.hour) FROM analytics_driver_hours x "
        "WHERE x.country = l.c AND x.operator = l.o AND x.user_id = l.u)"
    )
    await session.execute(
        text(
            f"WITH {cells}, levels AS ({levels}) "
            f"INSERT INTO analytics_driver_hours (country, operator, user_id, hour, prev_hour) "
            f"SELECT l.c, l.o, l.u, l.h, COALESCE(LAG(l.h) OVER (PARTITION BY l.c, l.o, l.u ORDER BY l.h), "
            f"{earlier}, -1) FROM levels l"
        ),
        {"a_ts": d.timestamp_param(start), "b_ts": d.timestamp_param(end)},
    )


async def _count_returns(session: AsyncSession, a: str, params: dict[str, Any], sign: int) -> None:
    """Add `sign` x the driver rows at hours >= `a` whose previous hour is before `a` to the gap-0 count of that
    previous hour: +1 before those rows are replaced, -1 once their replacements are in."""
    await session.execute(
        text(
            f"""INSERT INTO analytics_driver_gaps (country, operator, hour, gap, n)
            SELECT country, operator, prev_hour, 0, {sign} * COUNT(*) FROM analytics_driver_hours
            WHERE hour >= {a} AND prev_hour >= 0 AND prev_hour < {a} GROUP BY country, operator, prev_hour
            ON CONFLICT (country, operator, hour, gap) DO UPDATE SET n = analytics_driver_gaps.n + excluded.n"""
        ),
        params,
    )


async def _driver_gaps(session: AsyncSession, a: str, params: dict[str, Any]) -> None:
    """The driver gaps of the driver hours >= `a` (see models.py), and their returns to earlier hours."""
    cap = GAP_CAP * HOUR
    await session.execute(
        text(
            f"""INSERT INTO analytics_driver_gaps (country, operator, hour, gap, n)
            SELECT country, operator, hour, gap, SUM(n) FROM (
                SELECT country, operator, hour, CASE WHEN prev_hour < 0 OR hour - prev_hour >= {cap} THEN {GAP_CAP}
                    ELSE CAST((hour - prev_hour) / {HOUR} AS INTEGER) END AS gap, 1 AS n
                FROM analytics_driver_hours WHERE hour >= {a}
                UNION ALL
                SELECT country, operator, prev_hour, 0, -1 FROM analytics_driver_hours WHERE prev_hour >= {a}) g
            GROUP BY country, operator, hour, gap"""
        ),
        params,
    )
    await _count_returns(session, a, params, sign=-1)


async def _save_state(session: AsyncSession, through: int, now: datetime) -> None:
    params = {"id": STATE_ID, "through": through, "now": now}
    updated = await session.execute(
        text("UPDATE analytics_rollup_state SET rolled_through = :through, last_run_at = :now WHERE id = :id"), params
    )
    if not updated.rowcount:
        await session.execute(
            text("INSERT INTO analytics_rollup_state (id, rolled_through, last_run_at) VALUES (:id, :through, :now)"),
            params,
        )


async def rebuild(session: AsyncSession, *, now: datetime) -> dict[str, int]:
    """Recompute every rollup from all sessions. The caller commits."""
    through = await _close_limit(session, now)
    first = _as_epoch(await _scalar(session, "SELECT MIN(started_at) FROM charging_sessions"))
    start = floor_to(first, HOUR) if first is not None else through
    await session.execute(text("DELETE FROM analytics_station_currencies"))
    rows = await recompute(session, start=0, end=through if first is not None else 0, now=now)
    await _save_state(session, through, now)
    for table in ROLLUP_TABLES:  # fresh statistics for the planner after a bulk rewrite
        await session.execute(text(f"ANALYZE {table}"))
    return {"from": start, "through": through, "rows": rows}


async def refresh(session: AsyncSession, *, now: datetime) -> dict[str, int]:
    """The incremental step: roll up newly closed hours and re-roll hours touched since the last run."""
    state = (
        await session.execute(
            text("SELECT rolled_through, last_run_at FROM analytics_rollup_state WHERE id = :id"), {"id": STATE_ID}
        )
    ).first()
    if state is None:
        return await rebuild(session, now=now)
    previous, last_run = int(state[0]), _as_epoch(state[1])
    through = await _close_limit(session, now)
    start = min(previous, through)
    if last_run is not None:
        d = dialect_of(session)
        since = d.timestamp_param(last_run - int(LATE_MARGIN.total_seconds()))
        touched = _as_epoch(
            await _scalar(
                session,
                "SELECT MIN(started_at) FROM charging_sessions WHERE started_at >= :since OR ended_at >= :since",
                {"since": since},
            )
        )
        if touched is not None:
            start = min(start, floor_to(touched, HOUR))
    rows = await recompute(session, start=start, end=through, now=now)
    await _save_state(session, through, now)
    return {"from": start, "through": through, "rows": rows}

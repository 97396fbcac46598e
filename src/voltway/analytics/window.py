"""Time windows, time zones and the SQL dialect helpers shared by the analytics queries.

Every time in the analytics SQL is a UTC epoch second. A window is half-open, `[start, end)`, and aligned to
whole UTC hours (`from` rounded down, `to` rounded up), so that its closed part can be read from the hourly
rollups exactly.

Local time in SQL:
- PostgreSQL: `to_timestamp(t) AT TIME ZONE :tz` (the server's tz database).
- SQLite has no tz database: Python (zoneinfo) lists the UTC offset intervals of the zone over the window
  (a handful: one per DST change) and local time is `t + CASE WHEN t < :t1 THEN :o0 WHEN ... ELSE :on END`.

Rollups are bucketed by UTC hour, which is exact for a zone whose offsets (and offset changes) fall on whole
hours. For other zones (India +05:30, Nepal +05:45, Lord Howe's half-hour DST) the window is computed from raw
rows, split at 15-minute boundaries instead of hours (`Window.rollups_exact`, `Window.granularity`).
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from voltway.core.db import stored_time
from voltway.core.errors import InvalidInput

HOUR = 3600
DAY = 86400
QUARTER = 900
DEFAULT_DAYS = 30
MAX_DAYS = 3660


def epoch(moment: datetime) -> int:
    return int(moment.timestamp()) if moment.tzinfo else int(moment.replace(tzinfo=UTC).timestamp())


def floor_to(t: int, step: int) -> int:
    return t - t % step


def ceil_to(t: int, step: int) -> int:
    return -(-t // step) * step


def parse_tz(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(
            f"unknown time zone {name!r}: use an IANA name such as Europe/Berlin",
            details=[{"field": "tz", "in": "query", "message": "unknown time zone"}],
        ) from exc


def offset_at(zone: ZoneInfo, t: int) -> int:
    offset = datetime.fromtimestamp(t, UTC).astimezone(zone).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def offset_intervals(zone: ZoneInfo, start: int, end: int) -> list[tuple[int, int]]:
    """[(from_t, offset)] covering [start, end): each entry's offset holds until the next entry's from_t.

    Offsets are sampled hourly and each change is located to the second by bisection."""
    intervals = [(start, offset_at(zone, start))]
    t = start
    while t < end:
        nxt = min(t + HOUR, end)
        if offset_at(zone, nxt) != intervals[-1][1]:
            lo, hi = t, nxt  # offset(lo) == current, offset(hi) != current
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if offset_at(zone, mid) == intervals[-1][1]:
                    lo = mid
                else:
                    hi = mid
            intervals.append((hi, offset_at(zone, hi)))
        t = nxt
    return intervals


@dataclass(frozen=True)
class Window:
    """An analytics time window in a time zone; `start`/`end` are UTC epoch seconds on whole hours."""

    start: int
    end: int
    now: int
    zone: ZoneInfo
    offsets: list[tuple[int, int]] = field(default_factory=list)

    @property
    def tz(self) -> str:
        return self.zone.key

    @property
    def rollups_exact(self) -> bool:
        return all(t % HOUR == 0 and o % HOUR == 0 for t, o in self.offsets[1:]) and self.offsets[0][1] % HOUR == 0

    @property
    def granularity(self) -> int:
        """The step at which raw sessions are split so that each piece lies within one local hour."""
        return HOUR if self.rollups_exact else QUARTER

    @property
    def measured_end(self) -> int:
        """Occupancy is measured up to now: a window reaching into the future is not diluted by it."""
        return max(self.start, min(self.end, self.now))

    def shifted(self, seconds: int) -> "Window":
        return make_window(self.start - seconds, self.end - seconds, self.now, self.zone)

    def local_seconds_by(self, key: Any) -> dict[int, int]:
        """Seconds of [start, measured_end) falling in each local bucket `key(local_epoch)` (calendar only)."""
        out: dict[int, int] = {}
        step = self.granularity
        t = self.start
        end = self.measured_end
        while t < end:
            nxt = min(floor_to(t, step) + step, end)
            bucket = key(t + self.offset(t))
            out[bucket] = out.get(bucket, 0) + nxt - t
            t = nxt
        return out

    def offset(self, t: int) -> int:
        current = self.offsets[0][1]
        for since, off in self.offsets:
            if t >= since:
                current = off
        return current

    def local_date(self, local_day: int) -> str:
        return (datetime(1970, 1, 1) + timedelta(days=local_day)).date().isoformat()


def make_window(start: int, end: int, now: int, zone: ZoneInfo) -> Window:
    start, end = floor_to(start, HOUR), ceil_to(end, HOUR)
    # Offsets are listed a day beyond both ends: raw pieces and the previous period may reach there.
    return Window(start, end, now, zone, offset_intervals(zone, start - DAY, end + DAY))


def resolve_window(
    *,
    from_: datetime | None,
    to: datetime | None,
    days: int | None,
    tz: str,
    now: datetime,
) -> Window:
    """The window asked for: `from`/`to` (naive times are UTC), or the last `days` days (default 30) up to `to`
    (default now)."""
    zone = parse_tz(tz)
    now_t = epoch(now)
    if from_ is not None and days is not None:
        raise InvalidInput(
            "give either from or days, not both", details=[{"field": "days", "in": "query", "message": "conflict"}]
        )
    end = epoch(to) if to is not None else now_t
    if from_ is not None:
        start = epoch(from_)
    else:
        start = end - (days if days is not None else DEFAULT_DAYS) * DAY
    if start >= end:
        raise InvalidInput("from must be before to", details=[{"field": "from", "in": "query", "message": "after to"}])
    if end - start > MAX_DAYS * DAY:
        raise InvalidInput(
            f"the window is limited to {MAX_DAYS} days",
            details=[{"field": "from", "in": "query", "message": "window too long"}],
        )
    return make_window(start, end, now_t, zone)


# ------------------------------------------------------------------------------------------ dialects
class Dialect:
    """The few SQL expressions that differ between SQLite and PostgreSQL."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sqlite = name == "sqlite"

    def epoch(self, column: str) -> str:
        if self.sqlite:
            return f"CAST(strftime('%s', {column}) AS INTEGER)"
        return f"CAST(FLOOR(EXTRACT(EPOCH FROM {column})) AS BIGINT)"

    def greatest(self, a: str, b: str) -> str:
        return f"MAX({a}, {b})" if self.sqlite else f"GREATEST({a}, {b})"

    def least(self, a: str, b: str) -> str:
        return f"MIN({a}, {b})" if self.sqlite else f"LEAST({a}, {b})"

    def ratio(self, num: str, den: str, digits: int) -> str:
        """num / den rounded half away from zero to `digits` decimals (0 when den is 0), as SQL."""
        cast = "REAL" if self.sqlite else "NUMERIC"
        return f"(CASE WHEN {den} > 0 THEN ROUND(CAST({num} AS {cast}) / {den}, {digits}) ELSE 0 END)"

    def unindexed(self, column: str) -> str:
        """`column` in a condition that must not drive the plan (SQLite's unary plus; PostgreSQL plans by stats)."""
        return f"+{column}" if self.sqlite else column

    def sessions_first_join(self) -> str:
        """Join `stations s` to `charging_sessions cs`, scanning the sessions (by time) first: SQLite's CROSS JOIN
        keeps the written order; otherwise a station filter could drive a scan of all their sessions."""
        return f"{'CROSS JOIN' if self.sqlite else 'JOIN'} stations s ON s.id = cs.station_id"

    def timestamp_param(self, t: int) -> Any:
        """A UTC epoch second as a parameter comparable with a timestamp column (SQLite stores text)."""
        return stored_time(datetime.fromtimestamp(t, UTC), sqlite=self.sqlite)

    def local(self, column: str, window: Window, params: dict[str, Any]) -> str:
        """`column` (UTC epoch seconds) as local epoch seconds in the window's zone; adds its parameters."""
        if not self.sqlite:
            params["tz"] = window.tz
            return f"CAST(EXTRACT(EPOCH FROM (to_timestamp({column}) AT TIME ZONE CAST(:tz AS TEXT))) AS BIGINT)"
        if len(window.offsets) == 1:
            params["tz_o0"] = window.offsets[0][1]
            return f"({column} + :tz_o0)"
        cases = []
        for i, (_since, off) in enumerate(window.offsets):
            params[f"tz_o{i}"] = off
            if i + 1 < len(window.offsets):
                params[f"tz_t{i + 1}"] = window.offsets[i + 1][0]
                cases.append(f"WHEN {column} < :tz_t{i + 1} THEN :tz_o{i}")
        last = len(window.offsets) - 1
        return f"({column} + CASE {' '.join(cases)} ELSE :tz_o{last} END)"

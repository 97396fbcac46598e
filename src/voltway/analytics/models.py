"""Analytics rollup tables, derived from `charging_sessions` by `analytics/rollups.py`.

Times are UTC epoch seconds of the start of an hour (`hour`), so that any time zone whose offsets are whole
hours can be bucketed from them exactly. Amounts are integers (Wh, cents) so that rollups and raw rows add up
to the same exact figures. `currency` is the session's ISO 4217 code, '' when unknown.

- `analytics_station_hours`: per station, hour and currency (the base; serves station/bbox filters).
- `analytics_cube_hours`: the same summed per hour for every country x operator ('*' = all), so a window with
  no station/bbox filter reads at most one row per hour and currency.
- `analytics_station_totals`: running totals per station and currency through the end of each hour with
  activity, so a station's total over any hour-aligned window is two index seeks (popular, revenue, utilization).
- `analytics_station_currencies`: the (station, currency) pairs present in the totals, with their running totals
  through `rolled_through` (the end total of any window reaching it, without a seek) and their first hour (a
  window starting no later has no start total to look up).
- `analytics_driver_hours`: per country x operator cell ('*' = all), each hour a driver started a session in,
  with the driver's previous such hour in the cell (-1 for none): the drivers active in an hour range [a, b)
  are the rows in it whose previous hour is before a, so a distinct count is a plain count of an index range.
- `analytics_driver_gaps`: per cube cell and hour, the driver rows of `analytics_driver_hours` counted by `gap`,
  the hours since the driver's previous active hour (capped at GAP_CAP: none, or GAP_CAP or more); and at gap 0,
  minus the number of rows whose previous hour is this one. A driver of a range [lo, hi) no longer than GAP_CAP
  hours is new in it at hour h when gap > (h - lo) / 3600, so its distinct drivers are a sum of at most
  GAP_CAP + 1 rows per hour; and SUM(n) over the hours >= x counts the drivers active since x.
- `analytics_review_hours`: reviews per station and UTC hour of their last update (count, sum of ratings, 1-5
  distribution), kept by triggers on `reviews` (migration 0008a), so always current, not part of the rollup job.
- `analytics_rollup_state`: one row; hours before `rolled_through` are rolled up.
"""

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from voltway.core.db import Base

ALL = "*"
GAP_CAP = 25  # hours: the longest local day
# On SQLite the rollups are stored in primary-key order (WITHOUT ROWID): a lookup by key is one b-tree search.
CLUSTERED = {"sqlite_with_rowid": False}


class _Measures:
    sessions: Mapped[int] = mapped_column(Integer)
    energy_wh: Mapped[int] = mapped_column(BigInteger)
    revenue_cents: Mapped[int] = mapped_column(BigInteger)
    occupied_s: Mapped[int] = mapped_column(BigInteger)


class StationHour(_Measures, Base):
    __tablename__ = "analytics_station_hours"
    __table_args__ = CLUSTERED

    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id", ondelete="CASCADE"), primary_key=True)
    hour: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)


class CubeHour(_Measures, Base):
    __tablename__ = "analytics_cube_hours"
    __table_args__ = CLUSTERED

    country: Mapped[str] = mapped_column(String(2), primary_key=True)
    operator: Mapped[str] = mapped_column(String(255), primary_key=True)
    hour: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)


class StationTotal(_Measures, Base):
    __tablename__ = "analytics_station_totals"
    __table_args__ = CLUSTERED

    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id", ondelete="CASCADE"), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    hour: Mapped[int] = mapped_column(BigInteger, primary_key=True)


class StationCurrency(_Measures, Base):
    __tablename__ = "analytics_station_currencies"
    __table_args__ = CLUSTERED

    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id", ondelete="CASCADE"), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    first_hour: Mapped[int] = mapped_column(BigInteger)


class DriverHour(Base):
    __tablename__ = "analytics_driver_hours"
    __table_args__ = (
        Index("ix_analytics_driver_hours_country_operator_hour_prev_hour", "country", "operator", "hour", "prev_hour"),
        CLUSTERED,
    )

    country: Mapped[str] = mapped_column(String(2), primary_key=True)
    operator: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hour: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    prev_hour: Mapped[int] = mapped_column(BigInteger)


class DriverGap(Base):
    __tablename__ = "analytics_driver_gaps"
    __table_args__ = CLUSTERED

    country: Mapped[str] = mapped_column(String(2), primary_key=True)
    operator: Mapped[str] = mapped_column(String(255), primary_key=True)
    hour: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    gap: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)


class ReviewHour(Base):
    __tablename__ = "analytics_review_hours"
    __table_args__ = CLUSTERED

    station_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hour: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)
    total: Mapped[int] = mapped_column(BigInteger)
    d1: Mapped[int] = mapped_column(BigInteger)
    d2: Mapped[int] = mapped_column(BigInteger)
    d3: Mapped[int] = mapped_column(BigInteger)
    d4: Mapped[int] = mapped_column(BigInteger)
    d5: Mapped[int] = mapped_column(BigInteger)


class RollupState(Base):
    __tablename__ = "analytics_rollup_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rolled_through: Mapped[int] = mapped_column(BigInteger)
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

"""Analytics: latest running totals per station, driver-gap counts per hour, review hours (analytics/models.py).

- `analytics_station_currencies` gains the running totals through `rolled_through` and the first hour with
  activity, so a window reaching the rolled-up end reads each station's end total without a seek, and a window
  starting before a station's first activity needs no start total (popular, revenue, utilization).
- `analytics_driver_gaps`: per cube cell and hour, the driver rows counted by the hours since the driver's
  previous active hour (capped), so a day's distinct drivers are a sum over at most 25 rows per hour instead
  of one row per driver.
- `analytics_review_hours`: reviews counted per station and UTC hour of their last update (count, sum, 1-5
  distribution), kept by triggers on `reviews` in the same transaction, so rating statistics sum these rows
  instead of grouping every review.

All three are filled here from the existing rollups and reviews; `voltway analytics rebuild` computes the same.

Revision ID: 0008a
Revises: 0008
Create Date: 2026-11-28
"""

import warnings
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008a"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MEASURES = ("sessions", "energy_wh", "revenue_cents", "occupied_s")
GAP_CAP = 25  # hours; keep in step with analytics/models.py
REVIEW_COUNTS = ("n", "total", "d1", "d2", "d3", "d4", "d5")


def _review_counts(row: str, sign: str) -> list[str]:
    """The REVIEW_COUNTS of one review `row` (NEW or OLD), times `sign`."""
    return [sign, f"{sign} * {row}.rating", *(f"{sign} * (CASE WHEN {row}.rating = {i} THEN 1 ELSE 0 END)"
                                               for i in range(1, 6))]


def _review_hour(row: str, sqlite: bool) -> str:
    if sqlite:
        return f"(CAST(strftime('%s', {row}.updated_at) AS INTEGER) / 3600 * 3600)"
    return f"(CAST(FLOOR(EXTRACT(EPOCH FROM {row}.updated_at)) AS BIGINT) / 3600 * 3600)"


def _review_statements(row: str, sign: str, sqlite: bool) -> str:
    """Add (sign '1') or take away (sign '-1') review `row` in its hour; an hour left empty is deleted."""
    hour = _review_hour(row, sqlite)
    values = ", ".join(_review_counts(row, sign))
    updates = ", ".join(f"{c} = analytics_review_hours.{c} + excluded.{c}" for c in REVIEW_COUNTS)
    upsert = (
        f"INSERT INTO analytics_review_hours (station_id, hour, {', '.join(REVIEW_COUNTS)}) "
        f"VALUES ({row}.station_id, {hour}, {values}) ON CONFLICT (station_id, hour) DO UPDATE SET {updates};"
    )
    if sign == "1":
        return upsert
    return (f"{upsert} DELETE FROM analytics_review_hours "
            f"WHERE station_id = {row}.station_id AND hour = {hour} AND n = 0;")


def upgrade() -> None:
    for m in MEASURES:
        column_type = sa.Integer() if m == "sessions" else sa.BigInteger()
        op.add_column("analytics_station_currencies", sa.Column(m, column_type, nullable=False, server_default="0"))
    op.add_column("analytics_station_currencies", sa.Column("first_hour", sa.BigInteger(), nullable=False,
                                                            server_default="0"))
    key = ("t.station_id = analytics_station_currencies.station_id "
           "AND t.currency = analytics_station_currencies.currency")
    op.execute(f"DELETE FROM analytics_station_currencies WHERE NOT EXISTS "
               f"(SELECT 1 FROM analytics_station_totals t WHERE {key})")
    op.execute(
        f"""UPDATE analytics_station_currencies SET ({', '.join(MEASURES)}) = (
            SELECT {', '.join('t.' + m for m in MEASURES)} FROM analytics_station_totals t WHERE {key}
            ORDER BY t.hour DESC LIMIT 1),
            first_hour = (SELECT MIN(t.hour) FROM analytics_station_totals t WHERE {key})"""
    )
    op.create_table(
        "analytics_driver_gaps",
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("operator", sa.String(255), nullable=False),
        sa.Column("hour", sa.BigInteger(), nullable=False),
        sa.Column("gap", sa.Integer(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("country", "operator", "hour", "gap", name="pk_analytics_driver_gaps"),
        sqlite_with_rowid=False,
    )
    op.execute(
        f"""INSERT INTO analytics_driver_gaps (country, operator, hour, gap, n)
        SELECT country, operator, hour, gap, SUM(n) FROM (
            SELECT country, operator, hour,
                CASE WHEN prev_hour < 0 OR hour - prev_hour >= {GAP_CAP * 3600} THEN {GAP_CAP}
                     ELSE CAST((hour - prev_hour) / 3600 AS INTEGER) END AS gap, 1 AS n
            FROM analytics_driver_hours
            UNION ALL
            SELECT country, operator, prev_hour, 0, -1 FROM analytics_driver_hours WHERE prev_hour >= 0) g
        GROUP BY country, operator, hour, gap"""
    )

    op.create_table(
        "analytics_review_hours",
        sa.Column("station_id", sa.Integer(), nullable=False),
        sa.Column("hour", sa.BigInteger(), nullable=False),
        *(sa.Column(c, sa.BigInteger(), nullable=False) for c in REVIEW_COUNTS),
        sa.PrimaryKeyConstraint("station_id", "hour", name="pk_analytics_review_hours"),
        sqlite_with_rowid=False,
    )
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.execute(
        f"""INSERT INTO analytics_review_hours (station_id, hour, {', '.join(REVIEW_COUNTS)})
        SELECT r.station_id, {_review_hour("r", sqlite)}, {', '.join(f"SUM({v})" for v in _review_counts("r", "1"))}
        FROM reviews r GROUP BY r.station_id, {_review_hour("r", sqlite)}"""
    )
    for table in ("analytics_station_currencies", "analytics_driver_gaps", "analytics_review_hours"):
        op.execute(f"ANALYZE {table}")  # statistics for the planner: the tables were just filled
    if sqlite:
        op.execute(f"CREATE TRIGGER analytics_review_hours_insert AFTER INSERT ON reviews "
                   f"BEGIN {_review_statements('NEW', '1', True)} END")
        op.execute(f"CREATE TRIGGER analytics_review_hours_update AFTER UPDATE OF station_id, rating, updated_at "
                   f"ON reviews BEGIN {_review_statements('OLD', '-1', True)} "
                   f"{_review_statements('NEW', '1', True)} END")
        op.execute(f"CREATE TRIGGER analytics_review_hours_delete AFTER DELETE ON reviews "
                   f"BEGIN {_review_statements('OLD', '-1', True)} END")
    else:
        op.execute(
            f"""CREATE FUNCTION analytics_review_hours_apply() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP <> 'INSERT' THEN {_review_statements('OLD', '-1', False)} END IF;
                IF TG_OP <> 'DELETE' THEN {_review_statements('NEW', '1', False)} END IF;
                RETURN NULL;
            END $$"""
        )
        op.execute("CREATE TRIGGER analytics_review_hours AFTER INSERT OR UPDATE OR DELETE ON reviews "
                   "FOR EACH ROW EXECUTE FUNCTION analytics_review_hours_apply()")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for event in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER analytics_review_hours_{event}")
    else:
        op.execute("DROP TRIGGER analytics_review_hours ON reviews")
        op.execute("DROP FUNCTION analytics_review_hours_apply()")
    op.drop_table("analytics_review_hours")
    op.drop_table("analytics_driver_gaps")
    # On SQLite the batch copies the table, reflecting the tables its foreign keys name; SQLAlchemy cannot
    # reflect the expression indexes of `stations` (0011) and says so. That table is only read here.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index", sa.exc.SAWarning)
        with op.batch_alter_table("analytics_station_currencies") as batch:
            for m in ("first_hour", *reversed(MEASURES)):
                batch.drop_column(m)

"""Analytics rollups: station hours, the country x operator cube, running station totals, rollup state.

Revision ID: 0005
Revises: 0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = ("analytics",)
depends_on: str | Sequence[str] | None = "0003"


# On SQLite the rollups are stored in primary-key order (WITHOUT ROWID): a lookup by key is one b-tree search.
CLUSTERED = {"sqlite_with_rowid": False}


def _measures() -> list[sa.Column]:
    return [
        sa.Column("sessions", sa.Integer(), nullable=False),
        sa.Column("energy_wh", sa.BigInteger(), nullable=False),
        sa.Column("revenue_cents", sa.BigInteger(), nullable=False),
        sa.Column("occupied_s", sa.BigInteger(), nullable=False),
    ]


def _station_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["station_id"], ["stations.id"], name=f"fk_{table}_station_id_stations", ondelete="CASCADE"
    )


def upgrade() -> None:
    # The open tail of a window (sessions still running or ended since the last rollup) is found by end time.
    op.create_index("ix_charging_sessions_ended_at", "charging_sessions", ["ended_at"])
    # Distinct drivers (trends) are counted from the sessions: a covering index serves the window scan.
    op.create_index(
        "ix_charging_sessions_started_at_user_id", "charging_sessions", ["started_at", "user_id", "station_id"]
    )
    op.create_table(
        "analytics_station_hours",
        sa.Column("station_id", sa.Integer(), nullable=False),
        sa.Column("hour", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        *_measures(),
        sa.PrimaryKeyConstraint("station_id", "hour", "currency", name="pk_analytics_station_hours"),
        _station_fk("analytics_station_hours"),
        **CLUSTERED,
    )
    op.create_table(
        "analytics_cube_hours",
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("operator", sa.String(255), nullable=False),
        sa.Column("hour", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        *_measures(),
        sa.PrimaryKeyConstraint("country", "operator", "hour", "currency", name="pk_analytics_cube_hours"),
        **CLUSTERED,
    )
    op.create_table(
        "analytics_station_totals",
        sa.Column("station_id", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("hour", sa.BigInteger(), nullable=False),
        *_measures(),
        sa.PrimaryKeyConstraint("station_id", "currency", "hour", name="pk_analytics_station_totals"),
        _station_fk("analytics_station_totals"),
        **CLUSTERED,
    )
    op.create_table(
        "analytics_station_currencies",
        sa.Column("station_id", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.PrimaryKeyConstraint("station_id", "currency", name="pk_analytics_station_currencies"),
        _station_fk("analytics_station_currencies"),
        **CLUSTERED,
    )
    op.create_table(
        "analytics_rollup_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rolled_through", sa.BigInteger(), nullable=False),
        sa.Column("last_run_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_analytics_rollup_state"),
    )


def downgrade() -> None:
    for table in (
        "analytics_rollup_state",
        "analytics_station_currencies",
        "analytics_station_totals",
        "analytics_cube_hours",
        "analytics_station_hours",
    ):
        op.drop_table(table)
    op.drop_index("ix_charging_sessions_started_at_user_id", table_name="charging_sessions")
    op.drop_index("ix_charging_sessions_ended_at", table_name="charging_sessions")

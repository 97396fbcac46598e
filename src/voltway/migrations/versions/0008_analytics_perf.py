"""Analytics performance: driver hours for distinct driver counts, a covering index for rating statistics.

- `analytics_driver_hours` (see analytics/models.py): trends count the distinct drivers of a range as the
  rows in it whose previous active hour lies before it, an index-only count instead of a DISTINCT over sessions.
- `ratings` groups reviews per station (and operator), optionally only those updated in a window: with
  (station_id, updated_at, rating) every review is read from the index alone, never from the table.

Revision ID: 0008
Revises: 0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = ("analytics_perf",)
depends_on: str | Sequence[str] | None = "0005"


def upgrade() -> None:
    op.create_table(
        "analytics_driver_hours",
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("operator", sa.String(255), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("hour", sa.BigInteger(), nullable=False),
        sa.Column("prev_hour", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("country", "operator", "user_id", "hour", name="pk_analytics_driver_hours"),
        sqlite_with_rowid=False,
    )
    op.create_index(
        "ix_analytics_driver_hours_country_operator_hour_prev_hour",
        "analytics_driver_hours",
        ["country", "operator", "hour", "prev_hour"],
    )
    op.create_index("ix_reviews_station_id_updated_at_rating", "reviews", ["station_id", "updated_at", "rating"])


def downgrade() -> None:
    op.drop_index("ix_reviews_station_id_updated_at_rating", table_name="reviews")
    op.drop_table("analytics_driver_hours")

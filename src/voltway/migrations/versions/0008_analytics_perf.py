"""Analytics performance: a covering index for the rating statistics.

`ratings` groups reviews per station (and operator), optionally only those updated in a window: with
(station_id, updated_at, rating) every review is read from the index alone, never from the table.

Revision ID: 0008
Revises: 0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = ("analytics_perf",)
depends_on: str | Sequence[str] | None = "0005"


def upgrade() -> None:
    op.create_index("ix_reviews_station_id_updated_at_rating", "reviews", ["station_id", "updated_at", "rating"])


def downgrade() -> None:
    op.drop_index("ix_reviews_station_id_updated_at_rating", table_name="reviews")

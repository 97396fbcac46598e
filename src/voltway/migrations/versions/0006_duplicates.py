"""Duplicate detection: an index on stations.updated_at, to find the stations an import just wrote.

Revision ID: 0006
Revises: 0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = ("duplicates",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_stations_updated_at", "stations", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_stations_updated_at", table_name="stations")

"""Deferred index builds: `deferred_schema` remembers the SQL of the indexes and triggers a first load dropped.

A first import into an empty SQLite database writes its rows without the stations' secondary indexes and
R*Tree trigger, then re-creates them from this table (`core/deferred_indexes.py`). PostgreSQL has no use for it.

Revision ID: 0013
Revises: 0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = ("deferred_indexes",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("CREATE TABLE deferred_schema (position INTEGER PRIMARY KEY, name TEXT NOT NULL, sql TEXT NOT NULL)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("DROP TABLE deferred_schema")

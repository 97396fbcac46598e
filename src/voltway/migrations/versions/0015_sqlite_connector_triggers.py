"""Bulk writes on SQLite: the import engine drops the connector triggers for its own writes instead of idling them.

With 0012 the insert and delete triggers of `connectors` did nothing while `connectors_json_writer` held a row,
which the engine's transaction inserted. A trigger that does nothing still costs its call: ~1 µs a connector
row, 0.6 s of a first load's 600,000. The engine now drops both triggers inside its transaction, writes its
connectors and creates them again from their stored definitions before it commits (`ingest/upsert.py`); as no
other writer runs during that transaction and nobody sees its uncommitted schema, every other write keeps the
refresh. The guard and its table go. PostgreSQL: nothing changes.

Revision ID: 0015
Revises: 0012
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WRITER_TABLE = "connectors_json_writer"
GUARD = f"WHEN NOT EXISTS (SELECT 1 FROM {WRITER_TABLE}) "
# Each trigger and the text its guard follows.
TRIGGERS = {
    "connectors_json_insert": "AFTER INSERT ON connectors ",
    "connectors_json_delete": "AFTER DELETE ON connectors ",
}


def _rewrite(*, guarded: bool) -> None:
    """Each connector trigger created again from its stored definition, with the guard taken out or put back."""
    conn = op.get_bind()
    for name, anchor in TRIGGERS.items():
        stored = conn.exec_driver_sql(f"SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = '{name}'")
        definition = stored.scalar_one()
        old, new = (anchor, anchor + GUARD) if guarded else (anchor + GUARD, anchor)
        assert old in definition, f"{name}: unexpected definition {definition!r}"
        op.execute(f"DROP TRIGGER {name}")
        op.execute(definition.replace(old, new, 1))


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    _rewrite(guarded=False)
    op.execute(f"DROP TABLE {WRITER_TABLE}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(f"CREATE TABLE {WRITER_TABLE} (active INTEGER NOT NULL)")
    _rewrite(guarded=True)

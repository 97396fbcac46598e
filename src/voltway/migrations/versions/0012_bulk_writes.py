"""Bulk writes on SQLite: the import engine writes `connectors_json` itself, and unmoved stations keep their R*Tree
entry.

1. With 0009 the engine marked the stations it wrote `'pending'` and re-rendered each of them with one more
   UPDATE before committing. Now it renders the JSON in Python, with the connector ids it allots, and writes it
   with the station row. While it writes, its transaction holds a row in `connectors_json_writer`; the insert
   and delete triggers of `connectors` do nothing while that table has a row. SQLite has one writer at a time
   and nobody else sees an uncommitted row, so every other writer keeps the per-row refresh; the engine deletes
   the row before it commits (a failed chunk rolls it back).
2. `stations_rtree_update` (0001) fired whenever an UPDATE named the coordinates, as every upsert does, and
   re-inserted the station's R*Tree entry even where nothing moved; it now fires only for a changed position.

PostgreSQL has no R*Tree and its connector triggers are per statement: nothing changes there.

Revision ID: 0012
Revises: 0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = ("bulk_writes",)
depends_on: str | Sequence[str] | None = "0009"

FIELDS = ("id", "type", "type_name", "power_kw", "current", "quantity", "status")
PAIRS = ", ".join(f"'{name}', c.{name}" for name in FIELDS)
WRITER_TABLE = "connectors_json_writer"
MOVED = "WHEN new.latitude IS NOT old.latitude OR new.longitude IS NOT old.longitude "


def _refresh(station_id: str) -> str:
    return (
        f"UPDATE stations SET connectors_json = (SELECT json_group_array(json_object({PAIRS})) "
        f"FROM (SELECT * FROM connectors WHERE station_id = {station_id} ORDER BY id) c) WHERE id = {station_id};"
    )


def _guard(row: str, *, writer: bool) -> str:
    if writer:
        return f"NOT EXISTS (SELECT 1 FROM {WRITER_TABLE})"
    return f"(SELECT connectors_json FROM stations WHERE id = {row}.station_id) IS NOT 'pending'"  # as in 0009


def _replace(*, upgraded: bool) -> None:
    for event, row in (("INSERT", "new"), ("DELETE", "old")):
        op.execute(f"DROP TRIGGER connectors_json_{event.lower()}")
        op.execute(
            f"CREATE TRIGGER connectors_json_{event.lower()} AFTER {event} ON connectors "
            f"WHEN {_guard(row, writer=upgraded)} BEGIN {_refresh(f'{row}.station_id')} END"
        )
    op.execute("DROP TRIGGER stations_rtree_update")
    op.execute(
        "CREATE TRIGGER stations_rtree_update AFTER UPDATE OF latitude, longitude ON stations "
        f"{MOVED if upgraded else ''}BEGIN UPDATE station_rtree SET min_lat = new.latitude, max_lat = new.latitude, "
        "min_lon = new.longitude, max_lon = new.longitude WHERE id = new.id; END"
    )


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(f"CREATE TABLE {WRITER_TABLE} (active INTEGER NOT NULL)")
    _replace(upgraded=True)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    _replace(upgraded=False)
    op.execute(f"DROP TABLE {WRITER_TABLE}")

"""Search: bulk writers render `connectors_json` once per station instead of once per connector (SQLite).

The row triggers of 0007 re-render a station's connectors on every connector row, so a station written with k
connectors is rendered k times (and k more when its old connectors are deleted). The import engine marks the
stations it writes with `connectors_json = 'pending'` inside its transaction; the insert and delete triggers
skip those, and the engine renders each of them once, set-based, before it commits, so no reader ever sees the
mark. Every other writer keeps the per-row refresh. PostgreSQL's triggers are per statement already.

Revision ID: 0009
Revises: 0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = ("search_bulk",)
depends_on: str | Sequence[str] | None = "0007"

FIELDS = ("id", "type", "type_name", "power_kw", "current", "quantity", "status")
PAIRS = ", ".join(f"'{name}', c.{name}" for name in FIELDS)


def _refresh(station_id: str) -> str:
    return (
        f"UPDATE stations SET connectors_json = (SELECT json_group_array(json_object({PAIRS})) "
        f"FROM (SELECT * FROM connectors WHERE station_id = {station_id} ORDER BY id) c) WHERE id = {station_id};"
    )


def _trigger(event: str, row: str, guarded: bool) -> str:
    guard = f" WHEN (SELECT connectors_json FROM stations WHERE id = {row}.station_id) IS NOT 'pending'" if guarded else ""
    return (
        f"CREATE TRIGGER connectors_json_{event.lower()} AFTER {event} ON connectors{guard} "
        f"BEGIN {_refresh(f'{row}.station_id')} END"
    )


def _replace(guarded: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for event, row in (("INSERT", "new"), ("DELETE", "old")):
        op.execute(f"DROP TRIGGER connectors_json_{event.lower()}")
        op.execute(_trigger(event, row, guarded))


def upgrade() -> None:
    _replace(guarded=True)


def downgrade() -> None:
    _replace(guarded=False)

"""Bulk writes on PostgreSQL: the import engine writes `connectors_json` itself, as it does on SQLite (0012).

The statement triggers of 0007 rendered the JSON after each chunk's connector insert by updating every station
of the chunk once more: a second version of each new row and of its index entries, about 35% of an import's
time. The engine now renders the JSON in Python, with connector ids it takes from the sequence, and writes it
with the station row; while its transaction has `voltway.connectors_json_writer` set to 'on' (SET LOCAL, so
the setting ends with the transaction, committed or rolled back) the connector triggers do nothing. Every
other writer leaves the setting unset and keeps the refresh. SQLite: nothing changes.

Revision ID: 0014
Revises: 0001
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = ("postgresql_bulk_writes",)
depends_on: str | Sequence[str] | None = "0007"

FIELDS = ("id", "type", "type_name", "power_kw", "current", "quantity", "status")
PAIRS = ", ".join(f"'{name}', c.{name}" for name in FIELDS)
RENDERED = f"(SELECT coalesce(json_agg(json_build_object({PAIRS}) ORDER BY c.id), '[]')::text FROM connectors c WHERE c.station_id = stations.id)"
SETTING = "voltway.connectors_json_writer"


def _function(*, guarded: bool) -> str:
    guard = f"IF current_setting('{SETTING}', true) = 'on' THEN RETURN NULL; END IF;" if guarded else ""
    return f"""CREATE OR REPLACE FUNCTION connectors_json_refresh() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        {guard}
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            UPDATE stations SET connectors_json = {RENDERED} WHERE id IN (SELECT station_id FROM changed_new);
        END IF;
        IF TG_OP IN ('DELETE', 'UPDATE') THEN
            UPDATE stations SET connectors_json = {RENDERED} WHERE id IN (SELECT station_id FROM changed_old);
        END IF;
        RETURN NULL;
    END $$"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_function(guarded=True))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_function(guarded=False))

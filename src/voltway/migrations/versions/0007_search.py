"""Search: `stations.connectors_json`, the station's connectors as rendered JSON, kept in step by triggers.

A page of search results embeds this text as it is, instead of a second query for the connectors and a dict
per connector. Triggers on `connectors` re-render it on every insert, update and delete, whoever writes
(ORM, the import engine's driver SQL, status changes), so no writer can leave it stale. PostgreSQL renders
floats in their shortest form (22.0 is written 22); SQLite with 15 significant digits.

Revision ID: 0007
Revises: 0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = ("search",)
depends_on: str | Sequence[str] | None = None

FIELDS = ("id", "type", "type_name", "power_kw", "current", "quantity", "status")
PAIRS = ", ".join(f"'{name}', c.{name}" for name in FIELDS)


def sqlite_json(station_id: str) -> str:
    return (
        f"(SELECT json_group_array(json_object({PAIRS})) "
        f"FROM (SELECT * FROM connectors WHERE station_id = {station_id} ORDER BY id) c)"
    )


def postgresql_json(station_id: str) -> str:
    return (
        f"(SELECT coalesce(json_agg(json_build_object({PAIRS}) ORDER BY c.id), '[]')::text "
        f"FROM connectors c WHERE c.station_id = {station_id})"
    )


def sqlite_statements() -> list[str]:
    def refresh(station_id: str) -> str:
        return f"UPDATE stations SET connectors_json = {sqlite_json(station_id)} WHERE id = {station_id};"

    return [
        f"CREATE TRIGGER connectors_json_insert AFTER INSERT ON connectors BEGIN {refresh('new.station_id')} END",
        f"CREATE TRIGGER connectors_json_update AFTER UPDATE ON connectors BEGIN {refresh('new.station_id')} "
        f"{refresh('old.station_id')} END",
        f"CREATE TRIGGER connectors_json_delete AFTER DELETE ON connectors BEGIN {refresh('old.station_id')} END",
        f"UPDATE stations SET connectors_json = {sqlite_json('stations.id')}",
    ]


def postgresql_statements() -> list[str]:
    # Statement-level triggers with transition tables: an import of thousands of connectors re-renders each
    # station once per statement, set-based.
    statements = [
        f"""CREATE FUNCTION connectors_json_refresh() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP IN ('INSERT', 'UPDATE') THEN
                UPDATE stations SET connectors_json = {postgresql_json('stations.id')}
                WHERE id IN (SELECT station_id FROM changed_new);
            END IF;
            IF TG_OP IN ('DELETE', 'UPDATE') THEN
                UPDATE stations SET connectors_json = {postgresql_json('stations.id')}
                WHERE id IN (SELECT station_id FROM changed_old);
            END IF;
            RETURN NULL;
        END $$""",
        f"UPDATE stations SET connectors_json = {postgresql_json('stations.id')}",
    ]
    tables = {"INSERT": "NEW TABLE AS changed_new", "DELETE": "OLD TABLE AS changed_old",
              "UPDATE": "NEW TABLE AS changed_new OLD TABLE AS changed_old"}  # fmt: skip
    for event, transition in tables.items():
        statements.insert(1, (
            f"CREATE TRIGGER connectors_json_{event.lower()} AFTER {event} ON connectors "
            f"REFERENCING {transition} FOR EACH STATEMENT EXECUTE FUNCTION connectors_json_refresh()"
        ))
    return statements


def upgrade() -> None:
    op.add_column("stations", sa.Column("connectors_json", sa.Text()))
    dialect = op.get_bind().dialect.name
    for statement in sqlite_statements() if dialect == "sqlite" else postgresql_statements():
        op.execute(statement)


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for event in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER connectors_json_{event}" + ("" if sqlite else " ON connectors"))
    if not sqlite:
        op.execute("DROP FUNCTION connectors_json_refresh()")
    op.drop_column("stations", "connectors_json")

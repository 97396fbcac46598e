"""Map cells: the searchable stations counted into the cells of the clusters' grid, levels 0 to 12.

A map view at low zoom read every station of a continent (the world view: ~0.4 s at 300,000 stations, again after
every write). `map_cells` holds, per level (cells of 360 / 2**level degrees; a cell splits into four at the next
level), each non-empty cell's count, sums and bounds for each status of its stations, so such a view, of every
station or of one status ("available now"), reads a few hundred rows. Writes only mark
the level-12 cells a station leaves or enters in `map_dirty` (triggers); `stations/map_cells.py` folds them in
before a view is read. The level and its cell size are `LEAF_LEVEL` there: changing it takes a new migration.

Revision ID: 0016
Revises: 0010
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEAF_CELL = 360.0 / 2**12  # 0.087890625, exact in binary


def _cell(table: str, cast: str) -> str:
    """The level-12 (gy, gx) of the row `table` as SQL."""
    return (
        f"CAST(floor({table}.latitude / {LEAF_CELL!r}) AS {cast}), "
        f"CAST(floor({table}.longitude / {LEAF_CELL!r}) AS {cast})"
    )


# Columns whose change moves a station between cells or changes what its cell shows.
TRACKED = ("latitude", "longitude", "status", "max_power_kw", "duplicate_of_id")


def _sqlite_triggers() -> list[str]:
    changed = " OR ".join(f"old.{c} IS NOT new.{c}" for c in TRACKED)
    mark = "INSERT OR IGNORE INTO map_dirty (gy, gx) VALUES"
    return [
        f"CREATE TRIGGER stations_map_insert AFTER INSERT ON stations BEGIN {mark} ({_cell('new', 'INTEGER')}); END",
        f"CREATE TRIGGER stations_map_update AFTER UPDATE OF {', '.join(TRACKED)} ON stations WHEN {changed} "
        f"BEGIN {mark} ({_cell('old', 'INTEGER')}), ({_cell('new', 'INTEGER')}); END",
        f"CREATE TRIGGER stations_map_delete AFTER DELETE ON stations BEGIN {mark} ({_cell('old', 'INTEGER')}); END",
    ]


def _postgresql_triggers() -> list[str]:
    # Statement-level, with transition tables (an import's COPY marks its cells once). Transition tables rule out
    # a column list on UPDATE: the function compares the tracked columns itself.
    changed = " OR ".join(f"o.{c} IS DISTINCT FROM n.{c}" for c in TRACKED)
    function = f"""CREATE FUNCTION map_cells_mark() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                INSERT INTO map_dirty (gy, gx) SELECT DISTINCT {_cell('n', 'integer')} FROM changed_new n
                ON CONFLICT DO NOTHING;
            ELSIF TG_OP = 'DELETE' THEN
                INSERT INTO map_dirty (gy, gx) SELECT DISTINCT {_cell('o', 'integer')} FROM changed_old o
                ON CONFLICT DO NOTHING;
            ELSE
                INSERT INTO map_dirty (gy, gx)
                SELECT DISTINCT {_cell('p', 'integer')}
                FROM changed_old o JOIN changed_new n ON n.id = o.id
                CROSS JOIN LATERAL (VALUES (o.latitude, o.longitude), (n.latitude, n.longitude)) p (latitude, longitude)
                WHERE {changed}
                ON CONFLICT DO NOTHING;
            END IF;
            RETURN NULL;
        END $$"""
    tables = {"INSERT": "NEW TABLE AS changed_new", "DELETE": "OLD TABLE AS changed_old",
              "UPDATE": "NEW TABLE AS changed_new OLD TABLE AS changed_old"}  # fmt: skip
    return [function] + [
        f"CREATE TRIGGER stations_map_{event.lower()} AFTER {event} ON stations "
        f"REFERENCING {transition} FOR EACH STATEMENT EXECUTE FUNCTION map_cells_mark()"
        for event, transition in tables.items()
    ]


def upgrade() -> None:
    op.create_table(
        "map_cells",
        sa.Column("level", sa.SmallInteger(), primary_key=True),
        sa.Column("gy", sa.Integer(), primary_key=True),
        sa.Column("gx", sa.Integer(), primary_key=True),
        sa.Column("status", sa.String(16), primary_key=True),
        sa.Column("stations", sa.Integer(), nullable=False),
        sa.Column("min_id", sa.Integer(), nullable=False),
        sa.Column("max_power_kw", sa.Float()),
        sa.Column("sum_lat", sa.Float(), nullable=False),
        sa.Column("sum_lon", sa.Float(), nullable=False),
        sa.Column("min_lat", sa.Float(), nullable=False),
        sa.Column("min_lon", sa.Float(), nullable=False),
        sa.Column("max_lat", sa.Float(), nullable=False),
        sa.Column("max_lon", sa.Float(), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "map_dirty",
        sa.Column("gy", sa.Integer(), primary_key=True),
        sa.Column("gx", sa.Integer(), primary_key=True),
        sqlite_with_rowid=False,
    )
    sqlite = op.get_bind().dialect.name == "sqlite"
    for statement in _sqlite_triggers() if sqlite else _postgresql_triggers():
        op.execute(statement)
    # The stations already there: their cells are built by the first map view that needs them.
    op.execute(f"INSERT INTO map_dirty (gy, gx) SELECT DISTINCT {_cell('stations', 'INTEGER')} FROM stations")


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for event in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER stations_map_{event}" + ("" if sqlite else " ON stations"))
    if not sqlite:
        op.execute("DROP FUNCTION map_cells_mark()")
    op.drop_table("map_dirty")
    op.drop_table("map_cells")

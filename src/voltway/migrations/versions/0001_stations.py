"""Stations, connectors, API keys; the R*Tree bounding-box index on SQLite.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)

# The R*Tree holds each station's point as a degenerate box; triggers keep it equal to the table.
SQLITE_RTREE = [
    "CREATE VIRTUAL TABLE station_rtree USING rtree(id, min_lat, max_lat, min_lon, max_lon)",
    """CREATE TRIGGER stations_rtree_insert AFTER INSERT ON stations BEGIN
        INSERT INTO station_rtree VALUES (new.id, new.latitude, new.latitude, new.longitude, new.longitude);
    END""",
    """CREATE TRIGGER stations_rtree_update AFTER UPDATE OF latitude, longitude ON stations BEGIN
        UPDATE station_rtree SET min_lat = new.latitude, max_lat = new.latitude,
            min_lon = new.longitude, max_lon = new.longitude WHERE id = new.id;
    END""",
    """CREATE TRIGGER stations_rtree_delete AFTER DELETE ON stations BEGIN
        DELETE FROM station_rtree WHERE id = old.id;
    END""",
]


def upgrade() -> None:
    op.create_table(
        "stations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("external_id", sa.String(64)),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("address", sa.String(512)),
        sa.Column("town", sa.String(128)),
        sa.Column("postcode", sa.String(32)),
        sa.Column("country", sa.String(2)),
        sa.Column("latitude", sa.Float(), nullable=False),
        sa.Column("longitude", sa.Float(), nullable=False),
        sa.Column("x", sa.Float(), nullable=False),
        sa.Column("y", sa.Float(), nullable=False),
        sa.Column("z", sa.Float(), nullable=False),
        sa.Column("operator", sa.String(255)),
        sa.Column("usage", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("usage_cost", sa.Text()),
        sa.Column("price", sa.JSON()),
        sa.Column("max_power_kw", sa.Float()),
        sa.Column("rating_average", sa.Float()),
        sa.Column("rating_count", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(32)),
        sa.Column("duplicate_of_id", sa.Integer()),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_stations"),
        sa.UniqueConstraint("source", "external_id", name="uq_stations_source_external_id"),
        sa.ForeignKeyConstraint(
            ["duplicate_of_id"], ["stations.id"], name="fk_stations_duplicate_of_id_stations", ondelete="SET NULL"
        ),
    )
    op.create_index("ix_stations_duplicate_of_id", "stations", ["duplicate_of_id"])
    op.create_index("ix_stations_lat_lon", "stations", ["latitude", "longitude"])
    op.create_index("ix_stations_country_status", "stations", ["country", "status"])
    op.create_index("ix_stations_max_power_kw", "stations", ["max_power_kw"])
    op.create_index("ix_stations_operator", "stations", ["operator"])

    op.create_table(
        "connectors",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("station_id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("type_name", sa.String(128)),
        sa.Column("power_kw", sa.Float()),
        sa.Column("current", sa.String(2)),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_connectors"),
        sa.ForeignKeyConstraint(
            ["station_id"], ["stations.id"], name="fk_connectors_station_id_stations", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_connectors_station_id", "connectors", ["station_id"])
    op.create_index("ix_connectors_type_power", "connectors", ["type", "power_kw", "station_id"])

    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("name", sa.String(128)),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("last_used_at", TZ),
        sa.Column("revoked_at", TZ),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )
    op.create_index("ix_api_keys_prefix", "api_keys", ["prefix"])

    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_RTREE:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE station_rtree")
    op.drop_table("api_keys")
    op.drop_table("connectors")
    op.drop_table("stations")

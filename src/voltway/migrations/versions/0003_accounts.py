"""Drivers, favorites, reviews, check-ins, reservations, charging sessions, status history.

On PostgreSQL, overlapping active reservations of one connector are excluded by a GiST exclusion
constraint over `tstzrange(starts_at, ends_at)` (extension btree_gist for the `connector_id WITH =` part).

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = ("accounts",)
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)
ACTIVE_SESSION = sa.text("status = 'active'")


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=f"fk_{table}_{column}_{target}", ondelete=ondelete
    )


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("display_name", sa.String(100)),
        sa.Column("car_connectors", sa.JSON(), nullable=False),
        sa.Column("is_demo", sa.Boolean(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("email", name="uq_users_email"),
    )

    op.create_table(
        "favorites",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("station_id", sa.Integer(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("user_id", "station_id", name="pk_favorites"),
        _fk("favorites", "user_id", "users", "CASCADE"),
        _fk("favorites", "station_id", "stations", "CASCADE"),
    )
    op.create_index("ix_favorites_station_id", "favorites", ["station_id"])

    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("station_id", sa.Integer(), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=False),
        sa.Column("comment", sa.Text()),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_reviews"),
        sa.UniqueConstraint("user_id", "station_id", name="uq_reviews_user_id_station_id"),
        sa.CheckConstraint("rating BETWEEN 1 AND 5", name="ck_reviews_rating_range"),
        _fk("reviews", "user_id", "users", "CASCADE"),
        _fk("reviews", "station_id", "stations", "CASCADE"),
    )
    op.create_index("ix_reviews_station_id_updated_at", "reviews", ["station_id", "updated_at"])

    op.create_table(
        "checkins",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("station_id", sa.Integer(), nullable=False),
        sa.Column("connector_id", sa.Integer()),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("comment", sa.Text()),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("resolved_at", TZ),
        sa.Column("resolved_by_key_id", sa.Integer()),
        sa.PrimaryKeyConstraint("id", name="pk_checkins"),
        _fk("checkins", "user_id", "users", "CASCADE"),
        _fk("checkins", "station_id", "stations", "CASCADE"),
        sa.ForeignKeyConstraint(
            ["connector_id"], ["connectors.id"], name="fk_checkins_connector_id_connectors", ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["resolved_by_key_id"], ["api_keys.id"], name="fk_checkins_resolved_by_key_id_api_keys",
            ondelete="SET NULL",
        ),
    )
    op.create_index("ix_checkins_user_id", "checkins", ["user_id"])
    op.create_index("ix_checkins_station_id_created_at", "checkins", ["station_id", "created_at"])

    op.create_table(
        "reservations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("station_id", sa.Integer(), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=False),
        sa.Column("starts_at", TZ, nullable=False),
        sa.Column("ends_at", TZ, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_reservations"),
        _fk("reservations", "user_id", "users", "CASCADE"),
        _fk("reservations", "station_id", "stations", "CASCADE"),
        _fk("reservations", "connector_id", "connectors", "CASCADE"),
    )
    op.create_index("ix_reservations_user_id", "reservations", ["user_id"])
    op.create_index("ix_reservations_station_id", "reservations", ["station_id"])
    op.create_index("ix_reservations_connector_id_starts_at", "reservations", ["connector_id", "starts_at"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
        op.execute(
            "ALTER TABLE reservations ADD CONSTRAINT ex_reservations_no_overlap EXCLUDE USING gist "
            "(connector_id WITH =, tstzrange(starts_at, ends_at) WITH &&) WHERE (status = 'active')"
        )

    op.create_table(
        "charging_sessions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer()),
        sa.Column("api_key_id", sa.Integer()),
        sa.Column("station_id", sa.Integer(), nullable=False),
        sa.Column("connector_id", sa.Integer()),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("ended_at", TZ),
        sa.Column("energy_kwh", sa.Float()),
        sa.Column("cost", sa.Float()),
        sa.Column("currency", sa.String(3)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_charging_sessions"),
        _fk("charging_sessions", "user_id", "users", "SET NULL"),
        _fk("charging_sessions", "api_key_id", "api_keys", "SET NULL"),
        _fk("charging_sessions", "station_id", "stations", "CASCADE"),
        _fk("charging_sessions", "connector_id", "connectors", "SET NULL"),
    )
    op.create_index("ix_charging_sessions_station_id_started_at", "charging_sessions", ["station_id", "started_at"])
    op.create_index("ix_charging_sessions_started_at", "charging_sessions", ["started_at"])
    op.create_index("ix_charging_sessions_user_id_started_at", "charging_sessions", ["user_id", "started_at"])
    op.create_index(
        "ix_charging_sessions_one_active_per_connector",
        "charging_sessions",
        ["connector_id"],
        unique=True,
        sqlite_where=ACTIVE_SESSION,
        postgresql_where=ACTIVE_SESSION,
    )

    op.create_table(
        "status_history",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("station_id", sa.Integer(), nullable=False),
        sa.Column("connector_id", sa.Integer()),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("previous_status", sa.String(16)),
        sa.Column("changed_at", TZ, nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_status_history"),
        _fk("status_history", "station_id", "stations", "CASCADE"),
    )
    op.create_index("ix_status_history_station_id_changed_at", "status_history", ["station_id", "changed_at"])
    op.create_index("ix_status_history_changed_at", "status_history", ["changed_at"])
    op.create_index(
        "ix_status_history_connector_id_changed_at", "status_history", ["connector_id", "changed_at"]
    )


def downgrade() -> None:
    for table in ("status_history", "charging_sessions", "reservations", "checkins", "reviews", "favorites", "users"):
        op.drop_table(table)

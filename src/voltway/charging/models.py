"""Reservations, charging sessions and the status history of stations and connectors.

Overlapping active reservations of one connector are excluded in the database: on PostgreSQL by the
exclusion constraint `ex_reservations_no_overlap` (migration 0003, GiST over `tstzrange`), on SQLite by
serialising the check-then-insert (`core/locking.py`). One running session per connector is the partial
unique index `ix_charging_sessions_one_active_per_connector` on both databases.
"""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import DateTime, Float, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from voltway.core.db import Base, utcnow


class ReservationStatus(StrEnum):
    active = "active"
    cancelled = "cancelled"


class Reservation(Base):
    __tablename__ = "reservations"
    __table_args__ = (Index("ix_reservations_connector_id_starts_at", "connector_id", "starts_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id", ondelete="CASCADE"), index=True)
    connector_id: Mapped[int] = mapped_column(ForeignKey("connectors.id", ondelete="CASCADE"))
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default=ReservationStatus.active.value)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SessionStatus(StrEnum):
    active = "active"
    completed = "completed"


ACTIVE_SESSION = text("status = 'active'")


class ChargingSession(Base):
    """A charge at a connector, started by a driver (`user_id`) or an operator key (`api_key_id`).

    `cost` is in `currency`, computed from the station's price when the session stops (null when the
    price is unknown). `connector_id` is kept null if the connector is later removed, so history stays."""

    __tablename__ = "charging_sessions"
    __table_args__ = (
        Index("ix_charging_sessions_station_id_started_at", "station_id", "started_at"),
        Index("ix_charging_sessions_started_at", "started_at"),
        Index("ix_charging_sessions_user_id_started_at", "user_id", "started_at"),
        Index(
            "ix_charging_sessions_one_active_per_connector",
            "connector_id",
            unique=True,
            sqlite_where=ACTIVE_SESSION,
            postgresql_where=ACTIVE_SESSION,
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id", ondelete="CASCADE"))
    connector_id: Mapped[int | None] = mapped_column(ForeignKey("connectors.id", ondelete="SET NULL"))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    energy_kwh: Mapped[float | None] = mapped_column(Float)
    cost: Mapped[float | None] = mapped_column(Float)
    currency: Mapped[str | None] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default=SessionStatus.active.value)


class StatusChange(Base):
    """One status change of a station (`connector_id` null) or of one of its connectors.

    `connector_id` carries no foreign key on purpose: the history outlives a replaced connector."""

    __tablename__ = "status_history"
    __table_args__ = (
        Index("ix_status_history_station_id_changed_at", "station_id", "changed_at"),
        Index("ix_status_history_changed_at", "changed_at"),
        Index("ix_status_history_connector_id_changed_at", "connector_id", "changed_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id", ondelete="CASCADE"))
    connector_id: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    previous_status: Mapped[str | None] = mapped_column(String(16))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Who changed it: "session", "api" (station PATCH), "bulk", "import", "demo", ...
    source: Mapped[str] = mapped_column(String(32))

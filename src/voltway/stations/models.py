"""Station and connector tables.

`x`, `y`, `z` are the station's position as a unit vector on the sphere. The squared chord between two unit
vectors is a strictly increasing function of their great-circle distance, so the database can filter and
order by exact distance with plain arithmetic and an index on the bounding box (see `core/geo.py`).
On SQLite the bounding box index is the R*Tree `station_rtree`, kept in step by triggers (migration 0001).
"""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from voltway.core.db import Base, utcnow


# The stations a search can show (see `StationWhere.filters`).
SEARCHABLE = text("duplicate_of_id IS NULL AND status <> 'removed'")


class Station(Base):
    __tablename__ = "stations"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        Index("ix_stations_lat_lon", "latitude", "longitude"),
        Index("ix_stations_country_status", "country", "status"),
        Index("ix_stations_max_power_kw", "max_power_kw"),
        Index("ix_stations_operator", "operator"),
        # Duplicate detection reads the stations an import just wrote (migration 0006).
        Index("ix_stations_updated_at", "updated_at"),
        # Expression indexes for sort=power|rating (migration 0011) and the R*Tree (0001) live in migrations only.
        # Map clusters read the searchable stations' positions, status and power from the index alone (0010).
        Index(
            "ix_stations_map", "latitude", "longitude", "status", "max_power_kw",
            sqlite_where=SEARCHABLE, postgresql_where=SEARCHABLE,
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(32), default="voltway")
    external_id: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    address: Mapped[str | None] = mapped_column(String(512))
    town: Mapped[str | None] = mapped_column(String(128))
    postcode: Mapped[str | None] = mapped_column(String(32))
    country: Mapped[str | None] = mapped_column(String(2))
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)
    x: Mapped[float] = mapped_column(Float)
    y: Mapped[float] = mapped_column(Float)
    z: Mapped[float] = mapped_column(Float)
    operator: Mapped[str | None] = mapped_column(String(255))
    usage: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="unknown")
    usage_cost: Mapped[str | None] = mapped_column(Text)
    price: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    max_power_kw: Mapped[float | None] = mapped_column(Float)
    rating_average: Mapped[float | None] = mapped_column(Float)
    rating_count: Mapped[int] = mapped_column(Integer, default=0)
    # A digest of the imported content, so that re-importing an unchanged record writes nothing.
    content_hash: Mapped[str | None] = mapped_column(String(32))
    # Set when duplicate detection links this record to another listing of the same place.
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("stations.id", ondelete="SET NULL"), index=True)
    # The connectors as answers render them (JSON text; NULL until the first connector), written only by the
    # triggers of migration 0007.
    connectors_json: Mapped[str | None] = mapped_column(Text, deferred=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    connectors: Mapped[list["Connector"]] = relationship(
        back_populates="station", cascade="all, delete-orphan", order_by="Connector.id", lazy="selectin"
    )


class Connector(Base):
    __tablename__ = "connectors"
    __table_args__ = (Index("ix_connectors_type_power", "type", "power_kw", "station_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(16))
    type_name: Mapped[str | None] = mapped_column(String(128))
    power_kw: Mapped[float | None] = mapped_column(Float)
    current: Mapped[str | None] = mapped_column(String(2))
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), default="unknown")

    station: Mapped[Station] = relationship(back_populates="connectors")

"""Account tables: API keys (integrations, operators, administrators)."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from voltway.core.db import Base, utcnow


class Role(StrEnum):
    admin = "admin"
    operator = "operator"
    readonly = "readonly"


class ApiKey(Base):
    """An API key, stored as the SHA-256 of the secret: keys are 256-bit random, so a fast hash is safe
    and lets a request find its key by an indexed lookup. `prefix` is shown to humans to tell keys apart."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    name: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

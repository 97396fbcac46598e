"""Configuration from the environment, validated once at start.

The variable names are the seed's (`DATABASE_URL`, `REDIS_URL`, `LOG_LEVEL`, ...). A bad value stops the
process with a message that names the variable and the reason.
"""

import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./voltway.db"
    redis_url: str | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_dir: Path = Path("./logs")
    log_json_console: bool = True
    metrics_enabled: bool = True
    slow_request_threshold: float = Field(1.0, gt=0)
    memory_threshold_mb: int = Field(500, gt=0)
    cache_ttl: int = Field(3600, ge=0)
    max_workers: int = Field(5, ge=1, le=256)
    # Prefix of every Redis key (cache, rate limits, queue), so several deployments can share one server.
    redis_prefix: str = Field("voltway", min_length=1)
    # A running job whose heartbeat is older than this is taken as dead and retried.
    job_lease_seconds: float = Field(60.0, gt=0)
    # Per-name rate-limit overrides, JSON: {"jobs.write": "10/minute"} (see core/ratelimit.py).
    rate_limits: dict[str, str] = Field(default_factory=dict)
    secret_key: str | None = Field(None, min_length=32)
    # Where VoltWay keeps what it generates for itself (the stored secret key, export files).
    data_dir: Path = Path("./.voltway")
    token_ttl_minutes: int = Field(60 * 24, gt=0)
    ocm_api_url: str = "https://api.openchargemap.io/v3/poi"
    ocm_api_key: str | None = None
    # OCM files of at least this size are parsed by a second process while the import writes (0: every file).
    import_parser_process_mb: int = Field(8, ge=0)
    public_url: str | None = None
    # Map background tiles ({z}/{x}/{y}); the map still shows stations when tiles cannot be loaded.
    map_tile_url: str = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    map_tile_attribution: str = '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors'

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        if value.startswith(("postgres://", "postgresql://")):
            # Accept the usual libpq form and use the async driver for it.
            return "postgresql+asyncpg://" + value.split("://", 1)[1]
        if value.startswith("sqlite://") and not value.startswith("sqlite+aiosqlite://"):
            return "sqlite+aiosqlite://" + value.split("://", 1)[1]
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must be a sqlite+aiosqlite:// or postgresql+asyncpg:// URL")
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def resolved_secret_key(self) -> str:
        """The configured key, else one generated on first run and kept in `data_dir` (mode 0600)."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret_key"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        path.touch(mode=0o600)
        path.write_text(key)
        return key


class ConfigurationError(RuntimeError):
    """A setting from the environment is invalid; the message names the variable."""


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigurationError(f"invalid configuration: {problems}") from None


@lru_cache
def get_settings() -> Settings:
    return load_settings()

"""Alembic migrations: the only source of the schema. `upgrade()` is what `voltway db upgrade` and `serve` run."""

from pathlib import Path

from alembic import command
from alembic.config import Config

HERE = Path(__file__).parent


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["configure_logging"] = False
    return cfg


def upgrade(url: str, revision: str = "heads") -> None:
    """Apply every migration (each feature's branch) up to `revision`."""
    command.upgrade(alembic_config(url), revision)

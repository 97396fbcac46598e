"""Every feature's ORM models, imported in one place so that Alembic and the mappers see them all."""

from voltway.accounts.models import ApiKey
from voltway.core.db import Base
from voltway.stations.models import Connector, Station

__all__ = ["ApiKey", "Base", "Connector", "Station"]

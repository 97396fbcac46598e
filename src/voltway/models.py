"""Every feature's ORM models, imported in one place so that Alembic and the mappers see them all."""

from voltway.accounts.models import ApiKey, Favorite, User
from voltway.analytics.models import CubeHour, RollupState, StationCurrency, StationHour, StationTotal
from voltway.charging.models import ChargingSession, Reservation, StatusChange
from voltway.core.cache import CacheNamespace
from voltway.core.db import Base
from voltway.core.jobs.models import Job, ScheduleRun
from voltway.reviews.models import Checkin, Review
from voltway.stations.models import Connector, Station

__all__ = [
    "ApiKey",
    "Base",
    "CacheNamespace",
    "ChargingSession",
    "Checkin",
    "Connector",
    "CubeHour",
    "Favorite",
    "Job",
    "Reservation",
    "Review",
    "RollupState",
    "ScheduleRun",
    "Station",
    "StationCurrency",
    "StationHour",
    "StationTotal",
    "StatusChange",
    "User",
]

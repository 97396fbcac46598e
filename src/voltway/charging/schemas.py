"""Public shapes of reservations and charging sessions."""

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from voltway.charging.models import ReservationStatus, SessionStatus
from voltway.core.pagination import UtcDatetime


class ReservationIn(BaseModel):
    """Times are ISO 8601 with an offset (`2026-12-01T08:00:00+01:00`); naive times are rejected."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"station_id": 1, "connector_id": 2, "starts_at": "2026-12-01T08:00:00+01:00",
                                         "ends_at": "2026-12-01T09:00:00+01:00"}]}
    )

    station_id: int
    connector_id: int
    starts_at: AwareDatetime
    ends_at: AwareDatetime


class ReservationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    station_id: int
    connector_id: int
    starts_at: UtcDatetime
    ends_at: UtcDatetime
    status: ReservationStatus
    created_at: UtcDatetime


class SessionIn(BaseModel):
    station_id: int
    connector_id: int


class SessionStop(BaseModel):
    energy_kwh: float = Field(ge=0, le=1000, allow_inf_nan=False, description="Energy delivered, in kWh")


class SessionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    station_id: int
    connector_id: int | None
    user_id: int | None = Field(description="The driver, when a driver started the session")
    started_at: UtcDatetime
    ended_at: UtcDatetime | None
    energy_kwh: float | None
    cost: float | None = Field(description="In `currency`; 0 when free; null when the station's price is unknown")
    currency: str | None
    status: SessionStatus

"""Response shapes of the analytics and recommendation endpoints.

Amounts are per currency (`{"EUR": 12.5}`): sessions at stations with different currencies are never summed.
Energy is in kWh (exact to the Wh), amounts to the cent.
"""

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from voltway.stations.schemas import StationOut

Revenue = dict[str, float]


class WindowOut(BaseModel):
    from_: datetime = Field(alias="from", description="Start (inclusive), rounded down to the hour")
    to: datetime = Field(description="End (exclusive), rounded up to the hour")
    tz: str
    source: Literal["rollups", "rollups+raw", "raw"] = Field(
        description="Where the figures came from: hourly rollups for closed hours, raw sessions for the rest"
    )

    model_config = {"populate_by_name": True}

    @field_validator("from_", "to", mode="before")
    @classmethod
    def _from_epoch(cls, value: Any) -> Any:
        return datetime.fromtimestamp(value, UTC) if isinstance(value, int) else value


class _Occupancy(BaseModel):
    sessions: int = Field(description="Sessions started in the bucket")
    occupied_hours: float = Field(description="Charging time in the bucket, summed over connectors")
    mean_active_sessions: float = Field(description="Average number of sessions in progress during the bucket")
    occupancy: float = Field(description="mean_active_sessions / connectors in scope (0..1)")


class HourBucket(_Occupancy):
    hour: int = Field(ge=0, le=23, description="Local hour of day")


class DayBucket(_Occupancy):
    weekday: int = Field(ge=0, le=6, description="0 = Monday")
    name: str


class PeakHoursOut(BaseModel):
    window: WindowOut
    capacity: int = Field(description="Connectors (x quantity) of the stations in scope")
    buckets: list[HourBucket]


class PeakDaysOut(BaseModel):
    window: WindowOut
    capacity: int
    buckets: list[DayBucket]


class PopularItem(BaseModel):
    station_id: int
    name: str
    operator: str | None
    country: str | None
    sessions: int
    energy_kwh: float
    occupied_hours: float
    revenue: Revenue


class PopularOut(BaseModel):
    window: WindowOut
    by: str
    currency: str = Field(description="The currency `by=revenue` ranks by")
    items: list[PopularItem]


class Figures(BaseModel):
    sessions: int
    energy_kwh: float
    revenue: Revenue
    unique_drivers: int


class TrendPoint(Figures):
    start: str = Field(description="Local date the day or week (Monday) starts")


class Change(BaseModel):
    sessions: float | None
    energy_kwh: float | None
    unique_drivers: float | None
    revenue: dict[str, float | None]


class TrendsOut(BaseModel):
    window: WindowOut
    interval: Literal["day", "week"]
    series: list[TrendPoint]
    current: Figures = Field(description="Totals over the window")
    previous: Figures = Field(description="Totals over the period of the same length just before")
    change_pct: Change = Field(description="(current - previous) / previous in %, null when previous is 0")


class RevenueRow(BaseModel):
    key: str = Field(description="Local date, station id, or operator ('' for none)")
    label: str | None = Field(description="The station's name for group_by=station")
    currency: str = Field(description="ISO 4217; '' when the price was unknown")
    sessions: int
    energy_kwh: float
    amount: float


class RevenueOut(BaseModel):
    window: WindowOut
    group_by: Literal["day", "station", "operator"]
    rows: list[RevenueRow]
    totals: Revenue = Field(description="Totals per currency (group_by=day, which lists every row)")


class UtilizationItem(BaseModel):
    station_id: int
    name: str
    operator: str | None
    connectors: int
    sessions: int
    occupied_hours: float
    available_hours: float
    utilization: float = Field(description="occupied / available (0..1)")


class UtilizationOut(BaseModel):
    window: WindowOut
    overall: float
    stations: int
    items: list[UtilizationItem]


class RatingStats(BaseModel):
    count: int
    average: float
    distribution: dict[str, int] = Field(description="Reviews per star, '1'..'5'")


class StationRatings(RatingStats):
    station_id: int
    name: str
    operator: str | None


class OperatorRatings(RatingStats):
    operator: str


class RatingsOut(BaseModel):
    window: WindowOut | None
    stations: list[StationRatings]
    operators: list[OperatorRatings]


class Recommendation(BaseModel):
    station: StationOut
    score: float = Field(ge=0, le=1, description="Weighted sum of the components (see the scoring table)")
    reasons: list[str] = Field(description='e.g. ["compatible ccs2", "150 kW", "4.6★", "1.2 km", "available"]')
    summary: str = Field(description="The reasons joined with commas")


class RecommendationsOut(BaseModel):
    personalized: bool = Field(description="True when ranked for the driver of the bearer token")
    items: list[Recommendation]

"""Job API shapes."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

from voltway.core.jobs import JobStatus
from voltway.ingest.export import ExportFormat
from voltway.stations.schemas import ConnectorType, CountryCode, StationStatus

ImportFormat = Literal["ocm", "csv"]


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    status: JobStatus
    progress: float = Field(description="0..1")
    attempts: int
    max_attempts: int
    result: dict[str, Any] | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page")


class JobAccepted(BaseModel):
    job_id: int


class ImportFromUrl(BaseModel):
    url: HttpUrl = Field(description="An http(s) URL of an Open Charge Map JSON document or a VoltWay CSV file")
    format: ImportFormat = "ocm"
    country: CountryCode | None = Field(None, description="OCM only: keep only stations of this country")


class ExportFilters(BaseModel):
    """The filters of `GET /api/v1/stations`, as JSON."""

    model_config = ConfigDict(extra="forbid")

    connector: list[ConnectorType] = Field(default_factory=list)
    min_power_kw: float | None = Field(None, ge=0, allow_inf_nan=False)
    status: StationStatus | None = None
    operator: str | None = Field(None, min_length=1, max_length=255)
    country: CountryCode | None = None
    q: str | None = Field(None, min_length=1, max_length=200)
    bbox: str | None = Field(None, description="minLon,minLat,maxLon,maxLat")
    lat: float | None = Field(None, ge=-90, le=90, allow_inf_nan=False)
    lon: float | None = Field(None, ge=-180, le=180, allow_inf_nan=False)
    radius_km: float | None = Field(None, ge=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _origin(self) -> "ExportFilters":
        if (self.lat is None) != (self.lon is None):
            raise ValueError("lat and lon go together")
        if self.radius_km is not None and self.lat is None:
            raise ValueError("radius_km needs lat and lon")
        return self


class ExportRequest(BaseModel):
    format: ExportFormat = ExportFormat.csv
    filters: ExportFilters = Field(default_factory=ExportFilters)

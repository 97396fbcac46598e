"""The public shapes of a station (DESIGN.md's contract): what clients send and what they get back."""

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from voltway.stations.status import StationStatus


class ConnectorType(StrEnum):
    ccs1 = "ccs1"
    ccs2 = "ccs2"
    chademo = "chademo"
    type1 = "type1"
    type2 = "type2"
    nacs = "nacs"
    tesla = "tesla"
    gbt_ac = "gbt_ac"
    gbt_dc = "gbt_dc"
    schuko = "schuko"
    three_pin = "three_pin"
    cee = "cee"
    other = "other"
    unknown = "unknown"


class CurrentType(StrEnum):
    AC = "AC"
    DC = "DC"


class Price(BaseModel):
    """A usage cost read from free text; amounts are in `currency` (ISO 4217)."""

    currency: str | None = Field(None, min_length=3, max_length=3)
    per_kwh: float | None = Field(None, ge=0)
    per_minute: float | None = Field(None, ge=0)
    per_session: float | None = Field(None, ge=0)
    free: bool = False


class ConnectorIn(BaseModel):
    type: ConnectorType = ConnectorType.unknown
    type_name: str | None = Field(None, max_length=128)
    power_kw: float | None = Field(None, ge=0, le=2000)
    current: CurrentType | None = None
    quantity: int = Field(1, ge=1, le=1000)
    status: StationStatus = StationStatus.unknown


class ConnectorOut(ConnectorIn):
    model_config = ConfigDict(from_attributes=True)

    id: int


Latitude = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
Longitude = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]
CountryCode = Annotated[str, Field(min_length=2, max_length=2, pattern="^[A-Za-z]{2}$")]


class StationFields(BaseModel):
    name: str = Field(min_length=1, max_length=255)
    address: str | None = Field(None, max_length=512)
    town: str | None = Field(None, max_length=128)
    postcode: str | None = Field(None, max_length=32)
    country: CountryCode | None = None
    latitude: Latitude
    longitude: Longitude
    operator: str | None = Field(None, max_length=255)
    usage: str | None = Field(None, max_length=64)
    status: StationStatus = StationStatus.unknown
    usage_cost: str | None = Field(None, max_length=2000)
    price: Price | None = None

    @field_validator("country")
    @classmethod
    def _upper_country(cls, value: str | None) -> str | None:
        return value.upper() if value else value


class StationIn(StationFields):
    """A station as written by clients and importers; `source` defaults to "voltway"."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "source": "voltway",
                    "external_id": "berlin-hbf-1",
                    "name": "Berlin Hauptbahnhof P+R",
                    "address": "Europaplatz 1",
                    "town": "Berlin",
                    "postcode": "10557",
                    "country": "DE",
                    "latitude": 52.5251,
                    "longitude": 13.3694,
                    "operator": "Ionity",
                    "usage": "Public",
                    "status": "available",
                    "usage_cost": "0,59 EUR/kWh",
                    "connectors": [
                        {"type": "ccs2", "type_name": "CCS (Type 2)", "power_kw": 350, "current": "DC",
                         "quantity": 4, "status": "available"},
                        {"type": "type2", "type_name": "Type 2 (Socket Only)", "power_kw": 22, "current": "AC",
                         "quantity": 2, "status": "available"},
                    ],
                }
            ]
        }
    )

    source: str = Field("voltway", min_length=1, max_length=32)
    external_id: str | None = Field(None, min_length=1, max_length=64)
    connectors: list[ConnectorIn] = Field(default_factory=list, max_length=200)


class StationPatch(BaseModel):
    """A partial update: only the fields present are changed; `connectors`, when given, replaces them all."""

    name: str | None = Field(None, min_length=1, max_length=255)
    address: str | None = Field(None, max_length=512)
    town: str | None = Field(None, max_length=128)
    postcode: str | None = Field(None, max_length=32)
    country: CountryCode | None = None
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    operator: str | None = Field(None, max_length=255)
    usage: str | None = Field(None, max_length=64)
    status: StationStatus | None = None
    usage_cost: str | None = Field(None, max_length=2000)
    price: Price | None = None
    external_id: str | None = Field(None, min_length=1, max_length=64)
    connectors: list[ConnectorIn] | None = Field(None, max_length=200)


class Rating(BaseModel):
    average: float | None
    count: int


class StationOut(StationFields):
    id: int
    source: str
    external_id: str | None
    connectors: list[ConnectorOut]
    max_power_kw: float | None
    rating: Rating
    updated_at: datetime
    distance_km: float | None = Field(None, description="Great-circle distance from lat/lon, when given")


class StationPage(BaseModel):
    """One page of a search; pass `next_cursor` as `cursor` for the next page (null on the last)."""

    items: list[StationOut]
    next_cursor: str | None

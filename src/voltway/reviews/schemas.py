"""Public shapes of reviews, check-ins and the reliability score."""

from pydantic import BaseModel, ConfigDict, Field

from voltway.core.pagination import UtcDatetime
from voltway.reviews.models import CheckinOutcome


class ReviewIn(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"rating": 4, "comment": "Fast, but busy at noon"}]})

    rating: int = Field(ge=1, le=5)
    comment: str | None = Field(None, max_length=2000)


class ReviewOut(BaseModel):
    id: int
    station_id: int
    user_id: int
    author: str | None = Field(description="The reviewer's display name")
    rating: int
    comment: str | None
    created_at: UtcDatetime
    updated_at: UtcDatetime


class CheckinIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"outcome": "could_not_charge", "connector_id": 12, "comment": "Card reader off"}]
        }
    )

    outcome: CheckinOutcome
    connector_id: int | None = Field(None, description="The connector used, when known")
    comment: str | None = Field(None, max_length=2000)


class CheckinOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    station_id: int
    connector_id: int | None
    outcome: CheckinOutcome
    comment: str | None
    created_at: UtcDatetime
    resolved_at: UtcDatetime | None


class Reliability(BaseModel):
    """How likely a charge works here, from recent check-ins (see `reviews/service.py`)."""

    station_id: int
    score: float | None = Field(
        description="Time-decayed share of successful check-ins (0-1; half-life 30 days); null without check-ins"
    )
    weight: float = Field(description="The decayed number of check-ins behind the score (its confidence)")
    count: int = Field(description="Check-ins behind the score (last 365 days)")
    half_life_days: float
    recent: list[CheckinOut] = Field(description="The 10 most recent check-ins")

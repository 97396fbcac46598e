"""Check-ins written straight to the database at a given age, and the reliability score worked out by hand."""

from dataclasses import dataclass
from datetime import timedelta

from voltway.core.db import Database, utcnow
from voltway.reviews.models import Checkin


@dataclass
class C:
    """A hand-built check-in: outcome, age in days, resolved by an operator."""

    outcome: str
    days: float = 0.0
    resolved: bool = False


async def make_checkins(db: Database, *, user_id: int, station_id: int, checkins: list[C]) -> list[int]:
    now = utcnow()
    async with db.sessionmaker.begin() as session:
        rows = [
            Checkin(
                user_id=user_id,
                station_id=station_id,
                outcome=c.outcome,
                created_at=now - timedelta(days=c.days),
                resolved_at=now if c.resolved else None,
            )
            for c in checkins
        ]
        session.add_all(rows)
        await session.flush()
        return [row.id for row in rows]


def expected_reliability(checkins: list[C]) -> tuple[float, float, int] | None:
    """(score, weight, count): successes over all counted check-ins, each weighted 0.5 ** (days / 30); a check-in
    counts when it is at most 365 days old and is not a resolved failure. None when none counts."""
    counted = [c for c in checkins if c.days <= 365 and not (c.outcome != "charged_fine" and c.resolved)]
    if not counted:
        return None
    weights = [(0.5 ** (c.days / 30), c.outcome == "charged_fine") for c in counted]
    total = sum(w for w, _ in weights)
    return sum(w for w, ok in weights if ok) / total, total, len(counted)

"""One pagination envelope, `{"items": [...], "next_cursor": str | null}`, and keyset paging by id.

The cursor is opaque to clients (URL-safe base64 of the last id seen); a bad cursor is a 422 naming it.
"""

import base64
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, BeforeValidator, Field
from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute

from voltway.core.errors import InvalidInput

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page; pass `next_cursor` as `cursor` for the next page (null on the last)."""

    items: list[T]
    next_cursor: str | None


Limit = Annotated[int, Field(ge=1, le=200, description="Items per page (1-200)")]


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(str(last_id).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        return int(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode())
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput(
            "invalid cursor", details=[{"field": "cursor", "in": "query", "message": "not a cursor from this API"}]
        ) from None


def keyset(query: Select[Any], id_column: InstrumentedAttribute[int], *, cursor: str | None, limit: int) -> Select[Any]:
    """Newest first: order by id descending, after the cursor, one row more than a page to see if more follow."""
    if cursor is not None:
        query = query.where(id_column < decode_cursor(cursor))
    return query.order_by(id_column.desc()).limit(limit + 1)


def page_of(rows: Sequence[T], *, limit: int, id_of: Callable[[T], int]) -> tuple[list[T], str | None]:
    """Cut the extra row fetched by `keyset` and make the next cursor from the last kept row's id."""
    items = list(rows[:limit])
    return items, (encode_cursor(id_of(items[-1])) if len(rows) > limit else None)


def as_utc(value: Any) -> Any:
    """A datetime read back from SQLite (which keeps UTC timestamps without an offset) made aware."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


UtcDatetime = Annotated[datetime, BeforeValidator(as_utc)]
"""A timestamp read from either database, always rendered with its UTC offset."""

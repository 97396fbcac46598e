"""A station as the upsert engine writes it (`StationRow`), and how an item that was not written is reported.

Apart from the engine so that a parser process (`parse_process.py`) shapes rows without importing the
database layer.
"""

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel

from voltway.stations.schemas import Price


class ItemError(BaseModel):
    """An item that was not written: its index, a machine-readable code and the reason."""

    index: int
    code: str
    message: str


def price_text(price: Price | None) -> str | None:
    """A price as the `price` column stores it (JSON text)."""
    return orjson.dumps(price.model_dump()).decode() if price is not None else None


@dataclass(slots=True, frozen=True)
class StationRow:
    """A station as the engine writes it: its column values, its connectors' and their digest.

    `values` are the stored forms of `upsert.INSERTED_COLUMNS` up to `max_power_kw` (JSON as text),
    `connectors` those of `upsert.CONNECTOR_COLUMNS` after `station_id`. The digest covers every written value
    but the timestamps and the rating, whichever importer shaped the row: equal digests mean re-writing would
    change nothing.
    """

    values: tuple[Any, ...]
    connectors: tuple[tuple[Any, ...], ...]
    content_hash: str

    @classmethod
    def build(cls, values: tuple[Any, ...], connectors: tuple[tuple[Any, ...], ...]) -> "StationRow":
        digest = hashlib.blake2b(orjson.dumps((values, connectors)), digest_size=16).hexdigest()
        return cls(values, connectors, digest)

    @property
    def key(self) -> tuple[str, str] | None:
        """(source, external_id); None without an external_id."""
        return None if self.values[1] is None else (self.values[0], self.values[1])

    @property
    def country(self) -> str | None:
        return self.values[6]  # type: ignore[no-any-return]

"""Open Charge Map reference data and the tables that map it to VoltWay's vocabulary.

The reference data (`data/ocm-referencedata.json.gz`, OCM's `/v3/referencedata`, CC BY 4.0) turns the ids of the
compact form into titles. Connection types and status types are then mapped BY TITLE with the rule tables
below, so that a title from the verbose form (whose wording changed over the years: "J1772",
"Type 1 (J1772)"; "Tesla Supercharger", "NACS / Tesla Supercharger") maps the same way as the id it stands for.

A rule is `(code, needles)`: the first rule with a needle contained in the lower-cased, space-normalised
title wins; a title that no rule matches is `other` (connectors) or `unknown` (statuses).
"""

import gzip
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any, TypeVar

import orjson

from voltway.stations.schemas import ConnectorType, CurrentType, StationStatus

# Connection type title -> connector code. Order matters: the combined plugs (CCS) before the plugs they
# extend (Type 1 / J1772, Type 2), "not operational" before "operational".
CONNECTOR_RULES: tuple[tuple[ConnectorType, tuple[str, ...]], ...] = (
    (ConnectorType.unknown, ("unknown", "not specified")),
    (ConnectorType.ccs1, ("ccs (type 1)", "ccs type 1", "ccs1", "sae combo", "combo 1", "j1772 combo")),
    (ConnectorType.ccs2, ("ccs (type 2)", "ccs type 2", "ccs2", "combo 2")),
    (ConnectorType.chademo, ("chademo",)),
    (ConnectorType.nacs, ("nacs", "j3400", "supercharger")),  # OCM id 27, formerly "Tesla Supercharger"
    (ConnectorType.tesla, ("tesla (roadster)", "tesla (model s", "tesla roadster", "tesla model s")),
    (ConnectorType.gbt_dc, ("gb-t dc", "gb/t dc", "20234.3")),
    (ConnectorType.gbt_ac, ("gb-t ac", "gb/t ac", "20234.2")),
    (ConnectorType.type2, ("type 2",)),  # "Type 2 (Socket Only)", "Type 2 (Tethered Connector)"
    (ConnectorType.type1, ("type 1", "j1772")),
    (ConnectorType.schuko, ("schuko", "cee 7/4")),
    (ConnectorType.three_pin, ("bs1363", "bs 1363")),
    (ConnectorType.cee, ("commando", "iec 60309", "cee 3 pin", "cee 5 pin", "cee+ 7 pin", "cee 7 pin")),
)

# Status type title -> station/connector status ("Partly Operational (Mixed)" counts as available).
STATUS_RULES: tuple[tuple[StationStatus, tuple[str, ...]], ...] = (
    (StationStatus.removed, ("removed", "decommissioned")),
    (StationStatus.planned, ("planned", "under construction")),
    (StationStatus.out_of_service, ("not operational", "temporarily unavailable", "broken", "faulty")),
    (StationStatus.occupied, ("in use",)),
    (StationStatus.available, ("operational", "available")),
)

# CurrentTypeID -> AC/DC (10 "AC (Single-Phase)", 20 "AC (Three-Phase)", 30 "DC"); anything else is null.
CURRENT_BY_ID: dict[int, CurrentType] = {10: CurrentType.AC, 20: CurrentType.AC, 30: CurrentType.DC}

# Titles that mean "not known": stored as null rather than as a pseudo-operator or pseudo-usage.
UNKNOWN_TITLES = frozenset({"(unknown operator)", "(unknown)", "unknown"})


def _norm(title: str) -> str:
    return " ".join(title.lower().split())


T = TypeVar("T")


def _match(rules: tuple[tuple[T, tuple[str, ...]], ...], title: str, default: T) -> T:
    text = _norm(title)
    for code, needles in rules:
        if any(needle in text for needle in needles):
            return code
    return default


# Titles repeat across records: the lookups are cached.
@lru_cache(maxsize=4096)
def connector_code(title: str | None) -> ConnectorType:
    """The contract's connector code for an OCM connection type title (None: unknown)."""
    return ConnectorType.unknown if title is None else _match(CONNECTOR_RULES, title, ConnectorType.other)


@lru_cache(maxsize=1024)
def status_code(title: str | None) -> StationStatus:
    """The contract's status for an OCM status type title (None: unknown)."""
    return StationStatus.unknown if title is None else _match(STATUS_RULES, title, StationStatus.unknown)


@lru_cache(maxsize=4096)
def known_title(title: str | None) -> str | None:
    """The title, or None when it is one of OCM's "unknown" placeholders."""
    if title is None or _norm(title) in UNKNOWN_TITLES:
        return None
    return title.strip() or None


@dataclass(frozen=True)
class Reference:
    """Id -> title (or ISO code) lookups for the sections of the reference data that an import needs."""

    connection_types: dict[int, str] = field(default_factory=dict)
    status_types: dict[int, str] = field(default_factory=dict)
    usage_types: dict[int, str] = field(default_factory=dict)
    operators: dict[int, str] = field(default_factory=dict)
    countries: dict[int, str] = field(default_factory=dict)
    # Mapped connections by their values (see `ocm._connector`): tables and mapping are fixed, so is the result.
    connections: dict[tuple[Any, ...], tuple[Any, ...]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Reference":
        def titles(section: str, key: str = "Title") -> dict[int, str]:
            return {item["ID"]: item[key] for item in data.get(section) or () if item.get(key)}

        return cls(
            connection_types=titles("ConnectionTypes"),
            status_types=titles("StatusTypes"),
            usage_types=titles("UsageTypes"),
            operators=titles("Operators"),
            countries=titles("Countries", "ISOCode"),
        )


REFERENCE_FILE = "ocm-referencedata.json.gz"


@lru_cache
def bundled_reference() -> Reference:
    """The reference data shipped in the package."""
    raw = resources.files("voltway").joinpath("data", REFERENCE_FILE).read_bytes()
    return Reference.from_json(orjson.loads(gzip.decompress(raw)))

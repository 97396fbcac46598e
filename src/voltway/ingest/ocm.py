"""One Open Charge Map POI (compact or verbose form) -> the station row the upsert engine writes.

Both forms go through the same code: a reference value is read from the nested object when the record has
one (verbose: `ConnectionType.Title`, `AddressInfo.Country.ISOCode`, `OperatorInfo.Title`, ...) and looked up
by its id in the reference data otherwise (compact: `ConnectionTypeID`, `CountryID`, `OperatorID`, with null
keys omitted). So the form is recognised per record, per field, and a mixed file is fine.

Field mapping: name = AddressInfo.Title (else AddressLine1, else "OCM <ID>"); address = AddressLine1 and
AddressLine2 joined by ", "; town, postcode; country = ISO code; operator = operator title; usage = usage type
title (OCM's "unknown" placeholders become null); status from StatusType; usage_cost = UsageCost (raw) and
price = `prices.parse_usage_cost(UsageCost, country)`; source "ocm", external_id str(ID). Connectors: type by
title (reference.CONNECTOR_RULES), type_name = OCM's title, power_kw = PowerKW, current from CurrentTypeID,
quantity = Quantity (default 1), status from the connection's StatusType, else the station's.

A record that cannot become a station raises RecordError with a code and the reason: no ID, missing or
out-of-range coordinates, a value of the wrong type. Over-long texts are cut to the column's length.

The row is shaped directly (`StationRow`), not through `StationIn`: a file import parses hundreds of
thousands of records, and model validation cost more than the mapping itself. The mapping therefore keeps
every `StationIn` constraint itself (texts cut to their lengths, numbers clamped to their ranges) and rejects
what it cannot repair with StationIn's own messages (code `invalid`); `tests/ingest/test_ocm_parse.py` checks
that each sample's row is the one its `StationIn` gives.
"""

import math
from functools import lru_cache
from typing import Any

from voltway.core.geo import unit_vector
from voltway.ingest.prices import parse_usage_cost
from voltway.ingest.reference import CURRENT_BY_ID, Reference, connector_code, known_title, status_code
from voltway.ingest.rows import StationRow, price_text
from voltway.stations.schemas import ConnectorType, StationStatus

SOURCE = "ocm"


class RecordError(ValueError):
    """A record that cannot be imported; `code` is machine-readable, the message says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _object(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RecordError("wrong_type", f"{where} must be an object, not {type(value).__name__}")
    return value


# The checks below test `type(value) is ...` first: the usual case, and several times cheaper than isinstance
# with a union over the half-million values of a large file.
def _text(value: Any, where: str, limit: int) -> str | None:
    if type(value) is str:
        return value.strip()[:limit] or None
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise RecordError("wrong_type", f"{where} must be a string, not {type(value).__name__}")
    text = str(value).strip()
    return text[:limit] or None


def _number(value: Any, where: str) -> float | None:
    if type(value) is float and math.isfinite(value):
        return value
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise RecordError("wrong_type", f"{where} must be a number, not a boolean")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RecordError("wrong_type", f"{where} must be a number, not {value!r}") from None
    if not math.isfinite(number):
        raise RecordError("wrong_type", f"{where} must be a finite number")
    return number


def _id(value: Any) -> int | None:
    return value if type(value) is int or (isinstance(value, int) and not isinstance(value, bool)) else None


def _title(record: dict[str, Any], nested: str, id_key: str, table: dict[int, str]) -> str | None:
    """A reference title: from the nested object (verbose) or by id (compact)."""
    obj = record.get(nested)
    if isinstance(obj, dict) and isinstance(obj.get("Title"), str):
        return obj["Title"]
    ref_id = _id(record.get(id_key))
    if ref_id is None and isinstance(obj, dict):
        ref_id = _id(obj.get("ID"))
    return table.get(ref_id) if ref_id is not None else None


def _status(record: dict[str, Any], ref: Reference) -> StationStatus | None:
    if record.get("StatusTypeID") is None and not isinstance(record.get("StatusType"), dict):
        return None
    return status_code(_title(record, "StatusType", "StatusTypeID", ref.status_types))


def _coordinate(address: dict[str, Any], key: str, bound: float) -> float:
    value = address.get(key)
    if value is None:
        raise RecordError("missing_coordinates", f"AddressInfo.{key} is missing")
    number = _number(value, f"AddressInfo.{key}")
    if number is None:
        raise RecordError("missing_coordinates", f"AddressInfo.{key} is empty")
    if not -bound <= number <= bound:
        raise RecordError("coordinates_out_of_range", f"AddressInfo.{key} {number} is outside [-{bound:g}, {bound:g}]")
    return number


# Compact connections are mapped once per set of values: 300,000 synthetic stations' 600,000 have 4,644 sets, and
# the first 4,096 answer 99% of them. The verbose form (nested objects) is mapped each time.
_ID_TYPES = frozenset({int, type(None)})  # not 25.0 or True: equal keys to 25 and 1 that map otherwise
_NUMBER_TYPES = frozenset({int, float, type(None)})
_MAPPED_CONNECTIONS_MAX = 4096  # a file of endless variety keeps mapping, without filling memory


def _connection_key(raw: Any, station_status: StationStatus) -> tuple[Any, ...] | None:
    """What a compact connection's mapping depends on; None for one that is mapped each time."""
    if type(raw) is not dict or "ConnectionType" in raw or "CurrentType" in raw or "StatusType" in raw:
        return None  # not an object, or the verbose form's nested objects
    get = raw.get
    type_id, power, current_id, quantity, status_id = (
        get("ConnectionTypeID"), get("PowerKW"), get("CurrentTypeID"), get("Quantity"), get("StatusTypeID")
    )  # fmt: skip
    if (
        type(type_id) in _ID_TYPES and type(current_id) in _ID_TYPES and type(status_id) in _ID_TYPES
        and type(power) in _NUMBER_TYPES and type(quantity) in _NUMBER_TYPES
        and power != 0  # 0.0 and -0.0 are equal keys
    ):  # fmt: skip
        return type_id, power, current_id, quantity, status_id, station_status
    return None


def _connector(raw: Any, position: int, ref: Reference, station_status: StationStatus) -> tuple[Any, ...]:
    """A connection as the values of a connector row (StationRow.connectors)."""
    key = _connection_key(raw, station_status)
    mapped = ref.connections.get(key) if key is not None else None
    if mapped is None:
        mapped = _map_connector(raw, position, ref, station_status)
        if key is not None and len(ref.connections) < _MAPPED_CONNECTIONS_MAX:
            ref.connections[key] = mapped
    return mapped


def _map_connector(raw: Any, position: int, ref: Reference, station_status: StationStatus) -> tuple[Any, ...]:
    where = f"Connections[{position}]"
    conn = _object(raw, where)
    title = _title(conn, "ConnectionType", "ConnectionTypeID", ref.connection_types)
    type_id = _id(conn.get("ConnectionTypeID"))
    # An id the reference data does not know is a real but unlisted plug: "other"; no id (or id 0) is unknown.
    code = ConnectorType.other if title is None and type_id else connector_code(title)
    power = _number(conn.get("PowerKW"), f"{where}.PowerKW")
    current_id = _id(conn.get("CurrentTypeID"))
    if current_id is None and isinstance(conn.get("CurrentType"), dict):
        current_id = _id(conn["CurrentType"].get("ID"))
    current = CURRENT_BY_ID.get(current_id) if current_id is not None else None
    quantity = _number(conn.get("Quantity"), f"{where}.Quantity")
    # `_value_`, not `.value`: a plain attribute instead of a Python-level property call (see upsert.station_row).
    return (
        code._value_,
        _text(title, f"{where}.ConnectionType.Title", 128),
        power if power is not None and 0 <= power <= 2000 else None,
        current._value_ if current is not None else None,
        min(int(quantity), 1000) if quantity is not None and quantity >= 1 else 1,
        (_status(conn, ref) or station_status)._value_,
    )


@lru_cache(maxsize=8192)  # usage cost texts repeat across records
def _price(usage_cost: str | None, country: str | None) -> str | None:
    return price_text(parse_usage_cost(usage_cost, country))


def _invalid(field: str, message: str) -> RecordError:
    """A value the mapping cannot repair, named as StationIn's validation names it."""
    return RecordError("invalid", f"{field}: {message}")


def parse_record(raw: Any, ref: Reference) -> StationRow:
    """The station an OCM POI describes; RecordError when it cannot be one."""
    # `type(...) is dict` first: the usual case, cheaper than `_object`'s call (see `_text`).
    record = raw if type(raw) is dict else _object(raw, "the record")
    poi_id = record.get("ID")
    if type(poi_id) is not int and (
        poi_id is None or isinstance(poi_id, bool) or not isinstance(poi_id, int | str) or str(poi_id).strip() == ""
    ):
        raise RecordError("missing_id", "the record has no ID")
    address = record.get("AddressInfo")
    if type(address) is not dict:
        address = _object(address, "AddressInfo")
    latitude = _coordinate(address, "Latitude", 90)
    longitude = _coordinate(address, "Longitude", 180)
    country_obj = address.get("Country")
    country = (country_obj if type(country_obj) is dict else _object(country_obj, "AddressInfo.Country")).get("ISOCode")
    if not isinstance(country, str):
        country_id = _id(address.get("CountryID"))
        country = ref.countries.get(country_id) if country_id is not None else None
    lines = (
        _text(address.get("AddressLine1"), "AddressInfo.AddressLine1", 512),
        _text(address.get("AddressLine2"), "AddressInfo.AddressLine2", 512),
    )
    station_status = _status(record, ref) or StationStatus.unknown
    connections = record.get("Connections")
    if connections is not None and not isinstance(connections, list):
        raise RecordError("wrong_type", f"Connections must be a list, not {type(connections).__name__}")
    usage_cost = _text(record.get("UsageCost"), "UsageCost", 2000)
    name = _text(address.get("Title"), "AddressInfo.Title", 255) or (lines[0] or "")[:255] or f"OCM {poi_id}"
    town = _text(address.get("Town"), "AddressInfo.Town", 128)
    postcode = _text(address.get("Postcode"), "AddressInfo.Postcode", 32)
    iso = country.upper() if isinstance(country, str) and len(country) == 2 else None
    operator = _text(known_title(_title(record, "OperatorInfo", "OperatorID", ref.operators)), "Operator", 255)
    usage = _text(known_title(_title(record, "UsageType", "UsageTypeID", ref.usage_types)), "UsageType", 64)
    external_id = str(poi_id).strip()
    # What the mapping cannot repair, checked in StationIn's field order (its first error is the one reported).
    if len(name) > 255:
        raise _invalid("name", "String should have at most 255 characters")
    if iso is not None and len(iso) != 2:  # "ß".upper() is "SS"
        raise _invalid("country", "String should have at most 2 characters")
    if iso is not None and not (iso.isascii() and iso.isalpha()):
        raise _invalid("country", "String should match pattern '^[A-Za-z]{2}$'")
    if len(external_id) > 64:
        raise _invalid("external_id", "String should have at most 64 characters")
    connectors = tuple(_connector(c, i, ref, station_status) for i, c in enumerate(connections or ()))[:200]
    powers = [c[2] for c in connectors if c[2] is not None]
    x, y, z = unit_vector(latitude, longitude)
    values = (
        SOURCE, external_id, name, ", ".join(filter(None, lines))[:512] or None, town, postcode, iso,
        latitude, longitude, x, y, z, operator, usage, station_status._value_, usage_cost,
        _price(usage_cost, country if isinstance(country, str) else None), max(powers) if powers else None,
    )  # fmt: skip
    return StationRow.build(values, connectors)

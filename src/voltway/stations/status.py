"""The status of a station, apart from the station schemas so that the command line offers it cheaply."""

from enum import StrEnum


class StationStatus(StrEnum):
    available = "available"
    occupied = "occupied"
    out_of_service = "out_of_service"
    planned = "planned"
    removed = "removed"
    unknown = "unknown"

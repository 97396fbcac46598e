"""The formats of an export, apart from the export itself so that the command line offers them cheaply."""

from enum import StrEnum


class ExportFormat(StrEnum):
    csv = "csv"
    geojson = "geojson"
    json = "json"

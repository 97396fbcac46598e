"""The roles of an API key, apart from the account tables so that the command line offers them cheaply."""

from enum import StrEnum


class Role(StrEnum):
    admin = "admin"
    operator = "operator"
    readonly = "readonly"

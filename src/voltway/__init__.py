"""VoltWay: an open platform for electric-vehicle charging."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("voltway")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"

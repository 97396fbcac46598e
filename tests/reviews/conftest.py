"""Driver and station fixtures (see tests/accounts/factories.py)."""

from tests.accounts.factories import driver, other_driver, station

__all__ = ["driver", "other_driver", "station"]

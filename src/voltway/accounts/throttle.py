"""Failed-login throttling: a sliding window of failures per email and per client address.

In-process (one store per app), which is enough for the embedded single-process default; in a multi-worker
deployment each worker counts on its own, so the effective limit is multiplied by the worker count.
"""

import math
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field

from voltway.core.errors import TooManyRequests

WINDOW_SECONDS = 15 * 60
MAX_FAILURES_PER_EMAIL = 5
MAX_FAILURES_PER_ADDRESS = 20


@dataclass
class LoginThrottle:
    window: float = WINDOW_SECONDS
    per_email: int = MAX_FAILURES_PER_EMAIL
    per_address: int = MAX_FAILURES_PER_ADDRESS
    _failures: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures[key]
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]  # keep the store as small as the set of recent offenders
            return deque()
        return times

    def check(self, *, email: str, address: str) -> None:
        """Raise TooManyRequests (with Retry-After) when either key has used up its failures."""
        now = time.monotonic()
        for key, limit in ((f"email:{email}", self.per_email), (f"addr:{address}", self.per_address)):
            times = self._recent(key, now)
            if len(times) >= limit:
                retry_after = max(1, math.ceil(times[-limit] + self.window - now))
                raise TooManyRequests(
                    "too many failed sign-in attempts; try again later",
                    details={"retry_after": retry_after},
                    headers={"Retry-After": str(retry_after)},
                )

    def failed(self, *, email: str, address: str) -> None:
        now = time.monotonic()
        self._failures[f"email:{email}"].append(now)
        self._failures[f"addr:{address}"].append(now)

    def succeeded(self, *, email: str) -> None:
        self._failures.pop(f"email:{email}", None)

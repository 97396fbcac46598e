"""The memory monitor: resident memory (psutil) as a metric, in readiness, and a periodic WARNING above
`MEMORY_THRESHOLD_MB`.

The warning is logged when memory crosses the threshold and again every `repeat_every` checks while it
stays above, so a leak is visible in the logs without one line per check.
"""

import asyncio
import logging
from dataclasses import dataclass

from voltway.core.metrics import record_process_usage

logger = logging.getLogger(__name__)
MB = 1024 * 1024


@dataclass(frozen=True)
class MemoryStatus:
    rss_mb: float
    threshold_mb: int

    @property
    def over(self) -> bool:
        return self.rss_mb > self.threshold_mb


def memory_status(threshold_mb: int) -> MemoryStatus:
    """Read this process's resident memory, record it in `voltway_memory_rss_bytes`, compare it to the threshold."""
    return MemoryStatus(rss_mb=round(record_process_usage() / MB, 1), threshold_mb=threshold_mb)


async def _monitor(threshold_mb: int, interval: float, repeat_every: int) -> None:
    checks_above = 0
    while True:
        status = memory_status(threshold_mb)
        if status.over:
            if checks_above % repeat_every == 0:
                logger.warning(
                    "resident memory %.1f MB is above MEMORY_THRESHOLD_MB=%d",
                    status.rss_mb,
                    threshold_mb,
                    extra={"rss_mb": status.rss_mb, "threshold_mb": threshold_mb},
                )
            checks_above += 1
        else:
            checks_above = 0
        await asyncio.sleep(interval)


def start_memory_monitor(threshold_mb: int, *, interval: float = 30.0, repeat_every: int = 10) -> asyncio.Task[None]:
    """Start the periodic check in the running event loop; cancel the task to stop it."""
    return asyncio.create_task(_monitor(threshold_mb, interval, repeat_every), name="voltway-memory-monitor")

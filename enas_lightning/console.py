"""What a run prints: Lightning's advertising and its accelerator census filtered out.

Lightning prints, through its ``rank_zero_info`` logger, a "💡 Tip: ..." about its paid
services (litlogger, litmodels) and one line per accelerator family it did not find
("TPU available: False, using: 0 TPU cores"; older versions add HPUs). Neither tells the user
anything about this run; the ``GPU available: ..., used: ...`` line stays.
"""

from __future__ import annotations

import logging

# The logger Lightning's rank_zero_info/rank_zero_warn write to.
LIGHTNING_LOGGERS = (
    "pytorch_lightning.utilities.rank_zero",
    "lightning_fabric.utilities.rank_zero",
)
NOISE_PREFIXES = ("💡 Tip:", "TPU available:", "HPU available:", "IPU available:")


class LightningNoiseFilter(logging.Filter):
    """Drops the records whose message starts with one of :data:`NOISE_PREFIXES`."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(NOISE_PREFIXES)


def quiet_lightning() -> None:
    """Install :class:`LightningNoiseFilter` on Lightning's loggers (once per process)."""
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, LightningNoiseFilter) for f in logger.filters):
            logger.addFilter(LightningNoiseFilter())

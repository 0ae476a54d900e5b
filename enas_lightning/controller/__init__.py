"""The LSTM controller that samples architectures, one decision at a time.

What every space's controller shares (the LSTM, the decision sampler, the :class:`Sample`
record); each space's own controller is in ``spaces/<name>/controller.py``.
"""

from enas_lightning.controller.base import Controller, Sample

__all__ = ["Controller", "Sample"]

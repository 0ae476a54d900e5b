"""Counting the child steps skipped for a non-finite gradient, without waiting for the device.

A child step whose gradient norm is not finite is skipped on the device (see
``SearchModule.child_step``). :class:`NonFiniteCount` counts those skips on the device too, and
the host reads the counts only when it reads anyway (every ``trainer.log_every_n_steps`` child
steps and at the end of the child phase): then :meth:`NonFiniteCount.check` stops the search
after ``search.max_nonfinite`` skipped steps in a row.
"""

from __future__ import annotations

import torch
from torch import Tensor

from enas_lightning.errors import NonFiniteError


class NonFiniteCount:
    """Skipped child steps: all of them, and the current run of them in a row.

    Args:
        limit: ``search.max_nonfinite``; :meth:`check` raises once a run in a row reaches it.

    ``total`` and ``in_a_row`` are the host's copies as of the last :meth:`check` or
    :meth:`sync` (and what checkpoints keep); between them the device holds the live counts.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.total = 0
        self.in_a_row = 0
        # on the device between checks: [skipped in all, skipped in a row, longest run in a row]
        self._counts: Tensor | None = None

    @property
    def device_total(self) -> Tensor:
        """The live count of all skipped steps, a 0-dim int64 device tensor (logged per step)."""
        assert self._counts is not None  # set up by start
        return self._counts[0]

    def start(self, device: torch.device) -> None:
        """Put the host counts on ``device`` (at the start of training, and after a resume)."""
        n = [self.total, self.in_a_row, self.in_a_row]
        self._counts = torch.tensor(n, device=device)

    def count(self, skip: Tensor) -> None:
        """Count one step, skipped where ``skip`` (a 0-dim bool device tensor) holds; no host
        synchronisation."""
        assert self._counts is not None  # set up by start
        total, in_a_row, longest = self._counts.unbind()
        s = skip.long()
        in_a_row = (in_a_row + 1) * s
        self._counts = torch.stack([total + s, in_a_row, torch.maximum(longest, in_a_row)])

    def sync(self) -> None:
        """Copy the device counts to the host without checking them (before a checkpoint)."""
        if self._counts is not None:
            total, in_a_row, _ = self._counts.tolist()
            self.total, self.in_a_row = total, in_a_row

    def check(self, epoch: int) -> None:
        """Copy the device counts to the host; stop after ``limit`` skipped steps in a row.

        Raises:
            NonFiniteError: the longest run in a row since the last check reached ``limit``
                (``epoch`` is named in the message).
        """
        if self._counts is None:
            return
        total, in_a_row, longest = self._counts.tolist()
        self.total, self.in_a_row = total, in_a_row
        self._counts[2] = in_a_row  # the longest run is checked once
        if longest >= self.limit:
            raise NonFiniteError(
                f"search.max_nonfinite={self.limit}: the child gradient was non-finite {longest} "
                f"steps in a row (epoch {epoch}); lower search.optim.lr_max or check the data"
            )

"""One search epoch as one stream of steps: the child phase's minibatches, then the controller's.

Putting the controller phase inside the epoch (instead of in an epoch-end hook) gives every step
of the search the same treatment by Lightning: a position that checkpoints record and resume
restores, one backward per ``training_step`` (what DDP expects), and progress reporting.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from enas_lightning.data.loader import EpochBatches

CHILD, CONTROLLER = 0, 1


class SearchEpoch:
    """Yields ``(CHILD, index batch [B])`` for the child phase, then ``(CONTROLLER, tensor(k))``
    for the ``k``-th controller update when a controller phase is due after this epoch.

    Args:
        child: this rank's shuffled, sharded minibatches of the training split.
        controller_steps: updates per controller phase (0 = never, e.g. random search).
        train_every: a controller phase after every ``train_every`` epochs.
        child_batches: cap on child minibatches per epoch (0 = the whole split).
        warmup_epochs: no controller phase in the first ``warmup_epochs`` epochs.
        epoch: the epoch the stream starts at (its length depends on it).
    """

    def __init__(
        self,
        child: EpochBatches,
        controller_steps: int,
        train_every: int = 1,
        child_batches: int = 0,
        warmup_epochs: int = 0,
        epoch: int = 0,
    ) -> None:
        self.child = child
        self.controller_steps = controller_steps
        self.train_every = max(1, train_every)
        self.child_batches = min(len(child), child_batches) if child_batches > 0 else len(child)
        self.warmup_epochs = warmup_epochs
        self.epoch = epoch
        child.set_epoch(epoch)
        self.consumed = 0  # steps of the current epoch finished; set by the training module
        self._restored_epoch: int | None = None
        self.sampler = self  # Lightning calls loader.sampler.set_epoch(epoch)

    def warmup(self, epoch: int | None = None) -> bool:
        """Whether ``epoch`` (default: the current one) is a supernet warm-up epoch."""
        return (self.epoch if epoch is None else epoch) < self.warmup_epochs

    def controller_due(self, epoch: int | None = None) -> bool:
        e = self.epoch if epoch is None else epoch
        return self.controller_steps > 0 and not self.warmup(e) and (e + 1) % self.train_every == 0

    def host_reads_due(self, step: int, every: int) -> bool:
        """Whether the host may read device values after step ``step`` of the epoch.

        Child steps run without waiting for the device except after every ``every``-th one
        (``trainer.log_every_n_steps``, when Lightning logs) and the last one; controller steps
        read their rewards anyway. The non-finite check and the progress bar read then.
        """
        return step + 1 >= self.child_batches or (step + 1) % max(1, every) == 0

    def __len__(self) -> int:
        return self.child_batches + (self.controller_steps if self.controller_due() else 0)

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.consumed = 0
            self._restored_epoch = None
        self.epoch = epoch
        self.child.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, Tensor]]:
        start = self.consumed if self._restored_epoch == self.epoch else 0
        self._restored_epoch = None
        self.consumed = start
        order = self.child.indices()
        b = self.child.batch_size
        for i in range(min(start, self.child_batches), self.child_batches):
            yield CHILD, order[i * b : (i + 1) * b]
        if self.controller_due():
            for k in range(max(start - self.child_batches, 0), self.controller_steps):
                yield CONTROLLER, torch.tensor(k)

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "consumed": self.consumed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        self.child.set_epoch(self.epoch)
        self.consumed = int(state["consumed"])
        self._restored_epoch = self.epoch if 0 < self.consumed < len(self) else None

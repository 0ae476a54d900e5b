"""An on-device batch loader: index batches over tensors that already live on the device.

The datasets of this project fit in accelerator memory, so instead of a ``DataLoader`` with
workers and collation, the Lightning modules keep whole splits on the device and slice them with
the index batches yielded here. Sharding across ranks and mid-epoch resumption are done by hand,
in a way Lightning recognises (``sampler.set_epoch`` and ``state_dict``/``load_state_dict``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

from enas_lightning.errors import ConfigError


class EpochBatches:
    """Iterable over one epoch of index batches for this rank.

    Each epoch's order is a permutation seeded by ``(seed, epoch)`` — identical on every rank — and
    rank ``r`` takes the ``r``-th of ``world_size`` equal contiguous shards of it (the remainder is
    dropped so every rank has the same number of batches). Yields CPU ``LongTensor`` index batches
    ``[batch_size]``; ``drop_last`` drops the last incomplete batch.

    ``consumed`` is the number of batches of the current epoch the training loop has finished; the
    owner sets ``loader.consumed = batch_idx + 1`` after each step so that :meth:`state_dict` can
    record where to resume.
    """

    def __init__(
        self,
        num_items: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        drop_last: bool = True,
        setting: str = "batch_size",
    ) -> None:
        """``setting`` names the batch-size setting in error messages (e.g. ``train.batch_size``)."""
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank={rank} world_size={world_size}: need 0 <= rank < world_size")
        if batch_size < 1:
            raise ConfigError(setting, batch_size, "1 or more")
        self.shard_size = num_items // world_size
        if self.shard_size < batch_size:
            raise ConfigError(
                setting, batch_size, f"at most {self.shard_size} (the split's size per rank)"
            )
        self.num_items = num_items
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.epoch = 0
        self.consumed = 0
        # The epoch whose position was restored by load_state_dict, until it is iterated.
        self._restored_epoch: int | None = None
        # Lightning's _set_sampler_epoch calls ``loader.sampler.set_epoch(epoch)``.
        self.sampler = self
        # Lightning's shuffle check on evaluation loaders reads ``batch_sampler`` next to
        # ``sampler``; there is none (the batches are made here)
        self.batch_sampler = None

    def __len__(self) -> int:
        """Batches per epoch on this rank."""
        if self.drop_last:
            return self.shard_size // self.batch_size
        return -(-self.shard_size // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose permutation the next iteration uses."""
        if epoch != self.epoch:
            self.consumed = 0
            self._restored_epoch = None
        self.epoch = epoch

    def indices(self) -> Tensor:
        """This rank's item order for the current epoch, int64 ``[shard_size]``."""
        if self.shuffle:
            # torch's CPU generator keeps only 32 bits of its seed, so (seed, epoch) is hashed
            # into 32 bits by numpy's SeedSequence rather than packed into one 64-bit integer.
            mixed = np.random.SeedSequence([self.seed % 2**32, self.epoch % 2**32])
            g = torch.Generator().manual_seed(int(mixed.generate_state(1)[0]))
            order = torch.randperm(self.num_items, generator=g)
        else:
            order = torch.arange(self.num_items)
        start = self.rank * self.shard_size
        return order[start : start + self.shard_size]

    def __iter__(self) -> Iterator[Tensor]:
        """Yield index batches ``[batch_size]`` (the last may be smaller without ``drop_last``).

        Starts at batch ``consumed`` when the position was restored for this epoch by
        :meth:`load_state_dict` (mid-epoch resume), else at 0.
        """
        start = self.consumed if self._restored_epoch == self.epoch else 0
        self._restored_epoch = None  # the next iteration is a full epoch again
        self.consumed = start
        order = self.indices()
        for b in range(start, len(self)):
            yield order[b * self.batch_size : (b + 1) * self.batch_size]

    def state_dict(self) -> dict[str, Any]:
        """``{"epoch": ..., "consumed": ...}``: where the training loop stands."""
        return {"epoch": self.epoch, "consumed": self.consumed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume: the next iteration of epoch ``state["epoch"]`` skips its consumed batches."""
        self.epoch = int(state["epoch"])
        self.consumed = int(state["consumed"])
        # A fully consumed epoch needs no partial replay.
        self._restored_epoch = self.epoch if 0 < self.consumed < len(self) else None

"""Splits held on the training device, sliced and augmented there in whole batches."""

from __future__ import annotations

import torch
from torch import Tensor

from enas_lightning.data.augment import augment_batch
from enas_lightning.data.datasets import ImageSplits


class DeviceSplits:
    """The tensors of :class:`ImageSplits` on one device plus the augmentation settings.

    Moving the whole dataset once (CIFAR-10 is 600 MB as float32) replaces a ``DataLoader``'s
    per-batch copies and workers: batches are index gathers on the device.
    """

    def __init__(self, splits: ImageSplits, pad: int = 0, flip: bool = False, cutout: int = 0):
        self.splits = splits
        self.pad, self.flip, self.cutout = pad, flip, cutout
        self.device = torch.device("cpu")
        self.channels_last = False
        self.train_x, self.train_y = splits.train_x, splits.train_y
        self.val_x, self.val_y = splits.val_x, splits.val_y
        self.test_x, self.test_y = splits.test_x, splits.test_y

    def to(self, device: torch.device, channels_last: bool = False) -> DeviceSplits:
        """Hold the splits on ``device``, images in channels-last memory format if asked."""
        if device != self.device or channels_last != self.channels_last:
            fmt = torch.channels_last if channels_last else torch.contiguous_format
            for name in ("train", "val", "test"):
                x = getattr(self.splits, f"{name}_x")
                setattr(self, f"{name}_x", x.to(device).contiguous(memory_format=fmt))
                setattr(self, f"{name}_y", getattr(self.splits, f"{name}_y").to(device))
            self.device, self.channels_last = device, channels_last
        return self

    def train_batch(self, idx: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """Augmented training images ``[B, C, H, W]`` and labels ``[B]`` for indices ``[B]``."""
        idx = idx.to(self.device, non_blocking=True)
        x = augment_batch(self.train_x[idx], self.pad, self.flip, self.cutout, generator)
        return x, self.train_y[idx]

    def val_batch(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        """Validation images (never augmented) and labels for indices ``[B]``."""
        idx = idx.to(self.device, non_blocking=True)
        return self.val_x[idx], self.val_y[idx]

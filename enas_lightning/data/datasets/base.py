"""What a dataset is: one object that loads its images and knows their shape without loading.

A dataset loads its training and test images (:class:`RawImages`); the validation split is held
out and the images are normalised in one place for every dataset, :func:`finish`, so that
every dataset is split and scaled the same way. A dataset is one module
``data/datasets/<name>.py`` plus one :func:`~enas_lightning.data.datasets.register_dataset`
call (docs/new_dataset.md).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from enas_lightning.config import DatasetConfig
from enas_lightning.errors import ConfigError

ImageShape = tuple[int, int, int]  # (C, H, W) of one image


@dataclass(frozen=True, eq=False)
class RawImages:
    """A dataset's training and test images as it stores them, before any split or scaling.

    Images ``[N, C, H, W]``, uint8 with values ``0..255`` or float in ``[0, 1]`` (kept uint8
    where the source is, so that the big arrays are indexed before being blown up to float32);
    labels int64 ``[N]`` in ``0..num_classes - 1``.
    """

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    num_classes: int


@dataclass(frozen=True, eq=False)
class ImageSplits:
    """Whole splits as normalised float32 tensors, ``[N, C, H, W]``, labels int64 ``[N]``.

    ``val_x``/``val_y`` may hold zero images (final training, or ``val_size=0``). ``mean`` and
    ``std`` are the per-channel statistics of ``train_x`` in ``[0, 1]`` scale that were used to
    normalise all three splits.
    """

    name: str
    train_x: Tensor
    train_y: Tensor
    val_x: Tensor
    val_y: Tensor
    test_x: Tensor
    test_y: Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_classes: int

    @property
    def image_shape(self) -> ImageShape:
        """``(C, H, W)`` of every image."""
        c, h, w = self.train_x.shape[1:]
        return int(c), int(h), int(w)


class Dataset(ABC):
    """One dataset. Subclasses set :attr:`name` (``dataset.name``); ``cfg`` arguments are the
    ``dataset`` config section."""

    name: ClassVar[str]

    @abstractmethod
    def load(self, cfg: DatasetConfig) -> RawImages:
        """The training and test images (reading, downloading or generating them).

        Raises:
            ConfigError: a ``dataset.*`` setting this dataset rejects.
            DataError: the files are missing, corrupt or unreadable.
        """

    @abstractmethod
    def shape(self, cfg: DatasetConfig) -> tuple[int, ImageShape]:
        """``(num_classes, (C, H, W))`` of what :meth:`load` would return, read from what
        defines them without loading any image (``task=inspect`` and the checks before a run
        use it)."""


def finish(cfg: DatasetConfig, holdout: bool, raw: RawImages) -> ImageSplits:
    """Hold the validation split out of ``raw``'s training images, scale to [0, 1], normalise.

    As in the ENAS reference code, images are normalised with the per-channel mean and standard
    deviation of the training images that remain after the validation images were held out.

    Args:
        cfg: the dataset settings (``name``, ``val_size``, ``seed``).
        holdout: hold ``cfg.val_size`` training images out (chosen with ``cfg.seed``), or keep
            them all for training and return an empty validation split.
        raw: the dataset's images as :meth:`Dataset.load` returned them.
    """
    train_x, train_y, test_x, test_y = raw.train_x, raw.train_y, raw.test_x, raw.test_y
    n_train = train_x.shape[0]
    val_size = cfg.val_size if holdout else 0
    if val_size >= n_train:
        raise ConfigError(
            "dataset.val_size",
            cfg.val_size,
            f"at most {n_train - 1} (the {cfg.name} training split has {n_train} images)",
        )
    if val_size > 0:
        # A generator of its own so the choice of validation images depends on nothing but seed.
        perm = torch.randperm(n_train, generator=torch.Generator().manual_seed(cfg.seed))
        # Sorted so the remaining images keep their file order (nicer to debug, same content).
        val_idx, keep_idx = perm[:val_size].sort().values, perm[val_size:].sort().values
        val_x, val_y = train_x[val_idx], train_y[val_idx]
        train_x, train_y = train_x[keep_idx], train_y[keep_idx]
    else:
        val_x, val_y = train_x[:0], train_y[:0]

    train_x, val_x, test_x = (_to_unit(x) for x in (train_x, val_x, test_x))
    # Population statistics (np.std in the reference), per channel over N, H and W.
    std, mean = torch.std_mean(train_x, dim=(0, 2, 3), correction=0)
    # A constant channel would divide by zero; leaving it unscaled is harmless.
    std = torch.where(std > 0, std, torch.ones_like(std))
    for x in (train_x, val_x, test_x):
        normalise_(x, mean, std)  # in place: CIFAR-10 is 600 MB
    return ImageSplits(
        name=cfg.name,
        train_x=train_x,
        train_y=train_y.long(),
        val_x=val_x,
        val_y=val_y.long(),
        test_x=test_x,
        test_y=test_y.long(),
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
        num_classes=raw.num_classes,
    )


def normalise_(x: Tensor, mean: Tensor | Sequence[float], std: Tensor | Sequence[float]) -> Tensor:
    """In place: float images ``[N, C, H, W]`` in ``[0, 1]`` → ``(x - mean) / std`` per channel
    (``mean``, ``std``: ``[C]``, e.g. :class:`ImageSplits`' own). Returns ``x``."""
    mean, std = torch.as_tensor(mean, dtype=x.dtype), torch.as_tensor(std, dtype=x.dtype)
    return x.sub_(mean[:, None, None]).div_(std[:, None, None])


def to_network_input(
    x: Tensor, mean: Tensor | Sequence[float], std: Tensor | Sequence[float]
) -> Tensor:
    """Images as a dataset stores them (uint8 ``0..255`` or float ``[0, 1]``, ``[N, C, H, W]``)
    → a new float32 tensor as the network is fed: scaled to ``[0, 1]``, then normalised with a
    run's training ``mean`` and ``std`` (what :func:`finish` does to its splits)."""
    return normalise_(_to_unit(x), mean, std)


def _to_unit(x: Tensor) -> Tensor:
    """uint8 ``0..255`` or float ``[0, 1]`` images → a new float32 tensor in ``[0, 1]``."""
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    return x.float().clone()


def split_test(cfg: DatasetConfig, n: int, test_size: int) -> tuple[Tensor, Tensor]:
    """Indices ``(train, test)`` of a seeded random split of ``n`` images; test has ``test_size``.

    For datasets without a test split of their own (digits, image folders).
    """
    if not 0 < test_size < n:
        raise ConfigError(
            "dataset.test_size", cfg.test_size, f"at most {n - 1} ({cfg.name} has {n} images)"
        )
    # seed + 1 so the test split is not the same draw as the validation split.
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed + 1))
    return perm[test_size:].sort().values, perm[:test_size].sort().values

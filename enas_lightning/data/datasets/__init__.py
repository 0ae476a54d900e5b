"""Datasets: one module per dataset, one :class:`Dataset` object per dataset, looked up by name.

``DATASETS["cifar10"]`` is CIFAR-10 (downloaded once), ``"digits"`` scikit-learn's 8 x 8 digits
(bundled, no download), ``"fake"`` seeded random images whose mean depends on the class,
``"image_folder"`` a class-per-folder tree of image files. A new dataset is a module with a
:class:`Dataset` subclass and one :func:`register_dataset` call (docs/new_dataset.md); another
package's datasets are found through the entry point group ``enas_lightning.datasets``.

Every dataset is loaded completely into memory as float32 tensors ``[N, C, H, W]`` (labels int64
``[N]``) so that it can be moved to the training device once and sliced there (see
:mod:`enas_lightning.data.loader`). As in the ENAS reference code, images are scaled to ``[0, 1]``
and normalised with the per-channel mean and standard deviation of the training images that
remain after the validation images were held out (:func:`~.base.finish`, the same for all).
"""

from __future__ import annotations

from enas_lightning.config import DatasetConfig
from enas_lightning.data.datasets.base import (
    Dataset,
    ImageShape,
    ImageSplits,
    RawImages,
    finish,
    split_test,
    to_network_input,
)
from enas_lightning.errors import ConfigError
from enas_lightning.registry import Registry

BUILTIN = ("cifar10", "digits", "fake", "image_folder")
# setup.cfg of a package with datasets:
# [options.entry_points] enas_lightning.datasets = name = pkg.module
ENTRY_POINT_GROUP = "enas_lightning.datasets"

DATASETS: Registry[Dataset] = Registry(
    "dataset.name",
    {name: f"enas_lightning.data.datasets.{name}" for name in BUILTIN},
    ENTRY_POINT_GROUP,
)


def register_dataset(dataset: Dataset) -> Dataset:
    """Make ``dataset`` available as ``dataset.name=<dataset.name>`` (replaces one of that
    name)."""
    if not isinstance(dataset, Dataset):
        raise TypeError(f"register_dataset: expected a Dataset, got {type(dataset).__name__}")
    return DATASETS.add(dataset.name, dataset)


def get_dataset(name: str) -> Dataset:
    """The registered dataset ``name``; a :class:`ConfigError` naming ``dataset.name`` and the
    registered names otherwise."""
    return DATASETS.lookup(name)


def load_splits(cfg: DatasetConfig, holdout: bool = True) -> ImageSplits:
    """Load ``cfg.name`` as normalised train/val/test tensors.

    Args:
        cfg: the dataset settings.
        holdout: ``True`` (search) holds ``cfg.val_size`` training images out as the validation
            split, chosen with ``cfg.seed``; ``False`` (final training) trains on the whole
            training split and returns an empty validation split.

    Returns:
        The splits; images ``[N, C, H, W]`` float32 normalised per channel, labels int64 ``[N]``.
    """
    dataset = get_dataset(cfg.name)
    if cfg.val_size < 0:
        raise ConfigError("dataset.val_size", cfg.val_size, "0 (no validation split) or more")
    if cfg.test_size < 0:
        raise ConfigError("dataset.test_size", cfg.test_size, "0 (dataset default) or more")
    return finish(cfg, holdout, dataset.load(cfg))


def data_shape(cfg: DatasetConfig) -> tuple[int, ImageShape]:
    """``(num_classes, (C, H, W))`` of the dataset that :func:`load_splits` would load, read
    from what defines them without loading any image (see :meth:`Dataset.shape`)."""
    return get_dataset(cfg.name).shape(cfg)


__all__ = [
    "BUILTIN",
    "DATASETS",
    "ENTRY_POINT_GROUP",
    "Dataset",
    "ImageShape",
    "ImageSplits",
    "RawImages",
    "data_shape",
    "finish",
    "get_dataset",
    "load_splits",
    "register_dataset",
    "split_test",
    "to_network_input",
]

"""Data layer: whole datasets as device tensors, batch augmentation and index-batch loading."""

from enas_lightning.data.augment import augment_batch, cutout_mask
from enas_lightning.data.datasets import DATASET_NAMES, DatasetConfig, ImageSplits, load_splits
from enas_lightning.data.loader import EpochBatches

__all__ = [
    "DATASET_NAMES",
    "DatasetConfig",
    "EpochBatches",
    "ImageSplits",
    "augment_batch",
    "cutout_mask",
    "load_splits",
]

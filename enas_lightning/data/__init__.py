"""Data layer: whole datasets as device tensors, batch augmentation and index-batch loading."""

from enas_lightning.config import DatasetConfig
from enas_lightning.data.augment import augment_batch, cutout_mask
from enas_lightning.data.datasets import (
    DATASETS,
    Dataset,
    ImageSplits,
    RawImages,
    get_dataset,
    load_splits,
    register_dataset,
)
from enas_lightning.data.loader import EpochBatches

__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetConfig",
    "EpochBatches",
    "ImageSplits",
    "RawImages",
    "augment_batch",
    "cutout_mask",
    "get_dataset",
    "load_splits",
    "register_dataset",
]

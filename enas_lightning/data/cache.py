"""The dataset splits kept in memory between the precheck and the task that trains on them.

:mod:`enas_lightning.precheck` loads the splits to check them before Hydra writes into the run
directory; the task then asks for the same splits again and gets the loaded ones back instead of
reading and normalising the dataset a second time.
"""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

from enas_lightning.data.datasets import ImageSplits, load_splits

# (the dataset config as resolved YAML, holdout) -> its splits; at most one entry
_SPLITS: dict[tuple[str, bool], ImageSplits] = {}


def load_splits_cached(dataset_cfg: Any, holdout: bool) -> ImageSplits:
    """:func:`~enas_lightning.data.datasets.load_splits`, loaded at most once per process.

    Args:
        dataset_cfg: the ``dataset`` config node (a ``DictConfig``; compared by its resolved
            YAML, so two equal configs share one entry).
        holdout: hold the validation images out of the training split (the search's splits).

    Returns:
        The splits (``[N, C, H, W]`` float32 images, ``[N]`` int64 labels per split). Only the
        most recently requested dataset is kept in memory.
    """
    key = (OmegaConf.to_yaml(dataset_cfg, resolve=True), holdout)
    if key not in _SPLITS:
        _SPLITS.clear()  # keep at most one dataset in memory
        _SPLITS[key] = load_splits(dataset_cfg, holdout=holdout)
    return _SPLITS[key]

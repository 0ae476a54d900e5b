"""scikit-learn's digits: 1797 grayscale 8 x 8 handwritten digits, bundled (no download).

There is no test split of its own: ``dataset.test_size`` images (360 by default) are drawn with
``dataset.seed``.
"""

from __future__ import annotations

import numpy as np
import torch

from enas_lightning.config import DatasetConfig
from enas_lightning.data.datasets import (
    Dataset,
    ImageShape,
    RawImages,
    register_dataset,
    split_test,
)


class Digits(Dataset):
    name = "digits"

    def shape(self, cfg: DatasetConfig) -> tuple[int, ImageShape]:
        return 10, (1, 8, 8)

    def load(self, cfg: DatasetConfig) -> RawImages:
        """1797 digits (values 0..16) → float ``[N, 1, 8, 8]`` in ``[0, 1]``."""
        from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

        digits = load_digits()
        x = torch.from_numpy(np.asarray(digits.images, dtype=np.float32) / 16.0).unsqueeze(1)
        y = torch.from_numpy(np.asarray(digits.target, dtype=np.int64))
        train_idx, test_idx = split_test(cfg, x.shape[0], cfg.test_size or 360)
        return RawImages(
            x[train_idx], y[train_idx], x[test_idx], y[test_idx], len(digits.target_names)
        )


register_dataset(Digits())

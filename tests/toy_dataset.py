"""A toy dataset, registered by the tests and shown in docs/new_dataset.md.

Grayscale 8 x 8 stripes: class 0 horizontal, class 1 vertical, with noise; ``dataset.train_size``
training and ``dataset.test_size`` (32 by default) test images drawn with ``dataset.seed``. It is
everything a dataset needs and nothing more: a loader and its shape.
"""

from __future__ import annotations

import torch

from enas_lightning.config import DatasetConfig
from enas_lightning.data.datasets import Dataset, ImageShape, RawImages, register_dataset
from enas_lightning.errors import ConfigError


class Stripes(Dataset):
    name = "stripes"

    def shape(self, cfg: DatasetConfig) -> tuple[int, ImageShape]:
        return 2, (1, 8, 8)

    def load(self, cfg: DatasetConfig) -> RawImages:
        """Float images ``[N, 1, 8, 8]`` in ``[0, 1]``, labels ``[N]`` in ``{0, 1}``."""
        if cfg.train_size < 1:
            raise ConfigError("dataset.train_size", cfg.train_size, "1 or more for stripes")
        n_train = cfg.train_size
        n = n_train + (cfg.test_size or 32)
        g = torch.Generator().manual_seed(cfg.seed)
        y = torch.randint(2, (n,), generator=g)
        rows = (torch.arange(8) % 2).float().view(8, 1).expand(8, 8)  # horizontal stripes
        stripes = torch.stack([rows, rows.T])  # [2, 8, 8]: one picture per class
        x = 0.7 * stripes[y] + 0.3 * torch.rand(n, 8, 8, generator=g)
        x = x.unsqueeze(1)  # [N, 1, 8, 8]
        return RawImages(x[:n_train], y[:n_train], x[n_train:], y[n_train:], num_classes=2)


STRIPES = register_dataset(Stripes())

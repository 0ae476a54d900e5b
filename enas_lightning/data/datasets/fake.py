"""Random fake images: seeded, shaped by the settings, learnable (each class has its own mean).

``dataset.train_size`` training and ``dataset.test_size`` (64 by default) test images of
``dataset.channels`` x ``dataset.image_size`` (16 by default) squared pixels in
``dataset.num_classes`` classes; the tests and quick checks run on them.
"""

from __future__ import annotations

import torch

from enas_lightning.config import DatasetConfig
from enas_lightning.data.datasets import Dataset, ImageShape, RawImages, register_dataset
from enas_lightning.errors import ConfigError


def _side(cfg: DatasetConfig) -> int:
    return cfg.image_size or 16


class Fake(Dataset):
    name = "fake"

    def shape(self, cfg: DatasetConfig) -> tuple[int, ImageShape]:
        side = _side(cfg)
        return cfg.num_classes, (cfg.channels, side, side)

    def load(self, cfg: DatasetConfig) -> RawImages:
        """Images float ``[N, channels, S, S]`` in ``[0, 1]``: class prototype plus noise."""
        side = _side(cfg)
        test_size = cfg.test_size or 64
        for setting, value, least in (
            ("dataset.image_size", side, 1),
            ("dataset.channels", cfg.channels, 1),
            ("dataset.num_classes", cfg.num_classes, 2),
            ("dataset.train_size", cfg.train_size, 1),
        ):
            if value < least:
                raise ConfigError(setting, value, f"{least} or more for dataset.name='fake'")
        g = torch.Generator().manual_seed(cfg.seed)
        shape = (cfg.channels, side, side)
        prototypes = torch.rand(cfg.num_classes, *shape, generator=g)
        n = cfg.train_size + test_size
        y = torch.randint(cfg.num_classes, (n,), generator=g)
        # Mostly class prototype plus noise: separable, but not trivially (stays within [0, 1]).
        x = 0.6 * prototypes[y] + 0.4 * torch.rand(n, *shape, generator=g)
        n_train = cfg.train_size
        return RawImages(x[:n_train], y[:n_train], x[n_train:], y[n_train:], cfg.num_classes)


register_dataset(Fake())

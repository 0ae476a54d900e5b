"""A class-per-folder tree of image files: ``dataset.data_dir/<class>/*.png|jpg|jpeg``.

Classes are the sub-folders in name order; every image is converted to ``dataset.channels``
channels (1: grayscale, 3: RGB) and resized to ``dataset.image_size`` squared pixels. There is no
test split of its own: ``dataset.test_size`` images (10 % by default) are drawn with
``dataset.seed``.
"""

from __future__ import annotations

from pathlib import Path

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
from enas_lightning.errors import ConfigError, DataError, one_line

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MODES = {1: "L", 3: "RGB"}  # dataset.channels -> the PIL mode images are converted to


class ImageFolder(Dataset):
    name = "image_folder"

    def shape(self, cfg: DatasetConfig) -> tuple[int, ImageShape]:
        """One class per sub-folder; images resized to ``image_size`` with ``channels``."""
        classes = _classes(cfg)
        return len(classes), (cfg.channels, cfg.image_size, cfg.image_size)

    def load(self, cfg: DatasetConfig) -> RawImages:
        """The images as uint8 ``[N, channels, S, S]``, labelled by their folder's rank."""
        from PIL import Image, UnidentifiedImageError

        classes = _classes(cfg)
        root = Path(cfg.data_dir)
        images: list[np.ndarray] = []
        labels: list[int] = []
        side = cfg.image_size
        for label, name in enumerate(classes):
            files = sorted(
                p
                for p in (root / name).iterdir()
                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            if not files:
                raise DataError(
                    f"dataset.data_dir={cfg.data_dir!r}: class folder {name!r} has no "
                    f"{'/'.join(IMAGE_SUFFIXES)} images"
                )
            for file in files:
                try:
                    with Image.open(file) as im:
                        im = im.convert(MODES[cfg.channels]).resize(
                            (side, side), Image.Resampling.BILINEAR
                        )
                        pixels = np.asarray(im, dtype=np.uint8)
                except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
                    raise DataError(
                        f"dataset.data_dir={cfg.data_dir!r}: cannot read image {file} "
                        f"({one_line(exc)}); remove or replace it"
                    ) from exc
                images.append(pixels.reshape(side, side, cfg.channels))
                labels.append(label)

        # [N, H, W, C] → [N, C, H, W]
        x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
        y = torch.tensor(labels, dtype=torch.int64)
        n = x.shape[0]
        test_size = cfg.test_size or max(1, round(0.1 * n))
        train_idx, test_idx = split_test(cfg, n, test_size)
        return RawImages(x[train_idx], y[train_idx], x[test_idx], y[test_idx], len(classes))


def class_folders(root: Path) -> list[str]:
    """The class folder names of a class-per-folder tree in label order (a label is its folder's
    place in name order); hidden folders are not classes."""
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _classes(cfg: DatasetConfig) -> list[str]:
    """The class folders of ``cfg.data_dir`` in name order, after checking the settings."""
    if cfg.image_size <= 0:
        raise ConfigError(
            "dataset.image_size",
            cfg.image_size,
            "a side length > 0 (images of an image_folder dataset are resized to it)",
        )
    if cfg.channels not in MODES:
        raise ConfigError("dataset.channels", cfg.channels, "1 (grayscale) or 3 (RGB)")
    root = Path(cfg.data_dir)
    if not root.is_dir():
        raise DataError(f"dataset.data_dir={cfg.data_dir!r}: no such directory")
    classes = class_folders(root)
    if len(classes) < 2:
        raise DataError(
            f"dataset.data_dir={cfg.data_dir!r}: found {len(classes)} class folder(s) "
            f"{classes}; an image_folder dataset needs at least 2 (data_dir/<class>/*.png|jpg)"
        )
    return classes


register_dataset(ImageFolder())

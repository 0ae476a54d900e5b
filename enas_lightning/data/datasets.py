"""Datasets as whole tensors: CIFAR-10, scikit-learn digits, random fakes and image folders.

Every dataset is loaded completely into memory as float32 tensors ``[N, C, H, W]`` (labels int64
``[N]``) so that it can be moved to the training device once and sliced there (see
:mod:`enas_lightning.data.loader`). As in the ENAS reference code, images are scaled to ``[0, 1]``
and normalised with the per-channel mean and standard deviation of the training images that remain
after the validation images were held out.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from enas_lightning.config import DatasetConfig
from enas_lightning.errors import ConfigError, DataError

DATASET_NAMES = ("cifar10", "digits", "fake", "image_folder")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
_CIFAR10_DIR = "cifar-10-batches-py"
_CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR10_TEST = "test_batch"


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
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of every image."""
        c, h, w = self.train_x.shape[1:]
        return int(c), int(h), int(w)


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
    if cfg.name not in DATASET_NAMES:
        raise ConfigError("dataset.name", cfg.name, "one of " + ", ".join(DATASET_NAMES))
    if cfg.val_size < 0:
        raise ConfigError("dataset.val_size", cfg.val_size, "0 (no validation split) or more")
    if cfg.test_size < 0:
        raise ConfigError("dataset.test_size", cfg.test_size, "0 (dataset default) or more")
    loader = {
        "cifar10": _load_cifar10,
        "digits": _load_digits,
        "fake": _load_fake,
        "image_folder": _load_image_folder,
    }[cfg.name]
    train_x, train_y, test_x, test_y, num_classes = loader(cfg)
    return _finish(cfg, holdout, train_x, train_y, test_x, test_y, num_classes)


# ---------------------------------------------------------------------------------------------
# Shared splitting and normalisation


def _finish(
    cfg: DatasetConfig,
    holdout: bool,
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    num_classes: int,
) -> ImageSplits:
    """Carve the validation split, scale to [0, 1] and normalise.

    ``train_x``/``test_x`` are uint8 ``[N, C, H, W]`` with values ``0..255`` or float in
    ``[0, 1]``; they are converted here so that the big uint8 arrays are indexed before being
    blown up to float32.
    """
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
        x.sub_(mean[:, None, None]).div_(std[:, None, None])  # in place: CIFAR-10 is 600 MB
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
        num_classes=num_classes,
    )


def _to_unit(x: Tensor) -> Tensor:
    """uint8 ``0..255`` or float ``[0, 1]`` images → a new float32 tensor in ``[0, 1]``."""
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    return x.float().clone()


def _split_test(cfg: DatasetConfig, n: int, test_size: int) -> tuple[Tensor, Tensor]:
    """Indices ``(train, test)`` of a seeded random split of ``n`` images; test has ``test_size``."""
    if not 0 < test_size < n:
        raise ConfigError(
            "dataset.test_size", cfg.test_size, f"at most {n - 1} ({cfg.name} has {n} images)"
        )
    # seed + 1 so the test split is not the same draw as the validation split.
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed + 1))
    return perm[test_size:].sort().values, perm[:test_size].sort().values


# ---------------------------------------------------------------------------------------------
# CIFAR-10


def _load_cifar10(cfg: DatasetConfig) -> tuple[Tensor, Tensor, Tensor, Tensor, int]:
    """Train ``[50000, 3, 32, 32]`` and test ``[10000, 3, 32, 32]`` uint8 from the tar.gz."""
    path = Path(cfg.data_dir) / CIFAR10_ARCHIVE
    if not path.is_file():
        if not cfg.download:
            raise DataError(
                f"dataset.data_dir={cfg.data_dir!r}: no CIFAR-10 archive {CIFAR10_ARCHIVE} there "
                f"and dataset.download=false; put {CIFAR10_ARCHIVE} there or set "
                "dataset.download=true with network access"
            )
        _download(cfg.url, path, cfg.data_dir)
    if cfg.md5:
        got = _md5(path)
        if got != cfg.md5.lower():
            raise DataError(
                f"{path}: checksum mismatch (truncated or corrupt download?): md5 {got}, expected "
                f"dataset.md5={cfg.md5!r}; delete the file and retry"
            )

    batches: dict[str, dict[bytes, Any]] = {}
    meta: dict[bytes, Any] | None = None
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                directory, _, base = member.name.rpartition("/")
                if directory.rstrip("/").rpartition("/")[2] != _CIFAR10_DIR or not member.isfile():
                    continue
                if base in _CIFAR10_TRAIN or base in (_CIFAR10_TEST, "batches.meta"):
                    f = tar.extractfile(member)
                    assert f is not None  # isfile() members always have contents
                    obj = _SafeUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
                    if not isinstance(obj, dict):
                        raise ValueError(f"{member.name} holds a {type(obj).__name__}, not a dict")
                    if base == "batches.meta":
                        meta = obj
                    else:
                        batches[base] = obj
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DataError(
            f"{path}: unreadable CIFAR-10 archive ({_one_line(exc)}); delete the file and retry"
        ) from exc
    # A corrupt pickle can fail in many ways; all of them mean the same to the user.
    except (
        pickle.UnpicklingError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        MemoryError,
    ) as exc:
        raise DataError(
            f"{path}: not a CIFAR-10 python archive ({_one_line(exc)}); delete the file and retry"
        ) from exc

    missing = [n for n in (*_CIFAR10_TRAIN, _CIFAR10_TEST) if n not in batches]
    if missing:
        raise DataError(
            f"{path}: not a CIFAR-10 python archive, {_CIFAR10_DIR}/{missing[0]} is missing; "
            "delete the file and retry"
        )
    train = [_cifar_batch(path, name, batches[name]) for name in _CIFAR10_TRAIN]
    test_x, test_y = _cifar_batch(path, _CIFAR10_TEST, batches[_CIFAR10_TEST])
    train_x = torch.cat([x for x, _ in train])
    train_y = torch.cat([y for _, y in train])
    if meta is not None and isinstance(meta.get(b"label_names"), list):
        num_classes = len(meta[b"label_names"])
    else:
        # Small test archives have no batches.meta; the labels tell the class count too.
        num_classes = int(max(train_y.max(), test_y.max())) + 1
    return train_x, train_y, test_x, test_y, num_classes


def _cifar_batch(path: Path, name: str, batch: dict[bytes, Any]) -> tuple[Tensor, Tensor]:
    """One pickled batch → images uint8 ``[N, 3, 32, 32]`` and labels int64 ``[N]``."""
    data, labels = batch.get(b"data"), batch.get(b"labels")
    ok = (
        isinstance(data, np.ndarray)
        and data.dtype == np.uint8
        and data.ndim == 2
        and data.shape[1] == 3 * 32 * 32
        and isinstance(labels, list | np.ndarray)
        and len(labels) == data.shape[0]
    )
    if not ok:
        raise DataError(
            f"{path}: {_CIFAR10_DIR}/{name} is not a CIFAR-10 batch (expected b'data' uint8 "
            "[N, 3072] and N b'labels'); delete the file and retry"
        )
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    if y.numel() and int(y.min()) < 0:
        raise DataError(f"{path}: {_CIFAR10_DIR}/{name} has negative labels")
    # Rows are the red, green then blue planes of 32 x 32 pixels, i.e. already C, H, W.
    x = torch.from_numpy(np.ascontiguousarray(data).reshape(-1, 3, 32, 32).copy())
    return x, y


class _SafeUnpickler(pickle.Unpickler):
    """Unpickler that only builds the numpy arrays a CIFAR batch consists of.

    A downloaded archive is untrusted; an ordinary unpickler would run arbitrary code from it.
    """

    _ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store bytes
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a CIFAR batch")
        return super().find_class(module, name)


def _download(url: str, path: Path, data_dir: str) -> None:
    """Fetch ``url`` to ``path`` through a temporary file so a broken download leaves no archive."""
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".part")
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            while chunk := response.read(1 << 20):
                out.write(chunk)
        os.replace(tmp_name, path)  # atomic: readers never see half an archive
        tmp_name = None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise DataError(
            f"dataset.data_dir={data_dir!r}: no CIFAR-10 archive there and download from "
            f"dataset.url={url!r} failed ({_one_line(exc)}; offline?); put {CIFAR10_ARCHIVE} "
            "there or set dataset.download=true with network access"
        ) from exc
    finally:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


# ---------------------------------------------------------------------------------------------
# scikit-learn digits


def _load_digits(cfg: DatasetConfig) -> tuple[Tensor, Tensor, Tensor, Tensor, int]:
    """1797 grayscale 8 x 8 digits (values 0..16) → float ``[N, 1, 8, 8]`` in ``[0, 1]``."""
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    digits = load_digits()
    x = torch.from_numpy(np.asarray(digits.images, dtype=np.float32) / 16.0).unsqueeze(1)
    y = torch.from_numpy(np.asarray(digits.target, dtype=np.int64))
    train_idx, test_idx = _split_test(cfg, x.shape[0], cfg.test_size or 360)
    return x[train_idx], y[train_idx], x[test_idx], y[test_idx], len(digits.target_names)


# ---------------------------------------------------------------------------------------------
# Random fake data


def _load_fake(cfg: DatasetConfig) -> tuple[Tensor, Tensor, Tensor, Tensor, int]:
    """Seeded random images ``[N, channels, S, S]`` whose mean depends on the class (learnable)."""
    side = cfg.image_size or 16
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
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:], cfg.num_classes


# ---------------------------------------------------------------------------------------------
# Class-per-folder image trees


def _load_image_folder(cfg: DatasetConfig) -> tuple[Tensor, Tensor, Tensor, Tensor, int]:
    """``data_dir/<class>/*.png|jpg|jpeg`` → uint8 ``[N, channels, S, S]``, classes by name."""
    from PIL import Image, UnidentifiedImageError

    if cfg.image_size <= 0:
        raise ConfigError(
            "dataset.image_size",
            cfg.image_size,
            "a side length > 0 (images of an image_folder dataset are resized to it)",
        )
    modes = {1: "L", 3: "RGB"}
    if cfg.channels not in modes:
        raise ConfigError("dataset.channels", cfg.channels, "1 (grayscale) or 3 (RGB)")
    root = Path(cfg.data_dir)
    if not root.is_dir():
        raise DataError(f"dataset.data_dir={cfg.data_dir!r}: no such directory")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise DataError(
            f"dataset.data_dir={cfg.data_dir!r}: found {len(classes)} class folder(s) "
            f"{classes}; an image_folder dataset needs at least 2 (data_dir/<class>/*.png|jpg)"
        )

    images: list[np.ndarray] = []
    labels: list[int] = []
    side = cfg.image_size
    for label, name in enumerate(classes):
        files = sorted(
            p for p in (root / name).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not files:
            raise DataError(
                f"dataset.data_dir={cfg.data_dir!r}: class folder {name!r} has no "
                f"{'/'.join(IMAGE_SUFFIXES)} images"
            )
        for file in files:
            try:
                with Image.open(file) as im:
                    im = im.convert(modes[cfg.channels]).resize(
                        (side, side), Image.Resampling.BILINEAR
                    )
                    pixels = np.asarray(im, dtype=np.uint8)
            except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
                raise DataError(
                    f"dataset.data_dir={cfg.data_dir!r}: cannot read image {file} "
                    f"({_one_line(exc)}); remove or replace it"
                ) from exc
            images.append(pixels.reshape(side, side, cfg.channels))
            labels.append(label)

    # [N, H, W, C] → [N, C, H, W]
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    y = torch.tensor(labels, dtype=torch.int64)
    n = x.shape[0]
    test_size = cfg.test_size or max(1, round(0.1 * n))
    train_idx, test_idx = _split_test(cfg, n, test_size)
    return x[train_idx], y[train_idx], x[test_idx], y[test_idx], len(classes)


def data_shape(cfg: DatasetConfig) -> tuple[int, tuple[int, int, int]]:
    """``(num_classes, (C, H, W))`` of the dataset that :func:`load_splits` would load.

    Read from what defines them without loading any image: CIFAR-10 and digits are fixed, fake
    data is shaped by its settings, an image folder has one class per sub-folder and every image
    is resized to ``image_size`` with ``channels`` channels (the checks match the loader's).
    """
    if cfg.name == "cifar10":
        return 10, (3, 32, 32)
    if cfg.name == "digits":
        return 10, (1, 8, 8)
    if cfg.name == "fake":
        side = cfg.image_size or 16
        return cfg.num_classes, (cfg.channels, side, side)
    if cfg.name != "image_folder":
        raise ConfigError("dataset.name", cfg.name, f"one of {', '.join(DATASET_NAMES)}")
    if cfg.image_size <= 0:
        raise ConfigError(
            "dataset.image_size",
            cfg.image_size,
            "a side length > 0 (images of an image_folder dataset are resized to it)",
        )
    if cfg.channels not in (1, 3):
        raise ConfigError("dataset.channels", cfg.channels, "1 (grayscale) or 3 (RGB)")
    root = Path(cfg.data_dir)
    if not root.is_dir():
        raise DataError(f"dataset.data_dir={cfg.data_dir!r}: no such directory")
    classes = [p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if len(classes) < 2:
        raise DataError(
            f"dataset.data_dir={cfg.data_dir!r}: found {len(classes)} class folder(s) "
            f"{sorted(classes)}; an image_folder dataset needs at least 2 "
            "(data_dir/<class>/*.png|jpg)"
        )
    return len(classes), (cfg.channels, cfg.image_size, cfg.image_size)

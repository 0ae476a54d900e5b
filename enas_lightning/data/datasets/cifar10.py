"""CIFAR-10: 50000 training and 10000 test RGB images of 32 x 32 pixels in 10 classes.

Read from the python version of the archive (``cifar-10-python.tar.gz``, downloaded once from
``dataset.url`` into ``dataset.data_dir`` and checked against ``dataset.md5``): six pickled
batches, each a dict with ``b"data"`` (uint8 ``[N, 3072]``) and ``b"labels"``.
"""

from __future__ import annotations

import pickle
import tarfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from enas_lightning.config import DatasetConfig
from enas_lightning.data.datasets import Dataset, ImageShape, RawImages, register_dataset
from enas_lightning.data.download import fetch
from enas_lightning.data.unpickle import safe_loads
from enas_lightning.errors import DataError, one_line

ARCHIVE = "cifar-10-python.tar.gz"
_DIR = "cifar-10-batches-py"
_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST = "test_batch"


class Cifar10(Dataset):
    name = "cifar10"

    def shape(self, cfg: DatasetConfig) -> tuple[int, ImageShape]:
        return 10, (3, 32, 32)

    def load(self, cfg: DatasetConfig) -> RawImages:
        """Train ``[50000, 3, 32, 32]`` and test ``[10000, 3, 32, 32]`` uint8 from the tar.gz."""
        path = fetch(cfg, ARCHIVE, "CIFAR-10 archive")
        batches, meta = _read_archive(path)
        missing = [n for n in (*_TRAIN, _TEST) if n not in batches]
        if missing:
            raise DataError(
                f"{path}: not a CIFAR-10 python archive, {_DIR}/{missing[0]} is missing; "
                "delete the file and retry"
            )
        train = [_batch(path, name, batches[name]) for name in _TRAIN]
        test_x, test_y = _batch(path, _TEST, batches[_TEST])
        train_x = torch.cat([x for x, _ in train])
        train_y = torch.cat([y for _, y in train])
        if meta is not None and isinstance(meta.get(b"label_names"), list):
            num_classes = len(meta[b"label_names"])
        else:
            # Small test archives have no batches.meta; the labels tell the class count too.
            num_classes = int(max(train_y.max(), test_y.max())) + 1
        return RawImages(train_x, train_y, test_x, test_y, num_classes)


def _read_archive(path: Path) -> tuple[dict[str, dict[bytes, Any]], dict[bytes, Any] | None]:
    """The archive's pickled batches by name and its ``batches.meta`` (``None`` if absent)."""
    batches: dict[str, dict[bytes, Any]] = {}
    meta: dict[bytes, Any] | None = None
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                directory, _, base = member.name.rpartition("/")
                if directory.rstrip("/").rpartition("/")[2] != _DIR or not member.isfile():
                    continue
                if base in _TRAIN or base in (_TEST, "batches.meta"):
                    f = tar.extractfile(member)
                    assert f is not None  # isfile() members always have contents
                    obj = safe_loads(f.read())
                    if not isinstance(obj, dict):
                        raise ValueError(f"{member.name} holds a {type(obj).__name__}, not a dict")
                    if base == "batches.meta":
                        meta = obj
                    else:
                        batches[base] = obj
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DataError(
            f"{path}: unreadable CIFAR-10 archive ({one_line(exc)}); delete the file and retry"
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
            f"{path}: not a CIFAR-10 python archive ({one_line(exc)}); delete the file and retry"
        ) from exc
    return batches, meta


def _batch(path: Path, name: str, batch: dict[bytes, Any]) -> tuple[Tensor, Tensor]:
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
            f"{path}: {_DIR}/{name} is not a CIFAR-10 batch (expected b'data' uint8 "
            "[N, 3072] and N b'labels'); delete the file and retry"
        )
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    if y.numel() and int(y.min()) < 0:
        raise DataError(f"{path}: {_DIR}/{name} has negative labels")
    # Rows are the red, green then blue planes of 32 x 32 pixels, i.e. already C, H, W.
    x = torch.from_numpy(np.ascontiguousarray(data).reshape(-1, 3, 32, 32).copy())
    return x, y


register_dataset(Cifar10())

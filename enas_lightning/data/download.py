"""Dataset files fetched once into ``dataset.data_dir``: an atomic download and an MD5 check.

Any loader whose data comes as a file from the web uses :func:`fetch` (one archive named by the
``dataset.url``/``dataset.md5`` settings, as CIFAR-10) or :func:`download` and :func:`md5` (files
of its own). Written with the standard library because the task is small: one streamed GET into
a temporary file, renamed when complete.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from enas_lightning.config import DatasetConfig
from enas_lightning.errors import DataError, one_line


def fetch(cfg: DatasetConfig, filename: str, what: str) -> Path:
    """``cfg.data_dir/filename``, downloaded from ``cfg.url`` if it is missing and
    ``cfg.download``, checked against ``cfg.md5`` (empty: no check).

    Args:
        cfg: the dataset settings (``data_dir``, ``download``, ``url``, ``md5``).
        filename: the file's name in ``data_dir`` (e.g. ``cifar-10-python.tar.gz``).
        what: the file in a few words for the messages (e.g. ``"CIFAR-10 archive"``).

    Raises:
        DataError: the file is missing and may not or cannot be downloaded, or its checksum
            differs (one line naming the setting and the fix).
    """
    path = Path(cfg.data_dir) / filename
    if not path.is_file():
        if not cfg.download:
            raise DataError(
                f"dataset.data_dir={cfg.data_dir!r}: no {what} {filename} there "
                f"and dataset.download=false; put {filename} there or set "
                "dataset.download=true with network access"
            )
        try:
            download(cfg.url, path)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise DataError(
                f"dataset.data_dir={cfg.data_dir!r}: no {what} there and download from "
                f"dataset.url={cfg.url!r} failed ({one_line(exc)}; offline?); put {filename} "
                "there or set dataset.download=true with network access"
            ) from exc
    if cfg.md5:
        got = md5(path)
        if got != cfg.md5.lower():
            raise DataError(
                f"{path}: checksum mismatch (truncated or corrupt download?): md5 {got}, expected "
                f"dataset.md5={cfg.md5!r}; delete the file and retry"
            )
    return path


def download(url: str, path: Path) -> None:
    """Fetch ``url`` to ``path`` through a temporary file so a broken download leaves no file.

    Raises:
        urllib.error.URLError, OSError, ValueError: the download failed (nothing is left behind).
    """
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".part")
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            while chunk := response.read(1 << 20):
                out.write(chunk)
        os.replace(tmp_name, path)  # atomic: readers never see half a file
        tmp_name = None
    finally:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)


def md5(path: Path) -> str:
    """The hex MD5 digest of the file at ``path`` (read in 1 MiB chunks)."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()

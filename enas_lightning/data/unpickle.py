"""Reading pickles from downloaded archives without running code from them.

A downloaded archive is untrusted, and an ordinary unpickler would run arbitrary code from it.
:func:`safe_loads` builds only the classes it is allowed to: by default the numpy arrays that
dataset batches pickled with numpy (CIFAR-10's, for one) consist of.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Collection
from typing import Any

NUMPY_ARRAYS = frozenset(
    {
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
)


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that builds only the ``(module, name)`` classes of ``allowed``."""

    def __init__(
        self,
        file: io.BufferedIOBase | io.BytesIO,
        allowed: Collection[tuple[str, str]] = NUMPY_ARRAYS,
        encoding: str = "bytes",
    ) -> None:
        super().__init__(file, encoding=encoding)
        self.allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.allowed:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name} in the pickle")
        return super().find_class(module, name)


def safe_loads(
    data: bytes, allowed: Collection[tuple[str, str]] = NUMPY_ARRAYS, encoding: str = "bytes"
) -> Any:
    """The object pickled in ``data``, built from plain Python types and ``allowed`` classes.

    ``encoding="bytes"`` (the default) reads Python 2 pickles' strings as ``bytes``, the keys of
    CIFAR-10's batches (``b"data"``, ``b"labels"``).

    Raises:
        pickle.UnpicklingError: ``data`` names a class outside ``allowed`` (or is no pickle).
    """
    return SafeUnpickler(io.BytesIO(data), allowed, encoding).load()

"""Architectures as plain data: JSON on disk and the authors' integer strings, for any space.

Each space's immutable record and its codec live in ``spaces/<name>/arch.py``; this package
reads and writes them through the space registry (:mod:`enas_lightning.spaces`).
"""

from enas_lightning.arch.io import load_arch, parse_ints, save_arch

__all__ = ["load_arch", "parse_ints", "save_arch"]

"""Architectures as plain data: immutable records, JSON on disk, the authors' integer codec."""

from enas_lightning.arch.io import load_arch, parse_ints, save_arch
from enas_lightning.arch.macro import MacroArch, MacroLayer
from enas_lightning.arch.micro import MicroArch, MicroCell, MicroNode

Arch = MicroArch | MacroArch

__all__ = [
    "Arch",
    "MacroArch",
    "MacroLayer",
    "MicroArch",
    "MicroCell",
    "MicroNode",
    "load_arch",
    "parse_ints",
    "save_arch",
]

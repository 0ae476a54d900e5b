"""Search spaces: one folder per space, one :class:`Space` object per space, looked up by name.

``SPACES["micro"]`` is the ENAS cell space, ``SPACES["macro"]`` the whole-network space. A new
space is a folder ``spaces/<name>/`` (record and codec, controller, ops, supernet, network,
picture) and one :func:`register_space` call (docs/new_space.md), in the way timm registers
models.

Another package's spaces are found through the entry point group ``enas_lightning.spaces``
(each entry names a module whose import registers a space), so ``python -m enas_lightning
search_space.name=<its name>`` works once that package is installed.

The built-in spaces are imported on the first lookup, not when this package is imported: the
records and the config import ``spaces.<name>.arch`` without torch, which keeps
``python -m enas_lightning --help`` fast.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from importlib.metadata import entry_points
from typing import Any

from enas_lightning.errors import ConfigError
from enas_lightning.spaces.base import ArchRecord, Cost, Space

BUILTIN = ("micro", "macro")
# setup.cfg of a package with spaces: [options.entry_points] enas_lightning.spaces = name = pkg.module
ENTRY_POINT_GROUP = "enas_lightning.spaces"


class _Registry(Mapping[str, Space]):
    """The spaces by name; the built-in ones are imported (and registered) on first use."""

    def __init__(self) -> None:
        self._spaces: dict[str, Space] = {}
        self._loaded = False

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            # importing a built-in space's module registers it, in this order
            for name in BUILTIN:
                importlib.import_module(f"enas_lightning.spaces.{name}.space")
            # other packages' spaces: importing the module an entry point names registers it
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                importlib.import_module(ep.value.split(":")[0])

    def add(self, space: Space) -> Space:
        if space.name not in BUILTIN:
            self._load()  # the built-in spaces come first, in their order
        self._spaces[space.name] = space
        return space

    def __getitem__(self, name: str) -> Space:
        self._load()
        return self._spaces[name]

    def __iter__(self) -> Iterator[str]:
        self._load()
        return iter(self._spaces)

    def __len__(self) -> int:
        self._load()
        return len(self._spaces)


SPACES = _Registry()


def register_space(space: Space) -> Space:
    """Make ``space`` available as ``search_space.name=<space.name>`` (replaces one of that name)."""
    if not isinstance(space, Space):
        raise TypeError(f"register_space: expected a Space, got {type(space).__name__}")
    return SPACES.add(space)


def get_space(name: str, setting: str = "search_space.name") -> Space:
    """The registered space ``name``; a :class:`ConfigError` naming ``setting`` otherwise."""
    if name not in SPACES:
        raise ConfigError(setting, name, f"one of {', '.join(SPACES)}")
    return SPACES[name]


def space_of(arch: Any) -> Space:
    """The space an architecture record belongs to (its ``space`` class attribute)."""
    name = getattr(type(arch), "space", None)
    if not isinstance(name, str) or name not in SPACES:
        raise TypeError(f"not an architecture record of a registered space: {type(arch).__name__}")
    return SPACES[name]


__all__ = [
    "SPACES",
    "ArchRecord",
    "Cost",
    "Space",
    "get_space",
    "register_space",
    "space_of",
]

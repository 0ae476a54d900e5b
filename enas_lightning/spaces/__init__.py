"""Search spaces: one folder per space, one :class:`Space` object per space, looked up by name.

``SPACES["micro"]`` is the ENAS cell space, ``SPACES["macro"]`` the whole-network space. A new
space is a folder ``spaces/<name>/`` (record and codec, controller, ops, supernet, network,
picture) and one :func:`register_space` call (docs/new_space.md), in the way timm registers
models.

A space's own settings are dataclasses extending the config sections (``Space.settings``);
``search_space=<name>`` composes them (:func:`enas_lightning.config.register_configs`).

Another package's spaces are found through the entry point group ``enas_lightning.spaces``
(each entry names a module whose import registers a space), so ``python -m enas_lightning
search_space=<its name>`` works once that package is installed.

The built-in spaces are imported on the first lookup, not when this package is imported: the
records and the config import ``spaces.<name>.arch`` without torch, which keeps
``python -m enas_lightning --help`` fast.
"""

from __future__ import annotations

from typing import Any

from enas_lightning.registry import Registry
from enas_lightning.spaces.base import ArchRecord, Cost, OpPlacement, Space

BUILTIN = ("micro", "macro")
# setup.cfg of a package with spaces: [options.entry_points] enas_lightning.spaces = name = pkg.module
ENTRY_POINT_GROUP = "enas_lightning.spaces"

SPACES: Registry[Space] = Registry(
    "search_space.name",
    {name: f"enas_lightning.spaces.{name}.space" for name in BUILTIN},
    ENTRY_POINT_GROUP,
)


def register_space(space: Space) -> Space:
    """Make ``space`` available as ``search_space=<space.name>`` (replaces one of that name)."""
    if not isinstance(space, Space):
        raise TypeError(f"register_space: expected a Space, got {type(space).__name__}")
    from enas_lightning.config import check_settings

    check_settings(space)
    return SPACES.add(space.name, space)


def get_space(name: str, setting: str = "search_space.name") -> Space:
    """The registered space ``name``; a :class:`ConfigError` naming ``setting`` otherwise."""
    return SPACES.lookup(name, setting)


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
    "OpPlacement",
    "Space",
    "get_space",
    "register_space",
    "space_of",
]

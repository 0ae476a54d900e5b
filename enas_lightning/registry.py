"""Things of one kind looked up by name: spaces, datasets, search strategies, rewards.

A :class:`Registry` is what ``SPACES``, ``DATASETS``, ``STRATEGIES`` and ``REWARDS`` are: a
read-only mapping from the name a setting takes (``search_space.name``, ``dataset.name``,
``controller.name``, ``reward.name``) to the registered object, in the way timm registers
models. The built-in ones are imported on the first lookup, not when the package is imported
(which keeps ``python -m enas_lightning --help`` fast), and another package's are found through
an entry point group: each entry names a module whose import registers its object, so
``python -m enas_lightning <setting>=<its name>`` works once that package is installed.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from importlib import metadata
from typing import Generic, TypeVar

from enas_lightning.errors import ConfigError

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """The registered objects by name, built-in ones first, in their order.

    Args:
        setting: the setting that names one of them (``"dataset.name"``), for the error of
            :meth:`lookup`.
        builtin: name -> the module whose import registers that built-in one.
        group: the entry point group through which other packages announce theirs.
    """

    def __init__(self, setting: str, builtin: Mapping[str, str], group: str) -> None:
        self.setting = setting
        self.builtin = dict(builtin)
        self.group = group
        self._items: dict[str, T] = {}
        self._loaded = False

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            # importing a built-in one's module registers it, in this order
            for module in self.builtin.values():
                importlib.import_module(module)
            # other packages': importing the module an entry point names registers it
            for ep in metadata.entry_points(group=self.group):
                importlib.import_module(ep.module)

    def add(self, name: str, item: T) -> T:
        """Register ``item`` as ``name`` (replaces one of that name); returns ``item``."""
        if name not in self.builtin:
            self._load()  # the built-in ones come first, in their order
        self._items[name] = item
        return item

    def lookup(self, name: str, setting: str | None = None) -> T:
        """The one registered as ``name``; a :class:`ConfigError` naming ``setting`` (default:
        this registry's) and the registered names otherwise."""
        if name not in self:
            raise ConfigError(setting or self.setting, name, f"one of {', '.join(self)}")
        return self[name]

    def __getitem__(self, name: str) -> T:
        self._load()
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        self._load()
        return iter(self._items)

    def __len__(self) -> int:
        self._load()
        return len(self._items)

"""Search strategies: how a weight-sharing search chooses architectures, looked up by name.

``controller.name`` chooses it (``controller=random`` on the command line selects the config
group of that name):

- ``enas`` (the default): the LSTM controller trained with REINFORCE (Pham et al. 2018);
- ``random``: random search with weight sharing (Li and Talwalkar, 2019): uniform children, no
  controller phase, uniform candidates.

A new strategy is one module with a :class:`SearchStrategy` subclass and one
:func:`register_strategy` call (docs/new_strategy.md). Another package's strategies are found
through the entry point group ``enas_lightning.strategies`` (each entry names a module whose
import registers a strategy). The built-in strategies are imported on the first lookup.
"""

from __future__ import annotations

from enas_lightning.registry import Registry
from enas_lightning.strategies.base import SearchStrategy

# setup.cfg of a package with strategies:
# [options.entry_points] enas_lightning.strategies = name = pkg.module
ENTRY_POINT_GROUP = "enas_lightning.strategies"

STRATEGIES: Registry[SearchStrategy] = Registry(
    "controller.name",
    {
        "enas": "enas_lightning.strategies.enas",
        "random": "enas_lightning.strategies.random_search",
    },
    ENTRY_POINT_GROUP,
)


def register_strategy(strategy: SearchStrategy) -> SearchStrategy:
    """Make ``strategy`` available as ``controller.name=<strategy.name>`` (replaces one of that
    name)."""
    if not isinstance(strategy, SearchStrategy):
        raise TypeError(
            f"register_strategy: expected a SearchStrategy, got {type(strategy).__name__}"
        )
    return STRATEGIES.add(strategy.name, strategy)


def get_strategy(name: str, setting: str = "controller.name") -> SearchStrategy:
    """The registered strategy ``name``; a :class:`ConfigError` naming ``setting`` otherwise."""
    return STRATEGIES.lookup(name, setting)


__all__ = ["STRATEGIES", "SearchStrategy", "get_strategy", "register_strategy"]

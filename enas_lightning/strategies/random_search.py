"""``controller=random``: random search with weight sharing (Li and Talwalkar, 2019).

Every child is sampled uniformly from the space, no controller phase runs, and the derivation
scores ``search.derive_samples`` uniform samples: the supernet training and the derivation are
otherwise those of ENAS, which makes it the baseline ENAS has to beat.

The uniform samples are the space's controller's (``sample_archs(uniform=True)``: every
decision uniform). It keeps the ENAS strategy's state (the controller's optimizer and the
baseline, never used), so that a checkpoint has one format whichever of the two ran.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from enas_lightning.spaces import ArchRecord
from enas_lightning.strategies import register_strategy
from enas_lightning.strategies.base import SearchStrategy
from enas_lightning.strategies.enas import Enas

if TYPE_CHECKING:
    import torch

    from enas_lightning.search.module import SearchModule


class RandomSearch(SearchStrategy):
    name = "random"
    # the ENAS strategy's state, never used (see above)
    attach = Enas.attach
    optimizers = Enas.optimizers
    baseline = Enas.baseline

    def child_archs(
        self, module: SearchModule, n: int, generator: torch.Generator
    ) -> list[ArchRecord]:
        return module.controller.sample_archs(n, generator, uniform=True)

    def candidates(
        self, module: SearchModule, k: int, generator: torch.Generator
    ) -> tuple[list[ArchRecord], int | None]:
        return module.controller.sample_archs(k, generator, uniform=True), None


register_strategy(RandomSearch())

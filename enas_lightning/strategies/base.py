"""What a search strategy is: how a weight-sharing search chooses architectures.

The search module (:class:`~enas_lightning.search.module.SearchModule`) runs the Lightning
plumbing that every weight-sharing search has: one epoch is a child phase (one SGD step of the
shared weights per training minibatch, each on one child) and, when due, a controller phase;
the search ends with a derivation that scores candidates and keeps the best. It asks its
strategy three things:

- which children the child phase trains (:meth:`SearchStrategy.child_archs`);
- what each step of the controller phase does (:meth:`SearchStrategy.controller_step`, run
  :meth:`SearchStrategy.controller_steps` times; zero: no controller phase);
- which candidates the derivation scores (:meth:`SearchStrategy.candidates`).

ENAS (``controller=enas``) trains the LSTM controller with REINFORCE in its controller phase;
random search with weight sharing (``controller=random``) samples uniformly and has none.
Everything else is the module's: the seeding per step, the supernet warm-up
(``search.warmup_epochs``: uniform children, no controller phase), uniform children throughout
(``search.uniform_children``: the controller phase still runs), the reward
(:mod:`enas_lightning.rewards`), the uniform reference of the derivation, checkpoints and DDP.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import torch

    from enas_lightning.config import Config
    from enas_lightning.search.module import SearchModule
    from enas_lightning.spaces import ArchRecord


class SearchStrategy(ABC):
    """One search strategy; subclasses set :attr:`name` (``controller.name=<name>``).

    A strategy object keeps no state of its own: what it learns lives on the module
    (:meth:`attach`), so that checkpoints, device moves and DDP cover it. ``module`` arguments
    are the :class:`~enas_lightning.search.module.SearchModule`; it offers the space's
    controller (``module.controller``, which also samples uniformly), the reward of children
    on the validation split (``module.rewards``), the epoch's records (``module.record_update``)
    and Lightning's ``log``, ``optimizers``, ``manual_backward`` and ``trainer``.
    ``generator`` arguments are seeded per ``(seed, rank, epoch, step)``: a resumed run draws
    the same numbers.
    """

    name: ClassVar[str]

    def attach(self, module: SearchModule) -> None:  # noqa: B027 (optional: nothing to keep)
        """Register on ``module`` the parameters and buffers this strategy learns or keeps
        (``module.register_buffer``, a submodule attribute). Called once, at the end of the
        module's ``__init__``."""

    def optimizers(self, module: SearchModule) -> list[torch.optim.Optimizer]:
        """This strategy's optimizers, stepped by :meth:`controller_step`; they follow the
        supernet's SGD in ``module.optimizers()`` and are checkpointed by Lightning."""
        return []

    def controller_steps(self, cfg: Config) -> int:
        """Steps per controller phase (``controller.train_every`` says after which epochs
        one runs); 0: never."""
        return 0

    @abstractmethod
    def child_archs(self, module: SearchModule, n: int, generator: torch.Generator) -> list[Any]:
        """The ``n`` children of one epoch's child phase, in step order (architecture records
        of the space). Not asked in warm-up epochs (the module samples those uniformly)."""

    def controller_step(self, module: SearchModule, k: int, generator: torch.Generator) -> None:
        """Step ``k`` of the controller phase (one ``training_step``: at most one backward)."""
        raise NotImplementedError(f"strategy {self.name} has no controller phase")

    @abstractmethod
    def candidates(
        self, module: SearchModule, k: int, generator: torch.Generator
    ) -> tuple[list[Any], int | None]:
        """The derivation's candidates (``search.derive_samples`` = ``k`` of them, plus any the
        strategy adds) and the index of its single most likely one (``greedy``), if any. The
        same on every rank (``generator`` is)."""

    def greedy_arch(self, module: SearchModule) -> ArchRecord | None:
        """The architecture the strategy currently favours, kept in each epoch's summary and
        pictured (``None``: none)."""
        return None

    def baseline(self, module: SearchModule) -> float:
        """The reward baseline kept in each epoch's summary (0 where there is none)."""
        return 0.0

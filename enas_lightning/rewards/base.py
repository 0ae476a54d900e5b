"""What a reward is: one callable scoring architectures with the shared weights.

The search calls the configured reward in two places, each time through a view of the shared
weights (:class:`SharedWeights`) that knows that phase's validation data and network mode:

- the controller phase: ``reward(archs, shared)`` gives the REINFORCE reward of each sampled
  child (``shared.phase == "controller"``): each child on its own random minibatch of this
  rank's validation shard, dropout as ``search.reward_dropout``;
- the derivation: the same call ranks the candidates (``shared.phase == "derivation"``): each
  candidate on the derivation's validation batches (``search.derive_batches``), in eval mode.

Higher is better in both. A reward sees the architectures, so it can weigh in their cost
(``shared.cost``); it runs the supernet itself (``shared.logits``), so it chooses what to
compute from the logits and how many minibatches to draw (``shared.batches``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, ClassVar, Protocol

if TYPE_CHECKING:  # torch and the config are imported where a reward is used
    import torch
    from torch import Tensor

    from enas_lightning.config import Config
    from enas_lightning.spaces import ArchRecord, Cost, Space


class SharedWeights(Protocol):
    """The supernet's shared weights as one phase of the search scores architectures with them.

    ``phase`` is ``"controller"`` or ``"derivation"``; ``cfg`` the whole config; ``space`` the
    searched space; ``device`` the supernet's. The supernet is in the phase's mode while the
    reward runs.
    """

    phase: str
    cfg: Config
    space: Space
    device: torch.device

    def batches(self, count: int = 1) -> Iterator[tuple[Tensor, Tensor]]:
        """Validation images ``[B, C, H, W]`` and labels ``[B]`` to score one architecture on.

        Controller phase: ``count`` minibatches of ``search.batch_size`` images, drawn at
        random from this rank's shard by the step's generator (every call draws new ones).
        Derivation: the derivation's batches of ``search.eval_batch_size`` images, in order
        (``search.derive_batches`` of them, 0 = the whole split); ``count`` does not apply.
        """
        ...

    def logits(self, arch: ArchRecord, x: Tensor) -> Tensor:
        """The supernet's logits ``[B, num_classes]`` of ``arch`` on ``x`` (no gradient).

        In the derivation under ``search.derive_finetune_steps`` > 0 they are those of a copy
        of the shared weights fine-tuned for ``arch``, and the reward is called with one
        architecture at a time."""
        ...

    def mean(self, values: list[Tensor]) -> Tensor:
        """The mean (0-dim) of per-image values, one ``[B]`` tensor per batch, as this phase
        takes it: the controller phase on the device (no wait for it), the derivation summed
        over its batches and divided on the host in float64 (exact for counts)."""
        ...

    def cost(self, arch: ArchRecord) -> Cost:
        """Parameters and multiply-adds of ``arch``'s standalone network (``final.*``)."""
        ...

    def cost_value(self, arch: ArchRecord, kind: str) -> float:
        """One cost of ``arch``'s standalone network: ``params``, ``madds`` or ``latency``
        (milliseconds predicted by the latency table, ``task=latency_table``)."""
        ...


class Reward(ABC):
    """One reward; subclasses set :attr:`name` and :attr:`metric` and define ``__call__``.

    ``metric`` names the derivation's score where it is written: ``best_arch.json`` keys
    (``<metric>``, ``greedy_<metric>``, ``controller_mean_<metric>``, ``uniform_mean_<metric>``),
    the ``arch_candidates.csv`` column and the ``derive/*`` logger keys.
    """

    name: ClassVar[str]
    metric: ClassVar[str]

    def check_config(self, cfg: Config) -> None:
        """Raise :class:`~enas_lightning.errors.ConfigError` for a ``reward`` setting this
        reward rejects (called before anything runs); the built-in accuracy and loss have
        no settings of their own."""
        return None

    def cost_name(self, cfg: Config) -> str | None:
        """The cost this reward weighs in (``params``, ``madds``, ``latency``), whose mean over
        the sampled children the controller phase reports; ``None`` for none."""
        return None

    @abstractmethod
    def __call__(self, archs: Sequence[ArchRecord], shared: SharedWeights) -> Tensor:
        """One score per architecture, ``[len(archs)]`` on ``shared.device``; higher is
        better."""


class PerImageReward(Reward):
    """A reward that is the mean of a per-image value over the phase's validation images
    (accuracy: 1 for a right answer; loss: minus the cross-entropy)."""

    @abstractmethod
    def per_image(self, arch: ArchRecord, logits: Tensor, y: Tensor) -> Tensor:
        """The value ``[B]`` of each image, from the logits ``[B, K]`` and the labels ``[B]``."""

    def minibatches(self, shared: SharedWeights) -> int:
        """Controller-phase minibatches per architecture (one, as the paper)."""
        return 1

    def __call__(self, archs: Sequence[ArchRecord], shared: SharedWeights) -> Tensor:
        import torch

        count = self.minibatches(shared)
        scores = []
        for arch in archs:
            # each batch is drawn just before its forward (the draw order of the reference)
            values = [
                self.per_image(arch, shared.logits(arch, x), y) for x, y in shared.batches(count)
            ]
            scores.append(shared.mean(values))
        return torch.stack(scores)

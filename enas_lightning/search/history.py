"""The search's epoch history: one :class:`EpochSummary` per search epoch.

The search module appends one summary at the end of every epoch (``SearchModule.history``); the
checkpoint keeps them (``checkpoint["enas"]["history"]``, greedy architectures as
``arch.to_dict()``), ``history.json`` writes them (greedy architectures as
``arch.to_dict(ops)``), and the epoch line, the controller plots and the DDP debug dump read them.
:meth:`EpochSummary.to_dict` and :meth:`EpochSummary.from_dict` keep that dict format: keys in
the order ``epoch, warmup, baseline, lr, op_probs, reward, entropy, <space statistics>,
greedy_arch``, the optional ones left out when absent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from enas_lightning.spaces import ArchRecord

# the keys of the typed fields; every other key of a summary dict is a space statistic
_FIELDS = ("epoch", "warmup", "baseline", "lr", "op_probs", "reward", "entropy", "greedy_arch")


@dataclass(frozen=True)
class EpochSummary:
    """What one search epoch ended with (rank 0's view).

    Always there:
        epoch: the epoch (0-based).
        warmup: a supernet warm-up epoch (``search.warmup_epochs``): uniformly sampled
            children, no controller phase.
        baseline: the reward baseline (moving average) at the epoch's end.
        lr: the child learning rate during the epoch (SGDR moves it once per epoch).

    Only after an epoch with a controller phase (``None``, or empty, otherwise):
        op_probs: ``{decision label: [p_op0, p_op1, ...]}``, the controller's op probabilities
            averaged over the phase's updates and sampled architectures (labels such as
            ``"normal/node0/op1"`` or ``"layer3"``; one probability per op of the space).
        reward: the mean reward of the phase's updates (accuracy plus entropy bonus).
        entropy: the mean entropy (nats) of the sampled architectures.
        space_stats: the search space's own statistics, averaged the same way, by name
            (e.g. a whole-network space's ``"skip_rate"``, the fraction of possible skips taken).

    Only for a learning controller (not ``controller=random``):
        greedy_arch: the controller's most likely (argmax) architecture at the epoch's end, an
            architecture record of the space.
    """

    epoch: int
    warmup: bool
    baseline: float
    lr: float
    op_probs: dict[str, list[float]] | None = None
    reward: float | None = None
    entropy: float | None = None
    space_stats: dict[str, float] = field(default_factory=dict)
    greedy_arch: ArchRecord | None = None

    @property
    def controller_ran(self) -> bool:
        """Whether the epoch had a controller phase (its statistics are there)."""
        return self.reward is not None

    def to_dict(self, ops: tuple[str, ...] | None = None) -> dict[str, Any]:
        """The summary as the plain dict that checkpoints and ``history.json`` hold.

        Args:
            ops: the space's op names, to write the greedy architecture with
                (``greedy_arch.to_dict(ops)``, as ``history.json`` does); ``None``: the
                architecture record's default (``greedy_arch.to_dict()``, as checkpoints do).

        Returns:
            ``{"epoch": int, "warmup": bool, "baseline": float, "lr": float}``, then, where
            present, ``"op_probs"``, ``"reward"``, ``"entropy"``, the space statistics and
            ``"greedy_arch"`` (a dict).
        """
        out: dict[str, Any] = {
            "epoch": self.epoch,
            "warmup": self.warmup,
            "baseline": self.baseline,
            "lr": self.lr,
        }
        if self.op_probs is not None:
            out["op_probs"] = self.op_probs
        if self.reward is not None:
            out["reward"] = self.reward
        if self.entropy is not None:
            out["entropy"] = self.entropy
        out.update(self.space_stats)
        if self.greedy_arch is not None:
            arch = self.greedy_arch
            out["greedy_arch"] = arch.to_dict() if ops is None else arch.to_dict(ops)
        return out

    @classmethod
    def from_dict(
        cls, d: Mapping[str, Any], load_arch: Callable[[dict[str, Any]], Any] | None = None
    ) -> EpochSummary:
        """The summary :meth:`to_dict` wrote (e.g. from a checkpoint's ``enas.history``).

        Args:
            d: the dict; a checkpoint written before ``search.warmup_epochs`` existed has no
                ``"warmup"`` (read as ``False``: there were no warm-up epochs then).
            load_arch: turns the ``"greedy_arch"`` dict back into an architecture record;
                ``None`` keeps the value as it is.
        """
        greedy = d.get("greedy_arch")
        if greedy is not None and load_arch is not None:
            greedy = load_arch(greedy)
        return cls(
            epoch=d["epoch"],
            warmup=d.get("warmup", False),
            baseline=d["baseline"],
            lr=d["lr"],
            op_probs=d.get("op_probs"),
            reward=d.get("reward"),
            entropy=d.get("entropy"),
            space_stats={k: v for k, v in d.items() if k not in _FIELDS},
            greedy_arch=greedy,
        )

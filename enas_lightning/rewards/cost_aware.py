"""``reward=cost_aware``: accuracy weighed by what the child's standalone network costs.

MnasNet's reward (Tan et al. 2019): ``acc * (cost / target) ** w`` with ``w = reward.w`` over
the target and ``w = reward.w_below`` at or below it (``None``: the same as ``reward.w``, their
soft constraint alpha = beta = -0.07: the same accuracy-cost trade-off on both sides of the
target, so the search finds architectures on the Pareto front near it rather than stopping at
the budget). ``reward.constraint=hard`` is the hard variant: the accuracy at or below the target,
``reward.penalty`` (0 by default) over it. The accuracy is :mod:`~enas_lightning.rewards.accuracy`'s
on the same validation images; the cost (``reward.cost``) is the standalone network's
(``final.*``) parameters, multiply-adds or predicted latency in ms (``task=latency_table``).
The derivation's score is written as ``val_acc_cost``. docs/cost_aware.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from enas_lightning.errors import ConfigError
from enas_lightning.rewards import register_reward
from enas_lightning.rewards.accuracy import Accuracy
from enas_lightning.rewards.base import SharedWeights
from enas_lightning.spaces import ArchRecord

COSTS = ("params", "madds", "latency")
CONSTRAINTS = ("soft", "hard")


def exponent(cost: float, target: float, w: float, w_below: float | None) -> float:
    """MnasNet's ``w``: ``w`` over the target, ``w_below`` (``None``: ``w``) at or below it."""
    return w if cost > target or w_below is None else w_below


def cost_aware(
    acc: float,
    cost: float,
    target: float,
    w: float = -0.07,
    w_below: float | None = None,
    constraint: str = "soft",
    penalty: float = 0.0,
) -> float:
    """The reward of an architecture with accuracy ``acc`` costing ``cost`` (the formula the
    reward applies, on plain numbers)."""
    if constraint == "hard":
        return acc if cost <= target else penalty
    return acc * (cost / target) ** exponent(cost, target, w, w_below)


class CostAware(Accuracy):
    name = "cost_aware"
    metric = "val_acc_cost"

    def cost_name(self, cfg: Any) -> str:
        return str(cfg.reward.cost)

    def check_config(self, cfg: Any) -> None:
        r = cfg.reward
        if r.cost not in COSTS:
            raise ConfigError("reward.cost", r.cost, f"one of {', '.join(COSTS)}")
        if r.target is None or r.target <= 0:
            raise ConfigError(
                "reward.target",
                r.target,
                f"a budget > 0 in the cost's unit ({r.cost}) for reward=cost_aware",
            )
        if r.constraint not in CONSTRAINTS:
            raise ConfigError("reward.constraint", r.constraint, f"one of {', '.join(CONSTRAINTS)}")
        if r.w > 0:
            raise ConfigError("reward.w", r.w, "<= 0 (over the target a larger cost must not pay)")
        if r.w_below is not None and r.w_below > 0:
            raise ConfigError("reward.w_below", r.w_below, "<= 0, or null for the same as reward.w")

    def __call__(self, archs: Sequence[ArchRecord], shared: SharedWeights) -> Tensor:
        import torch

        acc = super().__call__(archs, shared)
        r = shared.cfg.reward
        costs = [shared.cost_value(a, r.cost) for a in archs]
        if r.constraint == "hard":
            fits = torch.tensor([c <= r.target for c in costs], device=acc.device)
            return torch.where(fits, acc, torch.full_like(acc, r.penalty))
        factors = [(c / r.target) ** exponent(c, r.target, r.w, r.w_below) for c in costs]
        return acc * torch.tensor(factors, dtype=acc.dtype, device=acc.device)


register_reward(CostAware())

"""Rewards: how the search scores an architecture with the shared weights, looked up by name.

One :class:`Reward` callable scores architectures in both places the search needs a score: the
controller phase (the REINFORCE reward of each sampled child) and the derivation (the ranking
of the candidates). ``reward.name`` chooses it (``reward=loss`` on the command line selects the
config group of that name):

- ``accuracy`` (the default, the paper's): the fraction of validation images classified right;
- ``loss``: minus the mean cross-entropy on the validation images (ranks by validation loss);
- ``cost_aware``: the accuracy weighed by the standalone network's cost (MnasNet's
  ``acc * (cost / target) ** w``; docs/cost_aware.md).

A new reward is one class and one :func:`register_reward` call (docs/new_reward.md). Another
package's rewards are found through the entry point group ``enas_lightning.rewards`` (each
entry names a module whose import registers a reward). The built-in rewards are imported on
the first lookup.
"""

from __future__ import annotations

from enas_lightning.registry import Registry
from enas_lightning.rewards.base import PerImageReward, Reward, SharedWeights

# setup.cfg of a package with rewards: [options.entry_points] enas_lightning.rewards = name = pkg.module
ENTRY_POINT_GROUP = "enas_lightning.rewards"

REWARDS: Registry[Reward] = Registry(
    "reward.name",
    {
        "accuracy": "enas_lightning.rewards.accuracy",
        "loss": "enas_lightning.rewards.loss",
        "cost_aware": "enas_lightning.rewards.cost_aware",
    },
    ENTRY_POINT_GROUP,
)


def register_reward(reward: Reward) -> Reward:
    """Make ``reward`` available as ``reward.name=<reward.name>`` (replaces one of that name)."""
    if not isinstance(reward, Reward):
        raise TypeError(f"register_reward: expected a Reward, got {type(reward).__name__}")
    return REWARDS.add(reward.name, reward)


def get_reward(name: str, setting: str = "reward.name") -> Reward:
    """The registered reward ``name``; a :class:`ConfigError` naming ``setting`` otherwise."""
    return REWARDS.lookup(name, setting)


__all__ = ["REWARDS", "PerImageReward", "Reward", "SharedWeights", "get_reward", "register_reward"]

"""``reward=accuracy`` (the default): the fraction of validation images a child gets right.

The paper's reward: the controller phase rewards each child with its accuracy on one
validation minibatch, and the derivation keeps the candidate with the highest accuracy on the
validation split.
"""

from __future__ import annotations

from torch import Tensor

from enas_lightning.rewards import register_reward
from enas_lightning.rewards.base import PerImageReward
from enas_lightning.spaces import ArchRecord


class Accuracy(PerImageReward):
    name = "accuracy"
    metric = "val_acc"

    def per_image(self, arch: ArchRecord, logits: Tensor, y: Tensor) -> Tensor:
        return (logits.argmax(1) == y).float()


register_reward(Accuracy())

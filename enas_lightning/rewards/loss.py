"""``reward=loss``: minus the mean cross-entropy of a child on validation images.

A smoother signal than accuracy on a minibatch (every image counts with how sure the child is,
not only whether its argmax is right). The controller phase rewards each child with minus its
mean loss on one validation minibatch; the derivation ranks the candidates by their mean loss
on the validation split (the lowest loss first). The derivation's score is written as
``val_neg_loss`` (minus the loss: higher is better, as every reward).
"""

from __future__ import annotations

from torch import Tensor
from torch.nn import functional as F

from enas_lightning.rewards import register_reward
from enas_lightning.rewards.base import PerImageReward
from enas_lightning.spaces import ArchRecord


class NegativeLoss(PerImageReward):
    name = "loss"
    metric = "val_neg_loss"

    def per_image(self, arch: ArchRecord, logits: Tensor, y: Tensor) -> Tensor:
        return -F.cross_entropy(logits, y, reduction="none")


register_reward(NegativeLoss())

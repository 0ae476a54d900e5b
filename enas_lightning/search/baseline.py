"""The REINFORCE baseline as the authors update it: one moving-average step per sampled child.

In the reference code (``micro_controller.py``, ``general_controller.py``) every sampled
architecture is one controller step: the baseline is updated with that sample's reward,
``b <- b - (1 - d)(b - r)``, before the sample's loss term ``-log p * (r - b)`` is formed, and
``num_aggregate`` steps' gradients are averaged before Adam applies them. One optimizer step
therefore moves the baseline ``num_aggregate`` times, in order, and sample ``i`` is judged
against the baseline just after its own update.

:func:`sequential_baseline` computes all those baselines at once, without a Python loop over
device values and without a host-device wait: unrolling ``b_i = d b_{i-1} + (1 - d) r_i`` gives

    b_i = d^(i+1) b_0 + (1 - d) sum_{j <= i} d^(i - j) r_j,

a product with a small lower-triangular matrix.
"""

from __future__ import annotations

import torch
from torch import Tensor


def sequential_baseline(rewards: Tensor, baseline: Tensor, decay: float) -> Tensor:
    """The baseline after each of ``n`` in-order moving-average updates.

    Args:
        rewards: ``[n]`` rewards in the order the updates take them.
        baseline: ``[]`` the baseline before the first update (``b_0``).
        decay: ``d`` in ``b <- d b + (1 - d) r`` (``controller.baseline_decay``), in ``[0, 1]``;
            ``d = 0`` makes every baseline the sample's own reward, ``d = 1`` freezes it.

    Returns:
        ``[n]``: element ``i`` is the baseline just after the update with ``rewards[i]``; the
        last element is the baseline the next optimizer step starts from. Same dtype and device
        as ``rewards``.
    """
    n = rewards.shape[0]
    # exponents made on the device and powers of a Python number: nothing is copied from the
    # host, so the scan queues behind the rewards without waiting for them
    pos = torch.arange(n, device=rewards.device, dtype=rewards.dtype)
    lag = pos[:, None] - pos[None, :]  # [n, n], i - j
    # d^(i - j) below the diagonal and on it (0^0 = 1 in torch, so d = 0 works), 0 above
    weights = torch.where(lag >= 0, torch.pow(decay, lag.clamp(min=0)), 0.0)
    start = torch.pow(decay, pos + 1) * baseline.to(rewards.dtype)  # [n], d^(i+1) b_0
    return start + (1 - decay) * (weights @ rewards)

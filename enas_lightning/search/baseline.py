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


# the moments a linear baseline keeps: weight, share, reward, share**2, share * reward
MOMENTS = 5


def linear_baseline(
    rewards: Tensor, shares: Tensor, moments: Tensor, decay: float
) -> tuple[Tensor, Tensor]:
    """The baseline after each of ``n`` in-order updates when it is a line in the child's
    parameter-free share (``search.param_free_adjust``).

    The moving averages are those of :func:`sequential_baseline` (one step per sampled child, in
    order, each before its child's advantage), but of five moments instead of the reward alone:
    ``(1, x, r, x**2, x * r)`` for share ``x`` and reward ``r``. Child ``i``'s baseline is the
    weighted least-squares line of reward on share through them, at its own share:
    ``mean_r + slope * (x_i - mean_x)``, ``slope = cov(x, r) / var(x)`` (0 while the shares seen
    have no spread). Dividing by the first moment (the weights' sum) makes the means unbiased
    from the first child on (the zeros the moments start from carry no weight), so the line is
    that of the children seen, most recent weighted most. A loop rather than a closed form
    (``n`` is ``controller.num_aggregate`` times the ranks): the slope is a ratio of moving sums,
    which no single matrix product gives; every step stays on the device.

    Args:
        rewards: ``[n]`` rewards in the order the updates take them.
        shares: ``[n]`` the children's parameter-free shares, in ``[0, 1]``.
        moments: ``[5]`` the moving averages before the first update (zeros at the start).
        decay: ``controller.baseline_decay``, in ``[0, 1]``.

    Returns:
        ``[n]`` the baseline each child is judged against, and ``[5]`` the moments after the
        last update (the next optimizer step starts from them). Same dtype and device as
        ``rewards``.
    """
    m = moments.to(rewards.dtype)
    shares = shares.to(rewards.dtype)
    out = []
    for r, x in zip(rewards, shares, strict=True):
        m = decay * m + (1 - decay) * torch.stack([torch.ones_like(r), x, r, x * x, x * r])
        # decay 1 freezes the moments at zero: means of 0, the plain baseline's frozen 0
        w = m[0].clamp(min=1e-12)
        mean_x, mean_r = m[1] / w, m[2] / w
        var = m[3] / w - mean_x * mean_x
        cov = m[4] / w - mean_x * mean_r
        # a share spread below 1e-8 (e.g. every child so far alike) fits no slope
        slope = torch.where(var > 1e-8, cov / var.clamp(min=1e-8), torch.zeros_like(var))
        out.append(mean_r + slope * (x - mean_x))
    return torch.stack(out), m

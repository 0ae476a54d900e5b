"""How optimizers apply their updates: fused kernels where torch has them, else foreach.

A fused SGD/Adam step is one kernel over all parameters (measured 2-3x faster than ``foreach``
on the CPU, see ``bench/RESULTS.md``). Not with mixed precision: Lightning's mixed-precision
plugin refuses to clip the gradients of an optimizer that unscales internally (fused ones), and
``16-mixed``'s GradScaler would hand them ``found_inf``, which torch 2.13's fused CPU SGD
mishandles.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


def step_kwargs(params: Iterable[torch.Tensor], precision: Any = "32-true") -> dict[str, bool]:
    """``{"fused": True}`` when every parameter can use the fused kernels, else foreach."""
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

        devices = set(_get_fused_kernels_supported_devices())
    except ImportError:  # an older or newer torch without the helper
        return {"foreach": True}
    ok = "mixed" not in str(precision) and all(
        p.device.type in devices and torch.is_floating_point(p) for p in params
    )
    return {"fused": True} if ok else {"foreach": True}


def sgd_with_sgdr(
    params: Iterable[torch.nn.Parameter], o: Any, **step: bool
) -> tuple[torch.optim.SGD, torch.optim.lr_scheduler.CosineAnnealingWarmRestarts]:
    """The child optimiser of the paper: SGD (Nesterov momentum, weight decay) and SGDR.

    ``o`` is a :class:`~enas_lightning.config.ChildOptimConfig`. SGDR is epoch-granular (the
    caller steps it once per epoch): ``lr = lr_min + (lr_max - lr_min)(1 + cos(pi t / T_i)) / 2``
    with ``T_i`` starting at ``t0`` and multiplied by ``t_mul`` at each restart. ``step`` picks
    the update kernels (``fused=True`` / ``foreach=True``).
    """
    sgd = torch.optim.SGD(
        params,
        lr=o.lr_max,
        momentum=o.momentum,
        nesterov=o.nesterov,
        weight_decay=o.weight_decay,
        **step,
    )
    sgdr = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        sgd, T_0=int(o.t0), T_mult=int(o.t_mul), eta_min=o.lr_min
    )
    return sgd, sgdr

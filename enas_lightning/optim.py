"""How optimizers apply their updates: fused kernels where torch has them, else foreach.

A fused SGD/Adam step is one kernel over all parameters (measured 2-3x faster than ``foreach``
on the CPU, see ``bench/RESULTS.md``). The final network's optimizer (and, by the same rule, the
controller's Adam) is fused only without mixed precision: Lightning's mixed-precision plugin does
not unscale the gradients of an optimizer that unscales internally (fused ones) before the
clipping hook, so :func:`clip_gradients_` would see scaled gradients. The supernet's SGD is
fused under ``bf16-mixed`` too: the search clips with torch directly and passes the fused step a
``found_inf`` flag so that a non-finite step is skipped on the device
(:meth:`enas_lightning.search.module.SearchModule.child_step`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


def fused_supported(params: Iterable[torch.Tensor]) -> bool:
    """Whether torch has fused optimizer kernels for every parameter's device and dtype."""
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

        devices = set(_get_fused_kernels_supported_devices())
    except ImportError:  # an older or newer torch without the helper
        return False
    return all(p.device.type in devices and torch.is_floating_point(p) for p in params)


def step_kwargs(params: Iterable[torch.Tensor], precision: Any = "32-true") -> dict[str, bool]:
    """``{"fused": True}`` when every parameter can use the fused kernels, else foreach."""
    ok = "mixed" not in str(precision) and fused_supported(params)
    return {"fused": True} if ok else {"foreach": True}


def ensure_momentum_buffers(sgd: torch.optim.SGD) -> None:
    """Give every parameter of a momentum SGD a momentum buffer (zeros) if it has none yet.

    torch's fused SGD takes either no momentum buffers at all (its first step) or one for every
    parameter it updates. A supernet step updates only the sampled child's parameters, so lazily
    created buffers would appear a few at a time and the fused step refuses the mix. With
    ``dampening=0`` (the only setting used here) a zero buffer gives exactly the first step's
    ``buf = grad``, so creating them up front changes no number. Existing buffers are given
    their parameter's memory layout (channels-last parameters, a contiguous checkpoint).
    """
    for group in sgd.param_groups:
        if group["momentum"] == 0:
            continue
        if group["dampening"] != 0:
            raise ValueError("ensure_momentum_buffers: dampening must be 0")
        for p in group["params"]:
            state = sgd.state[p]
            buf = state.get("momentum_buffer")
            if buf is None:
                state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            elif buf.stride() != p.stride():  # e.g. restored from a contiguous run
                state["momentum_buffer"] = torch.empty_like(p).copy_(buf)


CLIP_MODES = ("norm", "global", "none")


def optimizer_grads(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """The gradients an optimizer step would apply (parameters without one are skipped)."""
    return [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]


def fill_missing_gradients_(optimizer: torch.optim.Optimizer) -> None:
    """Give every parameter of ``optimizer`` without a gradient a zero gradient (in place).

    ``search.optim.dense_weight_decay``, the authors' search: their L2 term is in the loss of every
    variable and ``_enas_cell`` computes every op (the sampled one is selected after), so the ops
    a child did not sample get zero data gradients and are still decayed and moved by momentum
    at every step. torch's SGD skips a parameter whose ``grad`` is ``None``; a zero gradient
    makes it apply ``weight_decay`` and momentum to it as to any other. Called after clipping
    (a zero gradient changes no norm); under DDP the parameters no rank used are the same on
    every rank after the all-reduce, so every rank fills the same ones.
    """
    for group in optimizer.param_groups:
        for p in group["params"]:
            if p.grad is None:
                p.grad = torch.zeros_like(p, memory_format=torch.preserve_format)


def clip_gradients_(grads: list[torch.Tensor], bound: float, mode: str) -> torch.Tensor:
    """Clip ``grads`` in place; return their total norm before clipping (a 0-dim tensor).

    ``mode`` (``ChildOptimConfig.grad_clip_mode``): ``"norm"`` scales each tensor whose norm
    exceeds ``bound`` down to norm ``bound`` on its own (TF's ``clip_by_norm``, the authors'
    ``clip_mode="norm"``); ``"global"`` scales all tensors by one factor so that their joint
    norm is at most ``bound`` (``clip_by_global_norm``); ``"none"`` (or ``bound <= 0``) leaves
    them. The factors stay on the device (no host-device wait): the caller can still skip a
    non-finite step from the returned total norm.
    """
    if mode not in CLIP_MODES:
        raise ValueError(f"grad_clip_mode {mode!r}: one of {', '.join(CLIP_MODES)}")
    if not grads:
        return torch.zeros(())
    norms = torch.stack(torch._foreach_norm(grads))  # [n]: each tensor's L2 norm
    total = torch.linalg.vector_norm(norms)
    if mode == "none" or bound <= 0:
        return total
    if mode == "norm":
        # bound / max(norm, bound): 1 for a small gradient, bound / norm for a large one
        scales = bound / norms.clamp(min=bound)
        torch._foreach_mul_(grads, list(scales.unbind()))
    else:
        # as torch's clip_grad_norm_: one factor, capped at 1
        torch._foreach_mul_(grads, (bound / (total + 1e-6)).clamp(max=1.0))
    return total


def sgd_with_sgdr(
    params: Iterable[torch.nn.Parameter], o: Any, **step: bool
) -> tuple[torch.optim.SGD, torch.optim.lr_scheduler.CosineAnnealingWarmRestarts]:
    """The child optimiser of the paper: SGD (Nesterov momentum, weight decay) and SGDR.

    ``o`` is a :class:`~enas_lightning.config.ChildOptimConfig`. Its ``l2_reg`` is the authors'
    loss term ``l2_reg * sum(w**2)``, whose gradient ``2 * l2_reg * w`` is torch's
    ``weight_decay = 2 * l2_reg``. SGDR is epoch-granular (the
    caller steps it once per epoch): ``lr = lr_min + (lr_max - lr_min)(1 + cos(pi t / T_i)) / 2``
    with ``T_i`` starting at ``t0`` and multiplied by ``t_mul`` at each restart. ``step`` picks
    the update kernels (``fused=True`` / ``foreach=True``).
    """
    sgd = torch.optim.SGD(
        params,
        lr=o.lr_max,
        momentum=o.momentum,
        nesterov=o.nesterov,
        # the gradient of the authors' loss term l2_reg * sum(w**2)
        weight_decay=2.0 * o.l2_reg,
        **step,
    )
    sgdr = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        sgd, T_0=int(o.t0), T_mult=int(o.t_mul), eta_min=o.lr_min
    )
    return sgd, sgdr

"""Model cost: trainable parameters and multiply-adds per image."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import nn


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_madds(model: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """Multiply-adds of one forward pass for one ``[C, H, W]`` image.

    Counts Conv2d (``out_h * out_w * out_c * in_c / groups * kh * kw``) and Linear
    (``in * out``) layers, the cost that dominates; BN, pooling and additions are left out.
    The forward runs in eval mode on a zero batch of one, so training-only branches such as
    an aux head are not counted; the model's mode is restored afterwards.
    """
    total = 0

    def conv_hook(m: nn.Conv2d, _inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = m.kernel_size
        total += (
            out.shape[2] * out.shape[3] * m.out_channels * (m.in_channels // m.groups) * kh * kw
        )

    def linear_hook(m: nn.Linear, _inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        total += m.in_features * m.out_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return int(total)


@functools.lru_cache(maxsize=4096)
def _piece_cost(
    build: Callable[..., nn.Module],
    args: tuple[Any, ...],
    kwargs: tuple[tuple[str, Any], ...],
    input_shape: tuple[int, int, int] | None,
) -> tuple[int, int]:
    # a module of its own, initialised without moving the caller's random stream
    with torch.random.fork_rng(devices=[]):
        module = build(*args, **dict(kwargs))
    madds = count_madds(module, input_shape) if input_shape is not None else 0
    return count_params(module), madds


class Tally:
    """Parameters and multiply-adds of a network added up piece by piece, without building it.

    A space's ``cost`` walks its network's structure and adds each module it would build
    (:meth:`add`: the module's class or factory, its arguments and its input ``[C, H, W]``).
    Each distinct piece is built once per process and counted by :func:`count_params` and
    :func:`count_madds`, so a piece counts exactly what the network's module does. Why not build
    the network: a paper-size micro network takes 0.3-0.5 s to build and run once (thousands of
    modules), the derivation counts ~100 candidates and ``reward=cost_aware`` every sampled
    child, while its distinct pieces number a few dozen.
    """

    def __init__(self) -> None:
        self.params = 0
        self.madds = 0

    def add(
        self,
        build: Callable[..., nn.Module],
        *args: Any,
        input_shape: tuple[int, int, int] | None,
        **kwargs: Any,
    ) -> int:
        """Count ``build(*args, **kwargs)`` run on one ``input_shape`` image (``None``: its
        parameters only, for a part the count's forward never runs, such as an aux head).
        Returns the piece's parameters."""
        params, madds = _piece_cost(build, args, tuple(sorted(kwargs.items())), input_shape)
        self.params += params
        self.madds += madds
        return params

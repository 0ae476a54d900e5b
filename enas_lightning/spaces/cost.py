"""Model cost: trainable parameters and multiply-adds per image."""

from __future__ import annotations

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

"""Gradients laid out as their parameters are, so that DDP's gradient buckets take them as is.

What DDP warned about ("Grad strides do not match bucket view strides", issue 23): on
one-channel images (digits, MNIST, Fashion-MNIST; the quickstart) the augmentation's gather
(``data/augment.py``) yields a batch ``[B, 1, H, W]`` with channels-last strides
``(H*W, 1, W, 1)``. With one channel that tensor is also "contiguous", so ``.contiguous()``
keeps those strides, and oneDNN's convolution, which follows the input's suggested memory
format, runs the whole training network channels-last. The gradient of every convolution weight
then comes back channels-last. For a weight with no size-1 dimension autograd copies it into the
parameter's layout, but for one with a size-1 dimension (depthwise ``[C, 1, k, k]``, pointwise
``[C, C, 1, 1]``, the stem's ``[C, 1, 3, 3]``: in the quickstart's supernet 815 of its 2282
parameters) autograd's layout contract ignores the strides of size-1 dimensions and keeps the
gradient as it came, e.g. ``[32, 32, 1, 1]`` with strides ``(32, 1, 32, 32)`` for a parameter
with ``(32, 1, 1, 1)``. DDP's bucket view has the parameter's strides and compares all of them,
so it warns. The memory order of the two is the same (they differ only where a dimension has
size 1), so the warning costs nothing: DDP copies every gradient into its bucket either way
(``gradient_as_bucket_view`` is off), element for element in the same order.

The fix below restates such a gradient with its parameter's strides before autograd stores it
(a tensor hook on the parameter, i.e. before ``AccumulateGrad`` and DDP's hook after it): a view
of the same memory, no copy, no value changed, no kernel chosen differently. Laying out the
parameters channels-last instead would also have silenced the warning, but it would switch the
reward and evaluation passes (whose unaugmented one-channel images are plain NCHW) to
channels-last kernels and so change their numbers.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn


def same_order(grad: Tensor, param: Tensor) -> bool:
    """``grad`` and ``param`` differ in strides only where a dimension has size 1."""
    return grad.shape == param.shape and all(
        g == p for g, p, n in zip(grad.stride(), param.stride(), param.shape, strict=True) if n != 1
    )


def _as_param_strides(param: Tensor) -> Callable[[Tensor], Tensor]:
    stride = param.stride()

    def hook(grad: Tensor) -> Tensor:
        if grad.stride() == stride or grad.layout != torch.strided or not same_order(grad, param):
            return grad
        return grad.as_strided(grad.shape, stride, grad.storage_offset())

    return hook


def match_grad_strides(network: nn.Module) -> int:
    """Hook every parameter that has a size-1 dimension (where a gradient may come with other
    strides in that dimension) so that its gradient keeps the parameter's strides.

    Registered once per network (a second call adds nothing). Returns the number of parameters
    hooked.
    """
    if getattr(network, "_grad_strides_matched", False):
        return 0
    hooked = 0
    for p in network.parameters():
        if p.requires_grad and p.dim() > 1 and 1 in p.shape:
            p.register_hook(_as_param_strides(p))
            hooked += 1
    network._grad_strides_matched = True  # type: ignore[assignment]
    return hooked

"""Ops of the macro (whole network) space, ``[B, C, H, W] -> [B, C, H, W]`` (stride 1).

Authors' order (the integer encoding): 0 conv_3x3, 1 sep_conv_3x3, 2 conv_5x5, 3 sep_conv_5x5,
4 avg_pool_3x3, 5 max_pool_3x3. Conv branches are 1x1 conv-BN-ReLU then the k x k (separable)
conv-BN-ReLU; pool branches are 1x1 conv-BN-ReLU then the pool. Unlike the reference code, every
op is its own module (the reference's closures all ran the last branch), separable convs are
separable and pools pool.
"""

from __future__ import annotations

from torch import nn

from enas_lightning.ops import ConvBNReLU, Registry, pool
from enas_lightning.spaces.op_names import AUTHORS_MACRO_OPS  # noqa: F401 (re-export)

MACRO_OPS = Registry("macro")


def _conv(kernel: int, separable: bool):
    def build(channels: int, stride: int, search: bool) -> nn.Module:
        return nn.Sequential(
            ConvBNReLU(channels, channels, 1, search=search),
            ConvBNReLU(channels, channels, kernel, stride, search, separable=separable),
        )

    return build


def _pool(kind: str, kernel: int):
    def build(channels: int, stride: int, search: bool) -> nn.Module:
        return nn.Sequential(
            ConvBNReLU(channels, channels, 1, search=search), pool(kind, kernel, stride)
        )

    return build


for _k in (3, 5, 7):
    MACRO_OPS.register(f"conv_{_k}x{_k}")(_conv(_k, separable=False))
    MACRO_OPS.register(f"sep_conv_{_k}x{_k}")(_conv(_k, separable=True))
for _k in (3, 5):
    MACRO_OPS.register(f"avg_pool_{_k}x{_k}")(_pool("avg", _k))
    MACRO_OPS.register(f"max_pool_{_k}x{_k}")(_pool("max", _k))

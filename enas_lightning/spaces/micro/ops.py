"""Ops of the micro (cell) space. Each op maps ``[B, C, H, W] -> [B, C, H/stride, W/stride]``.

Authors' order (the integer encoding): 0 sep_conv_3x3, 1 sep_conv_5x5, 2 avg_pool_3x3,
3 max_pool_3x3, 4 identity. A separable conv is two stacked (ReLU, depthwise, pointwise, BN) units.
"""

from __future__ import annotations

from torch import nn

from enas_lightning.spaces.micro.arch import AUTHORS_MICRO_OPS  # noqa: F401 (re-export)
from enas_lightning.spaces.ops import FactorizedReduce, Registry, ReLUConvBN, SepConvUnit, pool

MICRO_OPS = Registry("micro")


def _sep_conv(kernel: int):
    def build(channels: int, stride: int, search: bool) -> nn.Module:
        return nn.Sequential(
            SepConvUnit(channels, kernel, stride, search), SepConvUnit(channels, kernel, 1, search)
        )

    return build


def _conv(kernel: int):
    def build(channels: int, stride: int, search: bool) -> nn.Module:
        return ReLUConvBN(channels, channels, kernel, stride, search)

    return build


def _pool(kind: str, kernel: int):
    def build(channels: int, stride: int, search: bool) -> nn.Module:
        # channels never differ inside a cell (inputs are calibrated first), so no 1x1 conv
        return pool(kind, kernel, stride)

    return build


def _identity(channels: int, stride: int, search: bool) -> nn.Module:
    # the authors' stride-2 identity is their factorized reduction alone, without a ReLU
    return (
        nn.Identity() if stride == 1 else FactorizedReduce(channels, channels, search, relu=False)
    )


for _k in (3, 5, 7):
    MICRO_OPS.register(f"sep_conv_{_k}x{_k}")(_sep_conv(_k))
for _k in (3, 5):
    MICRO_OPS.register(f"conv_{_k}x{_k}")(_conv(_k))
    MICRO_OPS.register(f"avg_pool_{_k}x{_k}", param_free=True)(_pool("avg", _k))
    MICRO_OPS.register(f"max_pool_{_k}x{_k}", param_free=True)(_pool("max", _k))
# a stride-2 identity (on a reduction cell's inputs) is a factorized reduction with 1x1 convs;
# the choice is still "no op of its own", as for the pools
MICRO_OPS.register("identity", param_free=True)(_identity)

"""Ops and skip merges of the macro (whole network) space, ``[B, C, H, W] -> [B, C, H, W]``.

Authors' order (the integer encoding): 0 conv_3x3, 1 sep_conv_3x3, 2 conv_5x5, 3 sep_conv_5x5,
4 avg_pool_3x3, 5 max_pool_3x3. As in the authors' ``general_child.py``:

* search (``_enas_layer``'s branches): conv ops are 1x1 conv-BN-ReLU then the k x k (separable)
  conv-BN-ReLU; pools are 1x1 conv-BN-ReLU then the pool;
* final (``_fixed_layer``): ReLU-conv-BN order, ReLU-1x1 conv-BN then ReLU-k x k conv-BN.

Unlike the reference code, every op is its own module (the reference's search closures all ran
the last branch), and in the final network separable convs are separable and pools pool (the
reference's final layer builds plain convs for ops 0-3 and nothing for the pools).

A layer ``i >= 1`` merges its op's output with its chosen skips (``skip_merge``):

* ``sum`` (the authors' search layer): ``BN(out + sum of skips)``; no weights but the BN's;
* ``concat`` (the authors' final layer, and the paper's figure): the skips and the op's output
  concatenated along channels, then ReLU, 1x1 conv back to ``C`` channels, BN.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from enas_lightning.errors import ConfigError
from enas_lightning.spaces.macro.arch import AUTHORS_MACRO_OPS  # noqa: F401 (re-export)
from enas_lightning.spaces.ops import ConvBNReLU, Registry, batch_norm, pool

MACRO_OPS = Registry("macro")
SKIP_MERGES = ("concat", "sum")


def _relu_conv_bn(channels: int, kernel: int, separable: bool = False) -> nn.Sequential:
    """ReLU -> k x k (separable: depthwise then pointwise) conv -> BN, final mode."""
    if separable:
        conv: list[nn.Module] = [
            nn.Conv2d(channels, channels, kernel, 1, kernel // 2, groups=channels, bias=False),
            nn.Conv2d(channels, channels, 1, bias=False),
        ]
    else:
        conv = [nn.Conv2d(channels, channels, kernel, 1, kernel // 2, bias=False)]
    return nn.Sequential(nn.ReLU(inplace=False), *conv, batch_norm(channels, False))


def _conv(kernel: int, separable: bool):
    def build(channels: int, stride: int, search: bool) -> nn.Module:
        if not search:
            return nn.Sequential(
                _relu_conv_bn(channels, 1), _relu_conv_bn(channels, kernel, separable)
            )
        return nn.Sequential(
            ConvBNReLU(channels, channels, 1, search=search),
            ConvBNReLU(channels, channels, kernel, stride, search, separable=separable),
        )

    return build


def _pool(kind: str, kernel: int):
    def build(channels: int, stride: int, search: bool) -> nn.Module:
        if search:
            return nn.Sequential(
                ConvBNReLU(channels, channels, 1, search=True), pool(kind, kernel, stride)
            )
        return nn.Sequential(_relu_conv_bn(channels, 1), pool(kind, kernel, stride))

    return build


for _k in (3, 5, 7):
    MACRO_OPS.register(f"conv_{_k}x{_k}")(_conv(_k, separable=False))
    MACRO_OPS.register(f"sep_conv_{_k}x{_k}")(_conv(_k, separable=True))
for _k in (3, 5):
    # parameter-free: the 1x1 conv in front is the input projection every macro op has
    MACRO_OPS.register(f"avg_pool_{_k}x{_k}", param_free=True)(_pool("avg", _k))
    MACRO_OPS.register(f"max_pool_{_k}x{_k}", param_free=True)(_pool("max", _k))


class SkipSum(nn.Module):
    """``BN(out + sum of skips)``: ``out [B, C, H, W]``, each skip ``[B, C, H, W]`` (none:
    ``BN(out)``, how a cost count runs it on the sum)."""

    def __init__(self, channels: int, search: bool) -> None:
        super().__init__()
        self.bn = batch_norm(channels, search)

    def forward(
        self, out: Tensor, skips: Sequence[Tensor] = (), blocks: list[int] | None = None
    ) -> Tensor:
        for s in skips:
            out = out + s
        return self.bn(out)


class SkipConcat(nn.Module):
    """ReLU -> 1x1 conv -> BN of ``cat([*skips, out])``: ``[B, (n + 1) C, H, W] -> [B, C, H, W]``.

    Without skips ``out`` may be the inputs already concatenated, ``[B, inputs * C, H, W]`` (how
    a cost count runs it). The 1x1 conv has one block of ``C`` input channels per possible input
    (``inputs`` of them).
    The final network builds one block per chosen skip plus one for the op's output. The
    supernet's layer ``i`` builds ``i + 1``: block ``b < i`` for skip bit ``b`` (the stem, then
    layers ``0 .. i-2``) and block ``i`` for the op's output; a child uses the blocks of its
    inputs (``blocks``), so a source's weights are shared by every child that reads it. The
    blocks a child does not use get zero gradients, not none, so weight decay and momentum still
    move them (an unused op's weights get no update at all).
    """

    def __init__(self, channels: int, inputs: int, search: bool) -> None:
        super().__init__()
        self.channels = channels
        self.conv = nn.Conv2d(inputs * channels, channels, 1, bias=False)
        self.bn = batch_norm(channels, search)

    def forward(
        self, out: Tensor, skips: Sequence[Tensor] = (), blocks: list[int] | None = None
    ) -> Tensor:
        x = torch.relu(torch.cat([*skips, out], 1)) if skips else torch.relu(out)
        if blocks is None or len(blocks) * self.channels == self.conv.in_channels:
            return self.bn(self.conv(x))  # every block (the module call: cost hooks see it)
        c, w = self.channels, self.conv.weight
        return self.bn(F.conv2d(x, torch.cat([w[:, b * c : (b + 1) * c] for b in blocks], 1)))


def check_skip_merge(kind: str, setting: str) -> None:
    """Raise one clear :class:`ConfigError` naming ``setting`` unless ``kind`` is a merge."""
    if kind not in SKIP_MERGES:
        raise ConfigError(setting, kind, f"one of {', '.join(SKIP_MERGES)}")


def build_merge(kind: str, channels: int, inputs: int, search: bool) -> SkipSum | SkipConcat:
    """The merge of a layer with ``inputs`` possible inputs (its skips and its op's output)."""
    check_skip_merge(kind, "skip_merge")
    if kind == "sum":
        return SkipSum(channels, search)
    return SkipConcat(channels, inputs, search)

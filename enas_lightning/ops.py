"""Building blocks shared by every search space, and the op registry.

Tensors are ``[batch, channels, height, width]`` throughout.

``search=True`` builds BatchNorm layers that always normalise with the statistics of the current
batch (``track_running_stats=False``): in the supernet, running statistics would be shared by all
children and so describe none of them. The reference code scores micro children with batch
statistics too. Standalone (final) networks use ordinary BatchNorm.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from enas_lightning.errors import ConfigError

OpFactory = Callable[[int, int, bool], nn.Module]
"""Builds an op from ``(channels, stride, search)``; channels in equal channels out."""


class Registry:
    """Ops registered by name and built by one factory (the timm pattern)."""

    def __init__(self, space: str) -> None:
        self.space = space
        self._factories: dict[str, OpFactory] = {}

    def register(self, name: str) -> Callable[[OpFactory], OpFactory]:
        def wrap(factory: OpFactory) -> OpFactory:
            self._factories[name] = factory
            return factory

        return wrap

    def names(self) -> tuple[str, ...]:
        return tuple(self._factories)

    def check(self, ops: tuple[str, ...] | list[str], setting: str = "search_space.ops") -> None:
        """Raise one clear error if any name is unknown or repeated."""
        if len(ops) == 0:
            raise ConfigError(setting, list(ops), "at least one op name")
        for name in ops:
            if name not in self._factories:
                raise ConfigError(
                    setting, name, f"{self.space} ops are {', '.join(self._factories)}"
                )
        if len(set(ops)) != len(ops):
            raise ConfigError(setting, list(ops), "each op name at most once")

    def build(self, name: str, channels: int, stride: int = 1, search: bool = False) -> nn.Module:
        self.check([name])
        return self._factories[name](channels, stride, search)


def batch_norm(channels: int, search: bool) -> nn.BatchNorm2d:
    """BatchNorm; in search mode it always uses batch statistics (see module docstring)."""
    return nn.BatchNorm2d(channels, track_running_stats=not search)


class ReLUConvBN(nn.Sequential):
    """ReLU -> k x k conv -> BN: ``[B, C_in, H, W] -> [B, C_out, H/stride, W/stride]``."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int = 1, stride: int = 1, search: bool = False
    ) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False),
            batch_norm(c_out, search),
        )


class ConvBNReLU(nn.Sequential):
    """k x k conv -> BN -> ReLU (the macro space's order)."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int = 1,
        stride: int = 1,
        search: bool = False,
        separable: bool = False,
    ) -> None:
        if separable:
            conv: nn.Module = nn.Sequential(
                nn.Conv2d(c_in, c_in, kernel, stride, kernel // 2, groups=c_in, bias=False),
                nn.Conv2d(c_in, c_out, 1, bias=False),
            )
        else:
            conv = nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False)
        super().__init__(conv, batch_norm(c_out, search), nn.ReLU(inplace=False))


class SepConvUnit(nn.Sequential):
    """ReLU -> depthwise k x k -> pointwise 1x1 -> BN (one half of a micro ``sep_conv``)."""

    def __init__(self, channels: int, kernel: int, stride: int, search: bool) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(channels, channels, kernel, stride, kernel // 2, groups=channels, bias=False),
            nn.Conv2d(channels, channels, 1, bias=False),
            batch_norm(channels, search),
        )


class FactorizedReduce(nn.Module):
    """Halve the resolution without losing half the pixels.

    Two stride-2 paths on the ReLU'd input, the second shifted by one pixel, each a 1x1 conv to
    half the output channels; concatenated and batch-normalised.
    ``[B, C_in, H, W] -> [B, C_out, ceil(H/2), ceil(W/2)]``.
    """

    def __init__(self, c_in: int, c_out: int, search: bool = False) -> None:
        super().__init__()
        half = c_out // 2
        self.path1 = nn.Conv2d(c_in, half, 1, bias=False)
        self.path2 = nn.Conv2d(c_in, c_out - half, 1, bias=False)
        self.bn = batch_norm(c_out, search)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.relu(x)
        a = self.path1(x[:, :, ::2, ::2])
        # shift by one pixel (pad bottom/right with zeros) so the second path sees the odd pixels
        shifted = nn.functional.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))
        b = self.path2(shifted[:, :, ::2, ::2])
        return self.bn(torch.cat([a, b], dim=1))


def pool(kind: str, kernel: int, stride: int) -> nn.Module:
    """3x3/5x5 average or max pooling with 'same' padding; average excludes the padding."""
    if kind == "avg":
        return nn.AvgPool2d(kernel, stride, kernel // 2, count_include_pad=False)
    return nn.MaxPool2d(kernel, stride, kernel // 2)


@dataclass(frozen=True)
class Head:
    """Classifier settings: ``dropout_keep`` is the reference's keep probability."""

    num_classes: int
    dropout_keep: float = 1.0


class Classifier(nn.Module):
    """ReLU -> global average pool -> dropout -> linear: ``[B, C, H, W] -> [B, classes]``."""

    def __init__(self, channels: int, num_classes: int, dropout_keep: float = 1.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(1.0 - dropout_keep)
        self.linear = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.relu(x).mean(dim=(2, 3))
        return self.linear(self.dropout(x))

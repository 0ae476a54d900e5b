"""Building blocks shared by every search space, and the op registry.

Tensors are ``[batch, channels, height, width]`` throughout.

``search=True`` builds BatchNorm layers that always normalise with the statistics of the current
batch (``track_running_stats=False``): in the supernet, running statistics would be shared by all
children and so describe none of them. The reference code scores micro children with batch
statistics too. Standalone (final) networks use ordinary BatchNorm.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from enas_lightning.errors import ConfigError

OpFactory = Callable[[int, int, bool], nn.Module]
"""Builds an op from ``(channels, stride, search)``; channels in equal channels out."""


class Registry:
    """Ops registered by name and built by one factory (the timm pattern)."""

    def __init__(self, space: str) -> None:
        self.space = space
        self._factories: dict[str, OpFactory] = {}
        self._param_free: set[str] = set()

    def register(self, name: str, param_free: bool = False) -> Callable[[OpFactory], OpFactory]:
        """``param_free``: the op itself has no weights (identity, pooling); see
        :meth:`param_free_share`."""

        def wrap(factory: OpFactory) -> OpFactory:
            self._factories[name] = factory
            if param_free:
                self._param_free.add(name)
            return factory

        return wrap

    def names(self) -> tuple[str, ...]:
        return tuple(self._factories)

    def param_free_share(self, chosen: Sequence[str]) -> float:
        """The fraction of the op choices ``chosen`` that are parameter-free, in ``[0, 1]``.

        The weight-sharing supernet favours such ops (ENAS's known collapse to all-pool or
        all-identity cells), so the derivation and ``task=fidelity`` report this share.
        """
        if not chosen:
            raise ValueError("no op choices")
        return sum(op in self._param_free for op in chosen) / len(chosen)

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


def without_batch_norm_affine(net: nn.Module) -> int:
    """Drop the affine weight and bias of every BatchNorm layer in ``net`` (in place).

    ``search.bn_affine=false`` (Ning et al. 2021): the supernet's BatchNorm layers only normalise,
    as if built with ``affine=False``. A BatchNorm's weight and bias start as ones and zeros, so
    removing them after construction draws no random number: every other weight is the one the
    same seed gives with them. Returns the number of layers changed.
    """
    changed = 0
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
            m.affine = False
            m.register_parameter("weight", None)
            m.register_parameter("bias", None)
            changed += 1
    return changed


def parameter_free(module: nn.Module) -> bool:
    """Whether ``module`` has no parameters (a pool, an identity; a stride-2 identity, a
    factorized reduction, has weights)."""
    return next(module.parameters(), None) is None


class ParamFreeDropout(nn.Module):
    """Elementwise dropout on a parameter-free candidate op's output: ``[B, C, H, W]`` in and out.

    ``search.param_free_dropout`` (P-DARTS, DARTS-): during child training each element is zeroed
    with probability ``p`` and the rest scaled by ``1 / (1 - p)``, so a pool or identity no longer
    gives its exact input a weighted op must first learn to produce. Not an ``nn.Dropout`` on
    purpose: reward scoring switches every ``nn.Dropout`` on (``search.reward_dropout``), and this
    one must follow the supernet's own train/eval mode only, off when rewards and candidates are
    scored. It draws from torch's global generator, which every search step seeds.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"ParamFreeDropout: p={p} is not in [0, 1)")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


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

    Two stride-2 paths, the second shifted by one pixel, each a 1x1 conv to half the output
    channels; concatenated and batch-normalised.
    ``[B, C_in, H, W] -> [B, C_out, ceil(H/2), ceil(W/2)]``.

    ``relu``: a ReLU on the input first. The authors' ``_factorized_reduction`` has none of its
    own; their micro code puts one before it only where it calibrates a cell input, so the
    micro space passes ``relu=True`` there and ``relu=False`` for the reduction before a search
    reduction cell, a stride-2 identity and a reduction cell's unused inputs.
    """

    def __init__(self, c_in: int, c_out: int, search: bool = False, relu: bool = True) -> None:
        super().__init__()
        self.relu = relu
        half = c_out // 2
        self.path1 = nn.Conv2d(c_in, half, 1, bias=False)
        self.path2 = nn.Conv2d(c_in, c_out - half, 1, bias=False)
        self.bn = batch_norm(c_out, search)

    def forward(self, x: Tensor) -> Tensor:
        if self.relu:
            x = torch.relu(x)
        a = self.path1(x[:, :, ::2, ::2])
        # shift by one pixel (pad bottom/right with zeros) so the second path sees the odd pixels
        shifted = nn.functional.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))
        b = self.path2(shifted[:, :, ::2, ::2])
        return self.bn(torch.cat([a, b], dim=1))


class SamePool(nn.Module):
    """k x k average or max pooling with 'same' padding; the average excludes the padding.

    ``[B, C, H, W] -> [B, C, ceil(H / stride), ceil(W / stride)]``. On CPU, stride 1 (the case
    of every pool in the search spaces) is computed separably, a row pass then a column pass of
    shifted maxima or sums, where that is faster than PyTorch's kernels (one thread, torch 2.13,
    bench/RESULTS.md "Pooling kernels"): average pooling always (1.1-9x, with or without a
    gradient), max pooling only without a gradient (rewards, derivation, evaluation: 2-30x). With
    a gradient PyTorch's ``max_pool2d`` wins, 2-2.7x on NCHW and 7.6-11.5x on channels-last maps:
    the backward of a chain of ``torch.maximum`` is several full-size masked copies. The
    results are the same (maxima exactly; averages up to float rounding). CUDA and strided pools
    use PyTorch's.
    """

    def __init__(self, kind: str, kernel: int, stride: int) -> None:
        super().__init__()
        self.kind, self.kernel, self.stride = kind, kernel, stride
        pad = kernel // 2
        if kind == "avg":
            self.torch_pool: nn.Module = nn.AvgPool2d(kernel, stride, pad, count_include_pad=False)
        else:
            self.torch_pool = nn.MaxPool2d(kernel, stride, pad)

    def _separable(self, x: Tensor) -> Tensor:
        k, pad = self.kernel, self.kernel // 2
        is_max = self.kind == "max"
        fill = float("-inf") if is_max else 0.0
        combine = torch.maximum if is_max else torch.add
        p = nn.functional.pad(x, (pad, pad, pad, pad), value=fill)
        h, w = x.shape[-2:]
        rows = p[..., 0:w]
        for i in range(1, k):
            rows = combine(rows, p[..., i : i + w])
        out = rows[..., 0:h, :]
        for i in range(1, k):
            out = combine(out, rows[..., i : i + h, :])
        if not is_max:
            # divide by the number of real (non-padding) pixels under each window
            ones = torch.ones(1, 1, h, w, dtype=x.dtype, device=x.device)
            out = out / (nn.functional.avg_pool2d(ones, k, 1, pad) * (k * k))
        return out

    def forward(self, x: Tensor) -> Tensor:
        if self.stride == 1 and x.device.type == "cpu" and not self._max_with_grad(x):
            return self._separable(x)
        return self.torch_pool(x)

    def _max_with_grad(self, x: Tensor) -> bool:
        return self.kind == "max" and torch.is_grad_enabled() and x.requires_grad


def pool(kind: str, kernel: int, stride: int) -> nn.Module:
    """k x k average or max pooling with 'same' padding; average excludes the padding."""
    return SamePool(kind, kernel, stride)


class Classifier(nn.Module):
    """ReLU -> global average pool -> dropout -> linear: ``[B, C, H, W] -> [B, classes]``.

    ``relu=False`` drops the ReLU: the authors' macro head pools the last layer's output as it is.
    """

    def __init__(
        self, channels: int, num_classes: int, dropout_keep: float = 1.0, relu: bool = True
    ) -> None:
        super().__init__()
        self.relu = relu
        self.dropout = nn.Dropout(1.0 - dropout_keep)
        self.linear = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = (torch.relu(x) if self.relu else x).mean(dim=(2, 3))
        return self.linear(self.dropout(x))


def drop_path(x: Tensor, keep: float | Tensor) -> Tensor:
    """Zero whole samples with probability ``1 - keep`` and scale the rest by ``1 / keep``.

    ``[B, C, H, W] -> [B, C, H, W]``; one Bernoulli draw per sample, so a dropped path contributes
    nothing to that sample's node sum while the expected value is unchanged. A float
    ``keep >= 1`` is a no-op (returns ``x`` itself).

    ``keep`` is a Python float in eager runs (``bernoulli_``, as always) or a 0-dim tensor
    under ``torch.compile`` (:meth:`MicroNetwork.cell_keep
    <enas_lightning.spaces.micro.network.MicroNetwork.cell_keep>`): the keep probability grows
    with every training step, and dynamo specialises a float (``bernoulli_`` needs its value;
    a module attribute is compiled as a constant first), recompiling the network. As a tensor
    it is a graph input: one graph for the whole run, the mask ``rand < keep`` (the same
    Bernoulli(keep) per sample, no host read). Compiled random streams differ from eager ones
    anyway (inductor generates its own).
    """
    shape = (x.shape[0], *([1] * (x.dim() - 1)))
    if isinstance(keep, Tensor):
        mask = (torch.rand(shape, dtype=x.dtype, device=x.device) < keep).to(x.dtype)
        return x * mask / keep
    if keep >= 1.0:
        return x
    mask = torch.empty(shape, dtype=x.dtype, device=x.device)
    return x * mask.bernoulli_(keep) / keep


class AuxHead(nn.Module):
    """Auxiliary classifier: ``[B, C, H, W] -> [B, num_classes]``.

    ReLU, 5x5 average pool stride 3 without padding (the pool is the whole map when it is
    smaller than 5, so 8x8 digit images work), 1x1 conv to 128 + BN + ReLU, k x k conv to 768 +
    BN + ReLU with k the pooled map's size (TF "SAME" padding as in the reference, so another
    input size still runs), global average pool, linear.
    """

    def __init__(
        self, channels: int, num_classes: int, feature_size: int, search: bool = False
    ) -> None:
        super().__init__()
        pool = min(5, feature_size)
        self.kernel = (feature_size - pool) // 3 + 1  # pooled map size for the expected input
        # search=True (the supernet's aux head): batch-statistics BN like every search BN, so
        # no running statistics drift apart across DDP ranks (the head only runs in training)
        self.proj = nn.Sequential(
            nn.Conv2d(channels, 128, 1, bias=False), batch_norm(128, search), nn.ReLU()
        )
        self.conv = nn.Conv2d(128, 768, self.kernel, bias=False)
        self.post = nn.Sequential(batch_norm(768, search), nn.ReLU())
        self.linear = nn.Linear(768, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        pool = min(5, x.shape[-2], x.shape[-1])
        x = F.avg_pool2d(torch.relu(x), pool, 3)
        x = self.proj(x)
        # TF "SAME" for stride 1: k - 1 padding in total, the odd one at the bottom/right
        k = self.kernel
        x = F.pad(x, ((k - 1) // 2, k // 2, (k - 1) // 2, k // 2))
        x = self.post(self.conv(x))
        return self.linear(x.mean(dim=(2, 3)))

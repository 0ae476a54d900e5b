"""The standalone (final-mode) network of the macro space: one architecture, its own weights.

As the authors' ``general_child.py`` with a ``fixed_arc`` (``_model``, ``_fixed_layer``):

* stem: 3x3 conv to ``channels`` + BN; ``[B, in_channels, H, W] -> [B, C, H, W]``;
* layer ``i``: ``out = op(prev)`` with ``prev`` its input (layer i-1's output, the stem's for
  layer 0; ops in ReLU-conv-BN order); a layer ``i >= 1`` then merges ``out`` with the outputs
  of its skip sources (the stem and layers 0 .. i-2) by ``skip_merge``: ``concat`` (the
  authors' final layer: channel concatenation of the skips and ``out``, ReLU, 1x1 conv back to
  the layer's channels, BN; also when no skip is chosen) or ``sum`` (the authors' search layer:
  ``BN(out + sum of skips)``); layer 0 has no merge;
* after layers ``L//3 - 1`` and ``2*(L//3) - 1`` every earlier output still needed (the next
  layer's input or a later skip source, the stem's included) is factorized-reduced (no ReLU
  first, as the authors' ``_factorized_reduction``): resolution halves and channels double;
* head: global average pool (no ReLU, as the authors'), dropout, linear
  (:class:`~enas_lightning.spaces.ops.Classifier`).

Unlike the reference final code, separable convs are separable and pools pool (see
:mod:`enas_lightning.spaces.macro.ops`), and only the ops and reductions the architecture uses
are built (the reference reduces every earlier output), so every parameter gets a gradient.
"""

from __future__ import annotations

from torch import Tensor, nn

from enas_lightning.errors import ConfigError
from enas_lightning.spaces.base import Cost, halved
from enas_lightning.spaces.cost import Tally
from enas_lightning.spaces.macro.arch import STEM, MacroArch
from enas_lightning.spaces.macro.ops import MACRO_OPS, build_merge, check_skip_merge
from enas_lightning.spaces.macro.supernet import source_key
from enas_lightning.spaces.ops import Classifier, FactorizedReduce


def reduction_after(num_layers: int) -> tuple[int, ...]:
    """Layer indices after which the resolution halves (none after the last layer)."""
    k = num_layers // 3
    return tuple(i for i in (k - 1, 2 * k - 1) if 0 <= i < num_layers - 1)


def used_after(arch: MacroArch, j: int, i: int) -> bool:
    """Whether source ``j``'s output is read by a layer after layer ``i``."""
    return j == i or any(j in layer.skips for layer in arch.layers[i + 1 :])


def check_network(arch: MacroArch, channels: int, skip_merge: str) -> None:
    """One clear :class:`ConfigError` for settings no standalone network can have."""
    arch.validate(MACRO_OPS.names())
    if channels < 2 or channels % 2:
        raise ConfigError("model.channels", channels, "an even number >= 2")
    check_skip_merge(skip_merge, "final.skip_merge")


class MacroNetwork(nn.Module):
    """Standalone network of a macro architecture (see the module docstring).

    ``forward(x)``: ``[B, in_channels, H, W] -> [B, num_classes]`` logits. With L layers the
    last layer's output is ``[B, 4C, H/4, W/4]`` (two reductions; fewer for L < 6).
    """

    def __init__(
        self,
        arch: MacroArch,
        num_classes: int,
        in_channels: int = 3,
        channels: int = 96,
        dropout_keep: float = 1.0,
        skip_merge: str = "concat",
    ) -> None:
        super().__init__()
        check_network(arch, channels, skip_merge)
        self.arch = arch
        self.skip_merge = skip_merge
        self.reductions = reduction_after(arch.num_layers)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)
        )
        self.ops = nn.ModuleList()
        # merges[i - 1]: layer i's merge of its len(skips) skips and its op's output
        self.merges = nn.ModuleList()
        # reduce[f"{i}_{source_key(j)}"]: the reduction after layer i of source j's output
        self.reduce = nn.ModuleDict()
        c = channels
        for i, layer in enumerate(arch.layers):
            self.ops.append(MACRO_OPS.build(layer.op, c, 1, search=False))
            if i > 0:
                self.merges.append(build_merge(skip_merge, c, len(layer.skips) + 1, search=False))
            if i in self.reductions:
                for j in range(STEM, i + 1):
                    if used_after(arch, j, i):
                        self.reduce[f"{i}_{source_key(j)}"] = FactorizedReduce(c, 2 * c, relu=False)
                c *= 2
        self.out_channels = c
        self.classifier = Classifier(c, num_classes, dropout_keep, relu=False)

    def forward(self, x: Tensor) -> Tensor:
        prev = self.stem(x)
        # source -> output at the current resolution (dropped once no later layer reads it)
        outs: dict[int, Tensor] = {STEM: prev}
        for i, layer in enumerate(self.arch.layers):
            out = self.ops[i](prev)
            if i > 0:
                out = self.merges[i - 1](out, [outs[j] for j in layer.skips])
            prev = outs[i] = out
            if i in self.reductions:
                outs = {
                    j: self.reduce[f"{i}_{source_key(j)}"](o)
                    for j, o in outs.items()
                    if f"{i}_{source_key(j)}" in self.reduce
                }
                prev = outs[i]
        return self.classifier(prev)


def network_cost(
    arch: MacroArch,
    num_classes: int,
    in_channels: int,
    image_hw: tuple[int, int],
    channels: int = 96,
    dropout_keep: float = 1.0,
    skip_merge: str = "concat",
) -> Cost:
    """What ``MacroNetwork(arch, ...)`` with these settings costs (parameters, multiply-adds per
    ``[in_channels, *image_hw]`` image), counted without building it
    (:class:`~enas_lightning.spaces.cost.Tally`). It walks the same structure as
    :class:`MacroNetwork` builds, module for module; tests/test_networks.py checks that the two
    agree on random architectures and sizes."""
    check_network(arch, channels, skip_merge)
    t = Tally()
    c, (h, w) = channels, image_hw
    t.add(nn.Conv2d, in_channels, c, 3, padding=1, bias=False, input_shape=(in_channels, h, w))
    t.add(nn.BatchNorm2d, c, input_shape=(c, h, w))
    reductions = reduction_after(arch.num_layers)
    for i, layer in enumerate(arch.layers):
        t.add(MACRO_OPS.build, layer.op, c, 1, search=False, input_shape=(c, h, w))
        if i > 0:
            inputs = len(layer.skips) + 1
            # a merge run on its inputs already concatenated (concat) or summed (sum)
            merged = inputs * c if skip_merge == "concat" else c
            t.add(build_merge, skip_merge, c, inputs, search=False, input_shape=(merged, h, w))
        if i in reductions:
            for j in range(STEM, i + 1):
                if used_after(arch, j, i):
                    t.add(FactorizedReduce, c, 2 * c, relu=False, input_shape=(c, h, w))
            c, h, w = 2 * c, halved(h), halved(w)
    t.add(Classifier, c, num_classes, dropout_keep, relu=False, input_shape=(c, h, w))
    return Cost(t.params, t.madds)

"""The standalone (final-mode) network of the macro space: one architecture, its own weights.

* stem: 3x3 conv to ``channels`` + BN; ``[B, in_channels, H, W] -> [B, C, H, W]``;
* layer ``i``: ``out = op(prev)`` with ``prev`` the previous layer's output (the stem's for layer
  0), then ``out = BN(out + sum of the outputs of the layer's skip sources)``;
* after layers ``L//3 - 1`` and ``2*(L//3) - 1`` every earlier output still needed (the next
  layer's input or a later skip source) is factorized-reduced: resolution halves and channels
  double (final mode);
* head: ReLU, global average pool, dropout, linear (:class:`~enas_lightning.ops.Classifier`).

Skips are **summed**, as in the reference search code, not concatenated and mixed by a 1x1 conv
as in the paper (and the reference final code). Summing is the same in search and in the final
network and keeps every layer's shape fixed whatever skips are chosen; a concat + 1x1 conv
would need a mixing weight per (layer, source) combination. Unlike the reference final code,
separable convs are separable and pools pool (see :mod:`enas_lightning.spaces.macro.ops`).

Only the ops and reductions the architecture uses are built, so every parameter gets a gradient.
"""

from __future__ import annotations

from torch import Tensor, nn

from enas_lightning.arch.macro import MacroArch
from enas_lightning.errors import ConfigError
from enas_lightning.ops import Classifier, FactorizedReduce
from enas_lightning.spaces.macro.ops import MACRO_OPS


def reduction_after(num_layers: int) -> tuple[int, ...]:
    """Layer indices after which the resolution halves (none after the last layer)."""
    k = num_layers // 3
    return tuple(i for i in (k - 1, 2 * k - 1) if 0 <= i < num_layers - 1)


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
    ) -> None:
        super().__init__()
        arch.validate(MACRO_OPS.names())
        if channels < 2 or channels % 2:
            raise ConfigError("model.channels", channels, "an even number >= 2")
        self.arch = arch
        self.reductions = reduction_after(arch.num_layers)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)
        )
        self.ops = nn.ModuleList()
        self.bns = nn.ModuleList()
        # reduce[f"{i}_{j}"]: the reduction after layer i of layer j's output (j <= i)
        self.reduce = nn.ModuleDict()
        c = channels
        for i, layer in enumerate(arch.layers):
            self.ops.append(MACRO_OPS.build(layer.op, c, 1, search=False))
            self.bns.append(nn.BatchNorm2d(c))
            if i in self.reductions:
                for j in range(i + 1):
                    if self._used_after(j, i):
                        self.reduce[f"{i}_{j}"] = FactorizedReduce(c, 2 * c)
                c *= 2
        self.out_channels = c
        self.classifier = Classifier(c, num_classes, dropout_keep)

    def _used_after(self, j: int, i: int) -> bool:
        """Whether layer ``j``'s output is read by a layer after layer ``i``."""
        return j == i or any(j in layer.skips for layer in self.arch.layers[i + 1 :])

    def forward(self, x: Tensor) -> Tensor:
        prev = self.stem(x)
        outs: list[Tensor | None] = []  # per layer, at the current resolution (None: not needed)
        for i, layer in enumerate(self.arch.layers):
            out = self.ops[i](prev)
            for j in layer.skips:
                out = out + outs[j]
            out = self.bns[i](out)
            outs.append(out)
            if i in self.reductions:
                outs = [
                    self.reduce[f"{i}_{j}"](o) if f"{i}_{j}" in self.reduce else None
                    for j, o in enumerate(outs)
                ]
            prev = outs[i]
        return self.classifier(prev)

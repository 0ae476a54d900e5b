"""The macro supernet: every layer holds all candidate ops, a child runs one per layer.

Search-mode semantics of the authors' ``general_child.py``, without its defects: stem 3x3 conv +
BN; layer i applies its op to layer i-1's output, adds the outputs of its chosen skip sources and
batch-normalises the sum (we sum skips as the reference search code does, in search and final
alike: shape-stable and parameter-free; the paper's concat + 1x1 conv would need a weight block
per source). After layers ``L//3 - 1`` and ``2*(L//3) - 1`` every earlier output still needed is
factorized-reduced (channels stay fixed in search; the final network doubles them).
"""

from __future__ import annotations

from torch import Tensor, nn

from enas_lightning.arch.macro import MacroArch
from enas_lightning.ops import Classifier, FactorizedReduce, batch_norm
from enas_lightning.spaces.macro.ops import MACRO_OPS


def reduction_layers(layers: int) -> tuple[int, int]:
    """Layers after which the resolution halves."""
    d = layers // 3
    return d - 1, 2 * d - 1


def needed_later(arch: MacroArch, after: int) -> set[int]:
    """Outputs (layer indices <= ``after``) that a later layer reads."""
    need = {after} if after + 1 < arch.num_layers else set()
    for layer in arch.layers[after + 1 :]:
        need.update(j for j in layer.skips if j <= after)
    return need


class MacroSupernet(nn.Module):
    """``forward(x [B, in_channels, H, W], arch) -> logits [B, num_classes]``."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        layers: int = 12,
        channels: int = 36,
        ops: tuple[str, ...] = ("conv_3x3",),
        dropout_keep: float = 0.9,
    ) -> None:
        super().__init__()
        MACRO_OPS.check(tuple(ops))
        self.ops = tuple(ops)
        self.op_index = {name: k for k, name in enumerate(self.ops)}
        self.layers = layers
        self.reductions = reduction_layers(layers)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), batch_norm(channels, True)
        )
        self.branches = nn.ModuleList(
            nn.ModuleList(MACRO_OPS.build(op, channels, 1, search=True) for op in self.ops)
            for _ in range(layers)
        )
        self.bns = nn.ModuleList(batch_norm(channels, True) for _ in range(layers))
        # reduce[r][j]: factorized reduction of layer j's output at the r-th reduction
        self.reduce = nn.ModuleList(
            nn.ModuleList(FactorizedReduce(channels, channels, True) for _ in range(after + 1))
            for after in self.reductions
        )
        self.classifier = Classifier(channels, num_classes, dropout_keep)

    def forward(self, x: Tensor, arch: MacroArch) -> Tensor:
        outputs: dict[int, Tensor] = {}
        prev = self.stem(x)
        for i, layer in enumerate(arch.layers):
            out = self.branches[i][self.op_index[layer.op]](prev)
            for j in layer.skips:
                out = out + outputs[j]
            prev = outputs[i] = self.bns[i](out)
            if i in self.reductions:
                r = self.reductions.index(i)
                need = needed_later(arch, i)
                outputs = {j: self.reduce[r][j](outputs[j]) for j in need}
                prev = outputs.get(i, prev)
        return self.classifier(prev)

"""The macro supernet: every layer holds all candidate ops, a child runs one per layer.

Search-mode semantics of the authors' ``general_child.py`` (``_model``, ``_enas_layer``), without
its defects: stem 3x3 conv + BN; layer i applies its op to its input (layer i-1's output, the
stem's for layer 0); a layer i >= 1 then merges the op's output with its chosen skip sources (the
stem and layers 0 .. i-2, never its own input) by ``skip_merge``: ``sum`` (the authors' search
layer: BN of the sum, also when no skip is chosen) or ``concat`` (ReLU, 1x1 conv, BN of the
channel concatenation, with one shared 1x1 weight block per possible source). Layer 0 has no
merge: its output is its op's. After layers ``L//3 - 1`` and ``2*(L//3) - 1`` every earlier
output still needed (the stem's included) is factorized-reduced (no ReLU first, as the
authors' ``_factorized_reduction``); channels stay fixed in search
(the final network doubles them). Head: global average pool (no ReLU, as the authors'),
dropout, linear.

``set_param_free_dropout(p)`` (``search.param_free_dropout``, not the authors') passes the output
of every pool branch through :class:`~enas_lightning.spaces.ops.ParamFreeDropout` while the
supernet trains. Every search branch starts with its own 1x1 conv-BN-ReLU (the authors'
``_conv_branch`` and ``_pool_branch``); what follows it is the op itself, and for a pool it has
no weights: the pools are this space's parameter-free candidates.
"""

from __future__ import annotations

from torch import Tensor, nn

from enas_lightning.spaces.macro.arch import STEM, MacroArch
from enas_lightning.spaces.macro.ops import MACRO_OPS, build_merge, check_skip_merge
from enas_lightning.spaces.ops import (
    Classifier,
    FactorizedReduce,
    ParamFreeDropout,
    batch_norm,
    parameter_free,
)


def reduction_layers(layers: int) -> tuple[int, int]:
    """Layers after which the resolution halves."""
    d = layers // 3
    return d - 1, 2 * d - 1


def source_key(j: int) -> str:
    """Module key of skip source ``j``: ``"stem"`` or the layer index."""
    return "stem" if j == STEM else str(j)


def needed_later(arch: MacroArch, after: int) -> set[int]:
    """Outputs (:data:`STEM` or layer indices <= ``after``) that a later layer reads."""
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
        skip_merge: str = "sum",
    ) -> None:
        super().__init__()
        MACRO_OPS.check(tuple(ops))
        check_skip_merge(skip_merge, "search_space.skip_merge")
        self.ops = tuple(ops)
        self.op_index = {name: k for k, name in enumerate(self.ops)}
        self.layers = layers
        self.skip_merge = skip_merge
        self.reductions = reduction_layers(layers)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), batch_norm(channels, True)
        )
        self.branches = nn.ModuleList(
            nn.ModuleList(MACRO_OPS.build(op, channels, 1, search=True) for op in self.ops)
            for _ in range(layers)
        )
        # merges[i - 1]: layer i's merge, i + 1 possible inputs (i skip sources and the op)
        self.merges = nn.ModuleList(
            build_merge(skip_merge, channels, i + 1, search=True) for i in range(1, layers)
        )
        # reduce[r][source_key(j)]: factorized reduction of source j's output at the r-th reduction
        self.reduce = nn.ModuleList(
            nn.ModuleDict(
                {
                    source_key(j): FactorizedReduce(channels, channels, True, relu=False)
                    for j in range(STEM, after + 1)
                }
            )
            for after in self.reductions
        )
        self.classifier = Classifier(channels, num_classes, dropout_keep, relu=False)
        # the ops whose own computation, after the branch's 1x1 conv-BN-ReLU, has no weights
        self.param_free_ops = frozenset(
            k for k, branch in enumerate(self.branches[0]) if parameter_free(branch[1:])
        )
        self.param_free_dropout: ParamFreeDropout | None = None

    def set_param_free_dropout(self, p: float) -> None:
        """Dropout at rate ``p`` on every pool branch's output in training (0 = none)."""
        self.param_free_dropout = ParamFreeDropout(p) if p > 0 else None

    def forward(self, x: Tensor, arch: MacroArch) -> Tensor:
        prev = self.stem(x)
        outputs: dict[int, Tensor] = {STEM: prev}  # source -> output at the current resolution
        for i, layer in enumerate(arch.layers):
            k = self.op_index[layer.op]
            out = self.branches[i][k](prev)
            if self.param_free_dropout is not None and k in self.param_free_ops:
                out = self.param_free_dropout(out)
            if i > 0:
                skips = [outputs[j] for j in layer.skips]
                # concat: block b = j + 1 of source j (skip bit b), block i of the op's output
                out = self.merges[i - 1](out, skips, [j + 1 for j in layer.skips] + [i])
            prev = outputs[i] = out
            if i in self.reductions:
                r = self.reductions.index(i)
                need = needed_later(arch, i)
                outputs = {j: self.reduce[r][source_key(j)](outputs[j]) for j in need}
                prev = outputs.get(i, prev)
        return self.classifier(prev)

"""The micro supernet: every child of the cell space is a subgraph of it, weights shared.

Search-mode semantics of the authors' ``micro_child.py``:
stem 3x3 conv to ``3 * channels`` + BN; ``layers + 2`` cells with reduction cells at positions
``layers // 3`` and ``2 * (layers // 3) + 1``; channels double at each reduction. Before a
reduction cell the previous output is factorized-reduced and the reduction cell then runs at
stride 1. Each cell calibrates its two inputs to its channels and resolution, computes its nodes
with the sampled ops, and maps the concatenation of its loose ends back to ``channels`` with
ReLU -> 1x1 conv -> BN. The 1x1 conv's weight holds one ``[C, C]`` block per node, and the blocks
of the loose ends are selected, so its weights are shared per node too.

Weights are shared per (cell, node, input slot, input index, op): the same computation in two
children uses the same tensors. A forward pass runs only the sampled ops. With
``weights_per_input=False`` (not the authors') one copy per (cell, node, slot, op) serves every
input index, so each copy is trained ``j + 2`` times as often at node ``j``.

``set_param_free_dropout(p)`` (``search.param_free_dropout``, not the authors') passes the output
of every parameter-free candidate op (pools, identity) through
:class:`~enas_lightning.spaces.ops.ParamFreeDropout` while the supernet trains.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from enas_lightning.spaces.micro.arch import MicroArch, MicroCell
from enas_lightning.spaces.micro.network import reduction_positions
from enas_lightning.spaces.micro.ops import MICRO_OPS
from enas_lightning.spaces.ops import (
    AuxHead,
    Classifier,
    FactorizedReduce,
    ParamFreeDropout,
    ReLUConvBN,
    SepConvUnit,
    batch_norm,
    parameter_free,
)


class Calibrate(nn.Module):
    """Bring a cell input to the cell's channels and resolution (or leave it alone)."""

    def __init__(self, c_in: int, c_out: int, reduce: bool, search: bool) -> None:
        super().__init__()
        if reduce:
            # ReLU then factorized reduction (the authors' _maybe_calibrate_size)
            self.op: nn.Module = FactorizedReduce(c_in, c_out, search, relu=True)
        elif c_in != c_out:
            self.op = ReLUConvBN(c_in, c_out, 1, 1, search)
        else:
            self.op = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class SearchCell(nn.Module):
    """A cell of the supernet: all candidate ops for every (node, slot, input index)."""

    def __init__(
        self,
        c_prev_prev: int,
        c_prev: int,
        channels: int,
        prev_prev_larger: bool,
        num_nodes: int,
        ops: tuple[str, ...],
        weights_per_input: bool = True,
    ) -> None:
        super().__init__()
        self.channels = channels
        self.num_nodes = num_nodes
        self.weights_per_input = weights_per_input
        self.op_index = {name: k for k, name in enumerate(ops)}
        self.calibrate = nn.ModuleList(
            [
                Calibrate(c_prev_prev, channels, prev_prev_larger, search=True),
                Calibrate(c_prev, channels, False, search=True),
            ]
        )
        # ops[node][slot][input index][op]; with weights_per_input=False one copy (index 0)
        # serves every input of the slot
        self.ops = nn.ModuleList(
            nn.ModuleList(
                nn.ModuleList(
                    nn.ModuleList(MICRO_OPS.build(op, channels, 1, search=True) for op in ops)
                    for _ in range(j + 2 if weights_per_input else 1)
                )
                for _ in range(2)
            )
            for j in range(num_nodes)
        )
        self.out_weight = nn.Parameter(torch.empty(channels, (num_nodes + 2) * channels, 1, 1))
        nn.init.kaiming_normal_(self.out_weight)
        self.out_bn = batch_norm(channels, search=True)
        # the op indices without weights (every op runs at stride 1 here, so an identity is
        # nn.Identity); their outputs pass through param_free_dropout when one is set
        self.param_free_ops = frozenset(
            k for k, op in enumerate(self.ops[0][0][0]) if parameter_free(op)
        )
        self.param_free_dropout: ParamFreeDropout | None = None

    def forward(self, s0: Tensor, s1: Tensor, cell: MicroCell) -> Tensor:
        """``s0``, ``s1``: the outputs of the previous two cells -> ``[B, C, H, W]``."""
        nodes = [self.calibrate[0](s0), self.calibrate[1](s1)]
        for j, node in enumerate(cell.nodes):
            out = None
            for slot, (i, op) in enumerate(zip(node.inputs, node.ops, strict=True)):
                copy = i if self.weights_per_input else 0
                k = self.op_index[op]
                y = self.ops[j][slot][copy][k](nodes[i])
                if self.param_free_dropout is not None and k in self.param_free_ops:
                    y = self.param_free_dropout(y)
                out = y if out is None else out + y
            nodes.append(out)
        loose = cell.loose_ends
        x = torch.relu(torch.cat([nodes[k] for k in loose], dim=1))
        c = self.channels
        # the loose ends' blocks of the 1x1 weight, gathered from views: indexing with
        # list(loose) would copy that list to the device, a host wait in every cell of every
        # child step (8 per step in the micro preset, CUDA's sync debug mode on an H200)
        blocks = self.out_weight.view(c, self.num_nodes + 2, c).unbind(1)
        w = torch.cat([blocks[k] for k in loose], dim=1).reshape(c, -1, 1, 1)
        return self.out_bn(F.conv2d(x, w))


class MicroSupernet(nn.Module):
    """All micro children in one network.

    ``forward(x [B, in_channels, H, W], arch) -> logits [B, num_classes]`` (and the aux head's
    logits ``[B, num_classes]`` as a second output when ``aux_head`` and training).
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        layers: int = 6,
        channels: int = 20,
        num_nodes: int = 5,
        ops: tuple[str, ...] = ("sep_conv_3x3",),
        dropout_keep: float = 0.9,
        aux_head: bool = False,
        image_size: int = 32,
        weights_per_input: bool = True,
    ) -> None:
        super().__init__()
        MICRO_OPS.check(tuple(ops))
        self.ops = tuple(ops)
        self.num_nodes = num_nodes
        self.layers = layers
        self.reductions = reduction_positions(layers)
        stem_c = 3 * channels
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem_c, 3, padding=1, bias=False), batch_norm(stem_c, True)
        )
        self.cells = nn.ModuleList()
        self.pre_reduce = nn.ModuleDict()
        c_pp, c_p, c = stem_c, stem_c, channels
        pp_larger = False
        self.aux_after = -1
        self.aux_head: AuxHead | None = None
        for k in range(layers + 2):
            if k in self.reductions:
                c *= 2
                # the previous output is reduced first; the reduction cell then sees
                # [previous (full size), reduced previous] and runs at stride 1
                # no ReLU before it, as the authors' _model
                self.pre_reduce[str(k)] = FactorizedReduce(c_p, c, search=True, relu=False)
                c_pp, c_p, pp_larger = c_p, c, True
            self.cells.append(
                SearchCell(c_pp, c_p, c, pp_larger, num_nodes, self.ops, weights_per_input)
            )
            c_pp, c_p, pp_larger = c_p, c, False
            if aux_head and k == self.reductions[1] + 1:
                # as the reference: on the cell right after the last reduction
                self.aux_after = k
                self.aux_head = AuxHead(c, num_classes, feature_size=image_size // 4, search=True)
        self.classifier = Classifier(c_p, num_classes, dropout_keep)

    def set_param_free_dropout(self, p: float) -> None:
        """Dropout at rate ``p`` on every parameter-free op's output in training (0 = none)."""
        for cell in self.cells:
            cell.param_free_dropout = ParamFreeDropout(p) if p > 0 else None

    def authors_fan_in(self) -> dict[nn.Parameter, int]:
        """The fan-in of the authors' he_normal for the weights their supernet lays out in 2-D.

        ``_enas_conv`` makes each separable conv's depthwise and pointwise weights one
        ``[j + 2, k*k*C]`` and ``[j + 2, C*C]`` tensor per node ``j`` (a row per input it can
        read), and ``_enas_layer``'s output conv one ``[num_nodes + 2, C*C]``: TF's fan-in of a
        2-D shape is its first dimension, ``j + 2`` and ``num_nodes + 2``. Every other weight
        (a plain ``conv_kxk``, which the authors' space lacks, included) has TF's 4-D fan-in
        (see :mod:`enas_lightning.spaces.init`).
        """
        fan: dict[nn.Parameter, int] = {}
        for cell in self.cells:
            fan[cell.out_weight] = cell.num_nodes + 2
            for j, per_slot in enumerate(cell.ops):
                for unit in per_slot.modules():
                    if isinstance(unit, SepConvUnit):  # its depthwise and pointwise convs
                        for conv in unit.modules():
                            if isinstance(conv, nn.Conv2d):
                                fan[conv.weight] = j + 2
        return fan

    def forward(self, x: Tensor, arch: MicroArch) -> Tensor | tuple[Tensor, Tensor]:
        s0 = s1 = self.stem(x)
        aux = None
        for k, cell in enumerate(self.cells):
            if str(k) in self.pre_reduce:
                s0, s1 = s1, self.pre_reduce[str(k)](s1)
            cell_arch = arch.reduce if k in self.reductions else arch.normal
            s0, s1 = s1, cell(s0, s1, cell_arch)
            if k == self.aux_after and self.aux_head is not None and self.training:
                aux = self.aux_head(s1)
        logits = self.classifier(s1)
        return (logits, aux) if aux is not None else logits

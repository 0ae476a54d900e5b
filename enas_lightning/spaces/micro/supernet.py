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

With ``standalone_width=True`` (``search_space.standalone_width``, not the authors') a cell's
output is the concatenation of its loose ends as it is, ``len(loose_ends) * channels`` wide, as
in the standalone network (``network.py``), and its consumers (the next two cells' calibrations,
the reduction before a reduction cell, the classifier) hold one weight block per node of the
cell they read and use the blocks of its loose ends (:class:`LooseEndCalibrate`,
:class:`LooseEndClassifier`). In the authors' supernet every child's cell output has the same
width, so a cell that concatenates four nodes is no wider than a chain of four; in the
standalone network it is four times wider, and the cells' loose-end count orders their retrained
accuracy (experiments/RESULTS.md, issue 20, sixteenth round).

``set_param_free_dropout(p)`` (``search.param_free_dropout``, not the authors') passes the output
of every parameter-free candidate op (pools, identity) through
:class:`~enas_lightning.spaces.ops.ParamFreeDropout` while the supernet trains.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from enas_lightning.errors import ConfigError
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
    factorized_paths,
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


def loose_end_blocks(weight: Tensor, n_blocks: int, loose: tuple[int, ...]) -> Tensor:
    """The columns of ``weight`` ``[C_out, n_blocks * C_block, ...]`` that read ``loose``'s
    blocks, in order: ``[C_out, len(loose) * C_block, ...]``.

    Gathered from views: indexing with ``list(loose)`` would copy that list to the device, a
    host wait in every cell of every child step (CUDA's sync debug mode on an H200).
    """
    c_out = weight.shape[0]
    blocks = weight.view(c_out, n_blocks, -1).unbind(1)
    return torch.cat([blocks[k] for k in loose], dim=1).view(c_out, -1, *weight.shape[2:])


class LooseEndCalibrate(nn.Module):
    """ReLU, then a 1x1 conv (``reduce``: a factorized reduction) and BN, over an earlier cell's
    loose ends at the standalone width (``standalone_width``).

    ``forward(x [B, len(loose) * c_block, H, W], loose) -> [B, c_out, H', W']`` (``H' = H / 2``
    when ``reduce``). Its weights hold one ``[c_out, c_block]`` block per node of the earlier
    cell (``n_blocks`` = its nodes, inputs included); the blocks of ``loose`` are used, so a child
    computes what its standalone network's calibration (with weights for exactly its loose ends)
    computes, and children share each node's block.
    """

    def __init__(
        self, c_block: int, n_blocks: int, c_out: int, reduce: bool, relu: bool = True
    ) -> None:
        super().__init__()
        self.n_blocks, self.reduce, self.relu = n_blocks, reduce, relu
        outs = (c_out // 2, c_out - c_out // 2) if reduce else (c_out,)
        # torch's default init of a 1x1 conv reading every block (nn.Conv2d's fan-in)
        self.weights = nn.ParameterList(
            nn.Conv2d(n_blocks * c_block, o, 1, bias=False).weight for o in outs
        )
        self.bn = batch_norm(c_out, search=True)

    def forward(self, x: Tensor, loose: tuple[int, ...]) -> Tensor:
        if self.relu:
            x = torch.relu(x)
        ws = [loose_end_blocks(w, self.n_blocks, loose) for w in self.weights]
        y = factorized_paths(x, *ws) if self.reduce else F.conv2d(x, ws[0])
        return self.bn(y)


class LooseEndClassifier(nn.Module):
    """:class:`~enas_lightning.spaces.ops.Classifier` over the last cell's loose ends at the
    standalone width: ``forward(x [B, len(loose) * c_block, H, W], loose) -> [B, classes]``, its
    linear weight one ``[classes, c_block]`` block per node of the cell."""

    def __init__(
        self, c_block: int, n_blocks: int, num_classes: int, dropout_keep: float = 1.0
    ) -> None:
        super().__init__()
        self.n_blocks = n_blocks
        self.dropout = nn.Dropout(1.0 - dropout_keep)
        self.linear = nn.Linear(n_blocks * c_block, num_classes)

    def forward(self, x: Tensor, loose: tuple[int, ...]) -> Tensor:
        # normalised by the batch first (no affine): a loose end's scale depends on the child
        # (each identity or pooling node adds its inputs unnormalised, so a chain of them
        # doubles it per node) and one linear block per node cannot follow that from child to
        # child; the calibrations end in a BN and need none
        x = F.batch_norm(x, None, None, training=True)
        x = torch.relu(x).mean(dim=(2, 3))
        w = loose_end_blocks(self.linear.weight, self.n_blocks, loose)
        return F.linear(self.dropout(x), w, self.linear.bias)


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
        standalone_width: bool = False,
        wide_inputs: tuple[bool, bool] = (False, False),
    ) -> None:
        """``wide_inputs``: which of the two inputs is an earlier cell's loose ends at the
        standalone width (``c_prev_prev`` / ``c_prev`` are then that cell's channels per node);
        ``standalone_width``: this cell's output is its loose ends at that width too."""
        super().__init__()
        self.channels = channels
        self.num_nodes = num_nodes
        self.weights_per_input = weights_per_input
        self.standalone_width = standalone_width
        self.op_index = {name: k for k, name in enumerate(ops)}
        self.calibrate = nn.ModuleList(
            [
                LooseEndCalibrate(c_in, num_nodes + 2, channels, reduce)
                if wide
                else Calibrate(c_in, channels, reduce, search=True)
                for c_in, reduce, wide in zip(
                    (c_prev_prev, c_prev), (prev_prev_larger, False), wide_inputs, strict=True
                )
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
        if not standalone_width:
            self.out_weight = nn.Parameter(torch.empty(channels, (num_nodes + 2) * channels, 1, 1))
            nn.init.kaiming_normal_(self.out_weight)
            self.out_bn = batch_norm(channels, search=True)
        # the op indices without weights (every op runs at stride 1 here, so an identity is
        # nn.Identity); their outputs pass through param_free_dropout when one is set
        self.param_free_ops = frozenset(
            k for k, op in enumerate(self.ops[0][0][0]) if parameter_free(op)
        )
        self.param_free_dropout: ParamFreeDropout | None = None

    def forward(
        self,
        s0: Tensor,
        s1: Tensor,
        cell: MicroCell,
        loose_in: tuple[tuple[int, ...] | None, tuple[int, ...] | None] = (None, None),
    ) -> Tensor:
        """``s0``, ``s1``: the outputs of the previous two cells (``loose_in``: the loose ends
        of a wide input) -> ``[B, C, H, W]``, or ``[B, len(cell.loose_ends) * C, H, W]`` with
        ``standalone_width``."""
        nodes = [
            op(x, loose) if isinstance(op, LooseEndCalibrate) else op(x)
            for op, x, loose in zip(self.calibrate, (s0, s1), loose_in, strict=True)
        ]
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
        if self.standalone_width:
            return torch.cat([nodes[k] for k in loose], dim=1)
        x = torch.relu(torch.cat([nodes[k] for k in loose], dim=1))
        # the loose ends' blocks of the 1x1 weight
        w = loose_end_blocks(self.out_weight, self.num_nodes + 2, loose)
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
        standalone_width: bool = False,
    ) -> None:
        super().__init__()
        MICRO_OPS.check(tuple(ops))
        if standalone_width and aux_head:
            raise ConfigError(
                "search_space.aux_weight",
                "> 0",
                "0 with search_space.standalone_width=true (the aux head reads one cell's "
                "output at the authors' width)",
            )
        self.standalone_width = standalone_width
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
        # which of the last two outputs are loose ends at the standalone width (the stem's and a
        # pre-reduction's are not)
        wide_pp = wide_p = False
        n_blocks = num_nodes + 2
        self.aux_after = -1
        self.aux_head: AuxHead | None = None
        for k in range(layers + 2):
            if k in self.reductions:
                c *= 2
                # the previous output is reduced first; the reduction cell then sees
                # [previous (full size), reduced previous] and runs at stride 1
                # no ReLU before it, as the authors' _model
                self.pre_reduce[str(k)] = (
                    LooseEndCalibrate(c_p, n_blocks, c, reduce=True, relu=False)
                    if wide_p
                    else FactorizedReduce(c_p, c, search=True, relu=False)
                )
                c_pp, c_p, pp_larger = c_p, c, True
                wide_pp, wide_p = wide_p, False
            self.cells.append(
                SearchCell(
                    c_pp,
                    c_p,
                    c,
                    pp_larger,
                    num_nodes,
                    self.ops,
                    weights_per_input,
                    standalone_width,
                    (wide_pp, wide_p),
                )
            )
            c_pp, c_p, pp_larger = c_p, c, False
            wide_pp, wide_p = wide_p, standalone_width
            if aux_head and k == self.reductions[1] + 1:
                # as the reference: on the cell right after the last reduction
                self.aux_after = k
                self.aux_head = AuxHead(c, num_classes, feature_size=image_size // 4, search=True)
        self.classifier: nn.Module = (
            LooseEndClassifier(c_p, n_blocks, num_classes, dropout_keep)
            if standalone_width
            else Classifier(c_p, num_classes, dropout_keep)
        )

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
        for module in self.modules():
            if isinstance(module, LooseEndCalibrate):  # not the authors': a 1x1 conv's 4-D rule
                for w in module.weights:
                    fan[w] = w.shape[1]
        for cell in self.cells:
            if not cell.standalone_width:
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
        # the loose ends of s0 / s1 where they are a cell's output at the standalone width
        l0: tuple[int, ...] | None = None
        l1: tuple[int, ...] | None = None
        aux = None
        for k, cell in enumerate(self.cells):
            if str(k) in self.pre_reduce:
                pre = self.pre_reduce[str(k)]
                reduced = pre(s1, l1) if isinstance(pre, LooseEndCalibrate) else pre(s1)
                s0, s1, l0, l1 = s1, reduced, l1, None
            cell_arch = arch.reduce if k in self.reductions else arch.normal
            s0, s1 = s1, cell(s0, s1, cell_arch, (l0, l1))
            l0, l1 = l1, cell_arch.loose_ends if self.standalone_width else None
            if k == self.aux_after and self.aux_head is not None and self.training:
                aux = self.aux_head(s1)
        logits = self.classifier(s1, l1) if self.standalone_width else self.classifier(s1)
        return (logits, aux) if aux is not None else logits

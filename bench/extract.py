"""A supernet's child as a plain module: the same computation, only the sampled ops.

Used by ``child_throughput.py`` (the cost of weight sharing is supernet throughput over this
module's) and by ``tests/test_speed_paths.py`` (it must give the supernet's outputs exactly).
The submodules are the supernet's own (not copies): the weights are shared.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from enas_lightning.spaces.macro.arch import STEM, MacroArch
from enas_lightning.spaces.macro.supernet import MacroSupernet, needed_later, source_key
from enas_lightning.spaces.micro.arch import MicroArch, MicroCell
from enas_lightning.spaces.micro.supernet import MicroSupernet, SearchCell


class ChildCell(nn.Module):
    def __init__(self, cell: SearchCell, arch: MicroCell) -> None:
        super().__init__()
        self.calibrate = cell.calibrate
        self.inputs = [node.inputs for node in arch.nodes]
        self.ops = nn.ModuleList(
            nn.ModuleList(
                cell.ops[j][slot][i][cell.op_index[op]]
                for slot, (i, op) in enumerate(zip(node.inputs, node.ops, strict=True))
            )
            for j, node in enumerate(arch.nodes)
        )
        self.loose = list(arch.loose_ends)
        self.channels, self.num_nodes = cell.channels, cell.num_nodes
        self.out_weight = cell.out_weight
        self.out_bn = cell.out_bn

    def forward(self, s0: Tensor, s1: Tensor) -> Tensor:
        nodes = [self.calibrate[0](s0), self.calibrate[1](s1)]
        for inputs, pair in zip(self.inputs, self.ops, strict=True):
            nodes.append(pair[0](nodes[inputs[0]]) + pair[1](nodes[inputs[1]]))
        x = torch.relu(torch.cat([nodes[k] for k in self.loose], dim=1))
        c = self.channels
        w = self.out_weight.view(c, self.num_nodes + 2, c)[:, self.loose].reshape(c, -1, 1, 1)
        return self.out_bn(F.conv2d(x, w))


class MicroChild(nn.Module):
    """``MicroSupernet``'s child ``arch`` with only its ops: same outputs, fewer parameters."""

    def __init__(self, net: MicroSupernet, arch: MicroArch) -> None:
        super().__init__()
        self.stem = net.stem
        self.pre_reduce = net.pre_reduce
        self.cells = nn.ModuleList(
            ChildCell(cell, arch.reduce if k in net.reductions else arch.normal)
            for k, cell in enumerate(net.cells)
        )
        self.aux_after, self.aux_head = net.aux_after, net.aux_head
        self.classifier = net.classifier

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        s0 = s1 = self.stem(x)
        aux = None
        for k, cell in enumerate(self.cells):
            if str(k) in self.pre_reduce:
                s0, s1 = s1, self.pre_reduce[str(k)](s1)
            s0, s1 = s1, cell(s0, s1)
            if k == self.aux_after and self.aux_head is not None and self.training:
                aux = self.aux_head(s1)
        logits = self.classifier(s1)
        return (logits, aux) if aux is not None else logits


class MacroChild(nn.Module):
    """``MacroSupernet``'s child ``arch`` with only its ops and the reductions it needs."""

    def __init__(self, net: MacroSupernet, arch: MacroArch) -> None:
        super().__init__()
        self.stem = net.stem
        self.branches = nn.ModuleList(
            net.branches[i][net.op_index[layer.op]] for i, layer in enumerate(arch.layers)
        )
        self.skips = [tuple(layer.skips) for layer in arch.layers]
        self.merges = net.merges
        self.reductions = net.reductions
        self.need = [sorted(needed_later(arch, after)) for after in net.reductions]
        self.reduce = nn.ModuleList(
            nn.ModuleDict({source_key(j): net.reduce[r][source_key(j)] for j in need})
            for r, need in enumerate(self.need)
        )
        self.classifier = net.classifier

    def forward(self, x: Tensor) -> Tensor:
        prev = self.stem(x)
        outputs: dict[int, Tensor] = {STEM: prev}
        for i, (branch, skips) in enumerate(zip(self.branches, self.skips, strict=True)):
            out = branch(prev)
            if i > 0:
                blocks = [j + 1 for j in skips] + [i]
                out = self.merges[i - 1](out, [outputs[j] for j in skips], blocks)
            prev = outputs[i] = out
            if i in self.reductions:
                r = self.reductions.index(i)
                outputs = {j: self.reduce[r][source_key(j)](outputs[j]) for j in self.need[r]}
                prev = outputs.get(i, prev)
        return self.classifier(prev)


def extract(net: nn.Module, arch: MicroArch | MacroArch) -> nn.Module:
    """The child ``arch`` of ``net`` as a plain module sharing ``net``'s weights."""
    if isinstance(net, MicroSupernet):
        return MicroChild(net, arch)
    if isinstance(net, MacroSupernet):
        return MacroChild(net, arch)
    raise TypeError(f"no child extraction for {type(net).__name__}")

"""The standalone (final-mode) network of the micro space: one architecture, its own weights.

Follows the reference code's final mode (``micro_child.py`` ``_fixed_layer``):

* stem: 3x3 conv to ``3 * channels`` + BN; ``[B, in_channels, H, W] -> [B, 3C, H, W]``;
* ``layers + 2`` cells; cells ``layers // 3`` and ``2 * (layers // 3) + 1`` are reduction cells
  (resolution halves, channels double), the others normal cells;
* each cell takes the outputs of the previous two cells (the stem output twice for the first
  cell) and calibrates them to its channel count: the earlier one by ReLU and factorized
  reduction when its resolution is twice the later one's, else by ReLU-1x1 conv-BN when its
  channels differ; the later one by ReLU-1x1 conv-BN when its channels differ;
* then the later input always passes one more ReLU-1x1 conv-BN (the reference's "layer_base",
  ``layer_base=False`` leaves it out);
* in a reduction cell the ops applied to the two input nodes run at stride 2 (identity at stride
  2 is a factorized reduction, without a ReLU); node = op1 + op2;
* the cell output is the concatenation of its loose ends (unused input nodes of a reduction cell
  are factorized-reduced first, without a ReLU), with no 1x1 conv after it:
  ``len(loose_ends) * C`` channels;
* head: ReLU, global average pool, dropout, linear (:class:`~enas_lightning.spaces.ops.Classifier`).

Differences from the reference, on purpose:

* The aux head's weights are trained (the reference excluded them from the trained variables).
* The classifier's linear layer has a bias (the reference's has none): 10 more parameters.

Only the architecture's ops are built, so every parameter receives a gradient.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from enas_lightning.errors import ConfigError
from enas_lightning.spaces.base import Cost, halved
from enas_lightning.spaces.cost import Tally
from enas_lightning.spaces.micro.arch import MicroArch, MicroCell
from enas_lightning.spaces.micro.ops import MICRO_OPS
from enas_lightning.spaces.ops import (
    AuxHead,
    Classifier,
    FactorizedReduce,
    ReLUConvBN,
    drop_path,
)


def reduction_positions(layers: int) -> tuple[int, int]:
    """Indices (0-based over the ``layers + 2`` cells) of the two reduction cells."""
    return layers // 3, 2 * (layers // 3) + 1


def check_network(arch: MicroArch, layers: int, channels: int, drop_path_keep: float) -> None:
    """One clear :class:`ConfigError` for settings no standalone network can have."""
    arch.validate(MICRO_OPS.names())
    if layers < 1:
        raise ConfigError("model.layers", layers, "at least 1")
    if channels < 2 or channels % 2:
        raise ConfigError("model.channels", channels, "an even number >= 2")
    if not 0.0 < drop_path_keep <= 1.0:
        raise ConfigError("model.drop_path_keep", drop_path_keep, "in (0, 1]")


class FinalCell(nn.Module):
    """One normal or reduction cell of the final network.

    ``forward(s0, s1)``: ``s0`` is ``[B, c_prev_prev, H0, W0]`` (``H0 = 2H`` when
    ``prev_prev_larger``, else ``H``), ``s1`` is ``[B, c_prev, H, W]``; returns
    ``[B, len(loose_ends) * channels, H', W']`` with ``H' = H / 2`` in a reduction cell, else ``H``.
    """

    def __init__(
        self,
        cell: MicroCell,
        c_prev_prev: int,
        c_prev: int,
        channels: int,
        reduction: bool,
        prev_prev_larger: bool,
        layer_base: bool = True,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        self.nodes = [(node.inputs, node.ops) for node in cell.nodes]
        self.loose_ends = cell.loose_ends
        self.out_channels = len(self.loose_ends) * channels
        # calibration of the two inputs to [B, channels, H, W]
        if prev_prev_larger:
            self.pre0: nn.Module = FactorizedReduce(c_prev_prev, channels, relu=True)
        elif c_prev_prev != channels:
            self.pre0 = ReLUConvBN(c_prev_prev, channels, 1)
        else:
            self.pre0 = nn.Identity()
        self.pre1: nn.Module = (
            ReLUConvBN(c_prev, channels, 1) if c_prev != channels else nn.Identity()
        )
        # the reference's "layer_base": one more ReLU-1x1 conv-BN on the calibrated later input
        self.base: nn.Module = ReLUConvBN(channels, channels, 1) if layer_base else nn.Identity()
        # ops[j][slot]: only the ops the architecture uses
        self.ops = nn.ModuleList()
        self.drop = []  # drop_path applies to every op output except identity ops
        for inputs, names in self.nodes:
            pair = nn.ModuleList()
            for i, name in zip(inputs, names, strict=True):
                stride = 2 if reduction and i < 2 else 1
                pair.append(MICRO_OPS.build(name, channels, stride, search=False))
            self.ops.append(pair)
            self.drop.append(tuple(name != "identity" for name in names))
        # unused input nodes of a reduction cell are still at the input resolution
        self.loose_reduce = nn.ModuleDict(
            {
                str(i): FactorizedReduce(channels, channels, relu=False)
                for i in self.loose_ends
                if reduction and i < 2
            }
        )

    def forward(self, s0: Tensor, s1: Tensor, drop_keep: float | Tensor = 1.0) -> Tensor:
        """``drop_keep < 1`` drops paths (per sample) with this keep probability (a 0-dim
        tensor: always applied, see :func:`~enas_lightning.spaces.ops.drop_path`)."""
        apply = isinstance(drop_keep, Tensor) or drop_keep < 1.0
        states = [self.pre0(s0), self.base(self.pre1(s1))]
        for (inputs, _), pair, drops in zip(self.nodes, self.ops, self.drop, strict=True):
            out = 0
            for i, op, drop in zip(inputs, pair, drops, strict=True):
                h = op(states[i])
                if drop and apply:
                    h = drop_path(h, drop_keep)
                out = out + h
            states.append(out)
        outs = [
            self.loose_reduce[str(i)](states[i]) if str(i) in self.loose_reduce else states[i]
            for i in self.loose_ends
        ]
        return torch.cat(outs, dim=1)


class MicroNetwork(nn.Module):
    """Standalone network of a micro architecture (see the module docstring).

    ``forward(x)``: ``[B, in_channels, H, W] -> [B, num_classes]`` logits; in training mode with
    ``aux_head`` it returns ``(logits, aux_logits)``, both ``[B, num_classes]``.

    ``image_size`` (the input's height) only sizes the aux head's 768-channel conv; another size
    still runs.

    ``drop_path_progress`` (float in [0, 1], default 1.0) is the training progress that scales
    drop path; the training loop sets it before every step (``(step + 1) / total steps``, the
    reference's ``_apply_drop_path``). Cell ``l`` keeps a path with
    probability ``1 - (l + 1) / (layers + 2) * (1 - drop_path_keep) * drop_path_progress``.
    The progress is also held as a 0-dim buffer, which a compiled forward reads (one graph for
    the whole run, where a float would be recompiled on); eager reads the float.
    """

    def __init__(
        self,
        arch: MicroArch,
        num_classes: int,
        in_channels: int = 3,
        layers: int = 15,
        channels: int = 36,
        dropout_keep: float = 1.0,
        drop_path_keep: float = 1.0,
        aux_head: bool = False,
        image_size: int = 32,
        layer_base: bool = True,
    ) -> None:
        super().__init__()
        check_network(arch, layers, channels, drop_path_keep)
        self.layers = layers
        self.drop_path_keep = drop_path_keep
        # not in the state dict: a function of the step, set before each one
        self.register_buffer("_progress", torch.ones(()), persistent=False)
        self._progress_value = 1.0
        self.reductions = reduction_positions(layers)
        self.aux_position = self.reductions[-1] + 1  # the reference's aux_head_indices

        c_stem = 3 * channels
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem)
        )
        self.cells = nn.ModuleList()
        self.aux: AuxHead | None = None
        c_pp, c_p, c, size, prev_reduced = c_stem, c_stem, channels, image_size, False
        for index in range(layers + 2):
            reduction = index in self.reductions
            if reduction:
                c *= 2
                size = (size + 1) // 2
            cell = FinalCell(
                arch.reduce if reduction else arch.normal,
                c_pp,
                c_p,
                c,
                reduction,
                prev_reduced,
                layer_base,
            )
            self.cells.append(cell)
            c_pp, c_p, prev_reduced = c_p, cell.out_channels, reduction
            if aux_head and index == self.aux_position:
                self.aux = AuxHead(c_p, num_classes, size)
        self.classifier = Classifier(c_p, num_classes, dropout_keep)

    @property
    def drop_path_progress(self) -> float:
        return self._progress_value

    @drop_path_progress.setter
    def drop_path_progress(self, value: float) -> None:
        self._progress_value = float(value)
        self._progress.fill_(self._progress_value)  # a device fill, no host sync

    def cell_keep(self, index: int) -> float | Tensor:
        """Drop-path keep probability of cell ``index`` at the current progress: a float, or
        under ``torch.compile`` a 0-dim tensor (:func:`~enas_lightning.spaces.ops.drop_path`)."""
        ratio = (index + 1) / (self.layers + 2)
        progress = self._progress if torch.compiler.is_compiling() else self._progress_value
        return 1.0 - ratio * (1.0 - self.drop_path_keep) * progress

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        s0 = s1 = self.stem(x)
        aux_logits = None
        drop = self.training and self.drop_path_keep < 1.0
        for index, cell in enumerate(self.cells):
            keep = self.cell_keep(index) if drop else 1.0
            s0, s1 = s1, cell(s0, s1, keep)
            if self.aux is not None and self.training and index == self.aux_position:
                aux_logits = self.aux(s1)
        logits = self.classifier(s1)
        if aux_logits is not None:
            return logits, aux_logits
        return logits


def network_cost(
    arch: MicroArch,
    num_classes: int,
    in_channels: int,
    image_hw: tuple[int, int],
    layers: int = 15,
    channels: int = 36,
    dropout_keep: float = 1.0,
    drop_path_keep: float = 1.0,
    aux_head: bool = False,
    layer_base: bool = True,
) -> Cost:
    """What ``MicroNetwork(arch, ...)`` with these settings costs (:class:`Cost`: parameters,
    multiply-adds per ``[in_channels, *image_hw]`` image, the aux head's parameters), counted
    without building it (:class:`~enas_lightning.spaces.cost.Tally`).

    It walks the same structure as :class:`MicroNetwork` and :class:`FinalCell` build, module for
    module; tests/test_networks.py checks that the two agree on random architectures and sizes.
    """
    check_network(arch, layers, channels, drop_path_keep)
    t = Tally()
    hw = image_hw
    c_stem = 3 * channels
    t.add(nn.Conv2d, in_channels, c_stem, 3, padding=1, bias=False, input_shape=(in_channels, *hw))
    t.add(nn.BatchNorm2d, c_stem, input_shape=(c_stem, *hw))
    reductions = reduction_positions(layers)
    aux_position = reductions[-1] + 1
    c_pp, c_p, c, prev_reduced, hw_pp = c_stem, c_stem, channels, False, hw
    aux_params = 0
    for index in range(layers + 2):
        reduction = index in reductions
        out_hw = (halved(hw[0]), halved(hw[1])) if reduction else hw
        if reduction:
            c *= 2
        cell = arch.reduce if reduction else arch.normal
        # FinalCell: the inputs' calibration, the reference's layer base, the ops, and a
        # reduction cell's unused inputs reduced
        if prev_reduced:
            t.add(FactorizedReduce, c_pp, c, relu=True, input_shape=(c_pp, *hw_pp))
        elif c_pp != c:
            t.add(ReLUConvBN, c_pp, c, 1, input_shape=(c_pp, *hw_pp))
        if c_p != c:
            t.add(ReLUConvBN, c_p, c, 1, input_shape=(c_p, *hw))
        if layer_base:
            t.add(ReLUConvBN, c, c, 1, input_shape=(c, *hw))
        for node in cell.nodes:
            for i, name in zip(node.inputs, node.ops, strict=True):
                stride = 2 if reduction and i < 2 else 1
                at = hw if i < 2 else out_hw
                t.add(MICRO_OPS.build, name, c, stride, search=False, input_shape=(c, *at))
        for i in cell.loose_ends:
            if reduction and i < 2:
                t.add(FactorizedReduce, c, c, relu=False, input_shape=(c, *hw))
        c_pp, c_p, prev_reduced = c_p, len(cell.loose_ends) * c, reduction
        hw_pp, hw = hw, out_hw
        if aux_head and index == aux_position:
            # MicroNetwork's image_size is the height; the count's forward never runs the head
            aux_params = t.add(AuxHead, c_p, num_classes, hw[0], input_shape=None)
    t.add(Classifier, c_p, num_classes, dropout_keep, input_shape=(c_p, *hw))
    return Cost(t.params, t.madds, aux_params)

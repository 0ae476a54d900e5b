"""The micro space's own settings, added to the config sections by ``search_space=micro``."""

from __future__ import annotations

from dataclasses import dataclass

from enas_lightning.config import ControllerConfig, FinalConfig, SearchSpaceConfig


@dataclass
class MicroSearchSpaceConfig(SearchSpaceConfig):
    """``search_space``: the cells' size and how the supernet shares an op's weights."""

    num_nodes: int = 5  # computed nodes per cell (B)
    # one copy of each op's weights per input index, as the authors' supernet (true), or one per
    # (cell, node, slot, op) shared by every input (false: each copy trains more often; see
    # experiments/RESULTS.md, "Why the shared weights learn slowly")
    weights_per_input: bool = True


@dataclass
class MicroControllerConfig(ControllerConfig):
    """``controller``: the bounds and the start of the op logits."""

    op_tanh_reduce: float = 2.5  # op logits use tanh_constant / op_tanh_reduce
    op_bias: bool = True  # learnable op bias initialised [10, 10, 0, ...]


@dataclass
class MicroFinalConfig(FinalConfig):
    """``final``: the standalone cells."""

    # the authors' "layer_base", one more ReLU-1x1 conv-BN on each cell's later input
    layer_base: bool = True


SETTINGS = {
    "search_space": MicroSearchSpaceConfig,
    "controller": MicroControllerConfig,
    "final": MicroFinalConfig,
}

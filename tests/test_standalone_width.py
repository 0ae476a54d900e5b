"""``search_space.standalone_width`` (issue 20, off by default): the micro supernet passes each
cell's loose ends on at the standalone network's width, and the cells' consumers train only the
weight blocks of the loose ends they read."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from enas_lightning.build import validate
from enas_lightning.errors import ConfigError
from enas_lightning.spaces.micro.arch import MicroArch, MicroCell, MicroNode
from enas_lightning.spaces.micro.ops import AUTHORS_MICRO_OPS
from enas_lightning.spaces.micro.supernet import (
    LooseEndCalibrate,
    LooseEndClassifier,
    MicroSupernet,
    SearchCell,
)

B, C = 3, 4  # nodes per cell, channels of the first cells

# normal cell: a chain (one loose end, node 4); reduction cell: every node reads the inputs
# (three loose ends, nodes 2, 3, 4)
CHAIN = MicroCell(
    (
        MicroNode((0, 1), ("sep_conv_3x3", "identity")),
        MicroNode((2, 2), ("avg_pool_3x3", "sep_conv_5x5")),
        MicroNode((3, 3), ("identity", "max_pool_3x3")),
    )
)
WIDE = MicroCell(tuple(MicroNode((0, 1), ("sep_conv_3x3", "identity")) for _ in range(B)))


def net(standalone_width: bool) -> MicroSupernet:
    torch.manual_seed(0)
    return MicroSupernet(
        10,
        3,
        layers=3,
        channels=C,
        num_nodes=B,
        ops=AUTHORS_MICRO_OPS,
        image_size=8,
        standalone_width=standalone_width,
    )


def cell_widths(supernet: MicroSupernet, arch: MicroArch) -> list[int]:
    widths: list[int] = []
    for cell in supernet.cells:
        cell.register_forward_hook(lambda m, i, out: widths.append(out.shape[1]))
    supernet(torch.randn(2, 3, 8, 8), arch)
    return widths


@pytest.mark.parametrize("normal, reduce", [(CHAIN, WIDE), (WIDE, CHAIN)])
def test_a_cell_passes_its_loose_ends_on_at_the_standalone_width(normal, reduce) -> None:
    arch = MicroArch(normal, reduce)
    # 3 layers: cells 0, 2, 4 normal at C, 2C, 4C channels; 1 and 3 reduction at 2C and 4C
    channels = [C, 2 * C, 2 * C, 4 * C, 4 * C]
    loose = [len((reduce if k in (1, 3) else normal).loose_ends) for k in range(5)]
    assert cell_widths(net(True), arch) == [n * c for n, c in zip(loose, channels, strict=True)]
    # the authors' supernet maps every output back to the cell's channels
    assert cell_widths(net(False), arch) == channels


def test_consumers_train_only_the_blocks_of_the_loose_ends_they_read() -> None:
    supernet = net(True)
    arch = MicroArch(CHAIN, WIDE)
    logits = supernet(torch.randn(2, 3, 8, 8), arch)
    F.cross_entropy(logits, torch.tensor([1, 2])).backward()
    consumers = [m for m in supernet.modules() if isinstance(m, LooseEndCalibrate)]
    # the reductions before cells 1 and 3 and those cells' first inputs read cells 0 and 2;
    # cells 2 and 4 read cells 1 and 3 (their other input is a reduction's plain output)
    assert len(consumers) == 6
    for module in supernet.modules():
        if isinstance(module, LooseEndClassifier):
            weights, n = [module.linear.weight], module.n_blocks
        elif isinstance(module, LooseEndCalibrate):
            weights, n = list(module.weights), module.n_blocks
        else:
            continue
        for w in weights:
            blocks = w.grad.view(w.shape[0], n, -1)
            used = blocks.flatten(2).abs().sum((0, 2)) > 0  # [n]
            # a chain's loose end is node 4 (of 0..4), a wide cell's nodes 2, 3 and 4; which one
            # a consumer reads shows in its used blocks, never an input node
            assert used.tolist() in ([False] * 4 + [True], [False, False, True, True, True])
    # no cell keeps the authors' output projection
    assert not any(hasattr(c, "out_weight") for c in supernet.cells if isinstance(c, SearchCell))


def test_the_default_is_the_authors_projection() -> None:
    supernet = net(False)
    assert all(hasattr(c, "out_weight") for c in supernet.cells)
    assert not any(isinstance(m, LooseEndCalibrate) for m in supernet.modules())


def test_standalone_width_refuses_the_aux_head(make_cfg) -> None:
    cfg = make_cfg(["search_space.standalone_width=true", "search_space.aux_weight=0.4"])
    with pytest.raises(ConfigError, match="search_space.aux_weight=0.4 is not allowed: 0 with"):
        validate(cfg)
    validate(make_cfg(["search_space.standalone_width=true", "search_space.aux_weight=0"]))

"""The parameter-free share of an architecture (identity and pooling among its op choices): the
spaces' declared ops against the op modules' weights, hand-made micro and macro architectures,
and the derivation's report and summary (best_arch.json)."""

from __future__ import annotations

import pytest
from torch import nn

from enas_lightning.spaces import get_space
from enas_lightning.spaces.cost import count_params
from enas_lightning.spaces.macro.arch import MacroArch, MacroLayer
from enas_lightning.spaces.micro.arch import MicroArch, MicroCell, MicroNode

C = 8


def micro_arch(normal: list[tuple[str, str]], reduce: list[tuple[str, str]]) -> MicroArch:
    """Node j reads nodes j and j+1 (0-based, inputs included) with the given ops."""

    def cell(ops: list[tuple[str, str]]) -> MicroCell:
        return MicroCell(tuple(MicroNode((j, j + 1), pair) for j, pair in enumerate(ops)))

    return MicroArch(cell(normal), cell(reduce))


def test_micro_declared_ops_are_those_without_weights() -> None:
    from enas_lightning.spaces.micro.ops import MICRO_OPS

    for name in MICRO_OPS.names():
        weights = count_params(MICRO_OPS.build(name, C, stride=1))
        assert (MICRO_OPS.param_free_share([name]) == 1.0) == (weights == 0), name


def test_macro_declared_ops_have_only_the_input_projection() -> None:
    """Every macro op starts with a 1x1 conv and BN; a pool has nothing else."""
    from enas_lightning.spaces.macro.ops import MACRO_OPS

    projection = count_params(nn.Conv2d(C, C, 1, bias=False)) + 2 * C  # conv + BN affine
    for name in MACRO_OPS.names():
        weights = count_params(MACRO_OPS.build(name, C, stride=1))
        assert (MACRO_OPS.param_free_share([name]) == 1.0) == (weights == projection), name
        assert weights >= projection


def test_micro_share_counts_both_cells() -> None:
    arch = micro_arch(
        normal=[("sep_conv_3x3", "avg_pool_3x3"), ("identity", "sep_conv_5x5")],
        reduce=[("max_pool_3x3", "max_pool_3x3"), ("sep_conv_3x3", "identity")],
    )
    assert get_space("micro").param_free_share(arch) == 5 / 8
    convs = micro_arch([("sep_conv_3x3", "sep_conv_5x5")], [("sep_conv_5x5", "sep_conv_3x3")])
    assert get_space("micro").param_free_share(convs) == 0.0
    pools = micro_arch([("avg_pool_3x3", "avg_pool_3x3")], [("avg_pool_3x3", "identity")])
    assert get_space("micro").param_free_share(pools) == 1.0


def test_macro_share_counts_layers() -> None:
    ops = ["conv_3x3", "avg_pool_3x3", "sep_conv_5x5", "max_pool_3x3", "max_pool_5x5"]
    arch = MacroArch(tuple(MacroLayer(op) for op in ops))
    assert get_space("macro").param_free_share(arch) == 3 / 5


def test_space_without_declared_ops_has_no_share() -> None:
    """A space that does not say which of its ops are parameter-free (the toy chain space)
    reports no share, and the derivation prints no share line."""
    from enas_lightning.search.derivation import Derivation
    from tests.toy_space import CHAIN, ChainArch

    arch = ChainArch(("conv_3x3", "avg_pool_3x3"))
    assert CHAIN.param_free_share(arch) is None
    d = Derivation([arch], [0.5], greedy_index=None)
    assert d.summary()["param_free_share"] is None
    assert not any("parameter-free" in line for line in d.report())


def test_derivation_reports_shares_of_derived_and_greedy() -> None:
    from enas_lightning.search.derivation import Derivation

    greedy = micro_arch([("avg_pool_3x3", "identity")], [("max_pool_3x3", "avg_pool_3x3")])
    best = micro_arch([("sep_conv_3x3", "identity")], [("sep_conv_5x5", "sep_conv_3x3")])
    half = micro_arch([("sep_conv_3x3", "identity")], [("sep_conv_5x5", "max_pool_3x3")])
    d = Derivation([greedy, best, half], [0.5, 0.7, 0.6], greedy_index=0)
    summary = d.summary()
    assert summary["param_free_share"] == 0.25 and summary["greedy_param_free_share"] == 1.0
    # the controller's samples without the greedy architecture: (0.25 + 0.5) / 2
    assert summary["controller_mean_param_free_share"] == 0.375
    assert summary["uniform_mean_param_free_share"] is None  # no uniform samples
    report = "\n".join(d.report())
    assert "parameter-free ops: derived 0.25, greedy 1.00, controller mean 0.38  (" in report
    with_uniform = Derivation(
        [greedy, best],
        [0.5, 0.7],
        greedy_index=0,
        uniform=[greedy, half],
        uniform_accuracies=[0, 0],
    )
    assert with_uniform.summary()["uniform_mean_param_free_share"] == 0.75
    assert "controller mean 0.25, uniform mean 0.75  (" in "\n".join(with_uniform.report())

    no_greedy = Derivation([greedy, best], [0.5, 0.7], greedy_index=None).summary()
    assert no_greedy["greedy_param_free_share"] is None


@pytest.mark.parametrize("space", ["micro", "macro"])
def test_best_arch_json_has_the_shares(space: str, tmp_path) -> None:
    import json

    from enas_lightning.search.derivation import Derivation
    from enas_lightning.tasks.search import write_derivation

    if space == "micro":
        arch = micro_arch([("avg_pool_3x3", "identity")], [("sep_conv_3x3", "max_pool_3x3")])
        ops = ("sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3", "identity")
    else:
        arch = MacroArch(
            (
                MacroLayer("conv_3x3"),
                MacroLayer("max_pool_3x3"),
                MacroLayer("conv_3x3"),
                MacroLayer("avg_pool_3x3"),
            )
        )
        ops = ("conv_3x3", "max_pool_3x3", "avg_pool_3x3")
    write_derivation(Derivation([arch, arch], [0.5, 0.4], greedy_index=0), tmp_path, ops)
    saved = json.loads((tmp_path / "best_arch.json").read_text())
    expected = 0.75 if space == "micro" else 0.5
    assert saved["param_free_share"] == saved["greedy_param_free_share"] == expected

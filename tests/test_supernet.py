"""The supernets: a sampled child runs forward and backward and only its ops get gradients,
weights are shared per decision, and the standalone network of the same arc agrees with it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from enas_lightning.errors import ConfigError
from enas_lightning.spaces.cost import count_params
from enas_lightning.spaces.macro.arch import STEM, MacroArch, MacroLayer
from enas_lightning.spaces.macro.controller import MacroController
from enas_lightning.spaces.macro.network import MacroNetwork
from enas_lightning.spaces.macro.ops import AUTHORS_MACRO_OPS
from enas_lightning.spaces.macro.supernet import MacroSupernet
from enas_lightning.spaces.micro.arch import MicroArch, MicroCell, MicroNode
from enas_lightning.spaces.micro.controller import MicroController
from enas_lightning.spaces.micro.network import MicroNetwork
from enas_lightning.spaces.micro.ops import AUTHORS_MICRO_OPS
from enas_lightning.spaces.micro.supernet import MicroSupernet
from enas_lightning.spaces.ops import FactorizedReduce, SamePool, SepConvUnit

B = 3  # micro nodes per cell
C = 4


def micro_net() -> MicroSupernet:
    torch.manual_seed(0)
    return MicroSupernet(3, 3, layers=3, channels=C, num_nodes=B, ops=AUTHORS_MICRO_OPS)


def macro_net(layers: int = 6) -> MacroSupernet:
    torch.manual_seed(0)
    return MacroSupernet(3, 3, layers=layers, channels=C, ops=AUTHORS_MACRO_OPS)


def micro_archs(n: int, seed: int) -> list[MicroArch]:
    ctrl = MicroController(AUTHORS_MICRO_OPS, num_nodes=B, uniform=True)
    return ctrl.sample_archs(n, torch.Generator().manual_seed(seed))


def macro_archs(n: int, seed: int, layers: int = 6) -> list[MacroArch]:
    ctrl = MacroController(AUTHORS_MACRO_OPS, num_layers=layers, uniform=True)
    return ctrl.sample_archs(n, torch.Generator().manual_seed(seed))


def backward(net: nn.Module, arch) -> None:
    net.zero_grad(set_to_none=True)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    out = net(x, arch)
    assert out.shape == (2, 3) and torch.isfinite(out).all()
    out.square().sum().backward()


def has_grad(m: nn.Module) -> bool:
    grads = [p.grad for p in m.parameters()]
    assert grads, "only parametric modules are checked"
    assert all(g is None for g in grads) or all(g is not None for g in grads)
    return grads[0] is not None


def micro_chosen(net: MicroSupernet, arch: MicroArch) -> set[tuple[int, int, int, int, int]]:
    """(cell, node, slot, input, op index) of every op the child runs."""
    out = set()
    for k in range(len(net.cells)):
        cell = arch.reduce if k in net.reductions else arch.normal
        for j, node in enumerate(cell.nodes):
            for slot, (i, op) in enumerate(zip(node.inputs, node.ops, strict=True)):
                out.add((k, j, slot, i, AUTHORS_MICRO_OPS.index(op)))
    return out


def micro_op_grads(net: MicroSupernet) -> set[tuple[int, int, int, int, int]]:
    """The parametric candidate ops that received gradients."""
    got = set()
    for k, cell in enumerate(net.cells):
        for j, per_slot in enumerate(cell.ops):
            for slot, per_input in enumerate(per_slot):
                for i, per_op in enumerate(per_input):
                    for o, op in enumerate(per_op):
                        if any(True for _ in op.parameters()) and has_grad(op):
                            got.add((k, j, slot, i, o))
    return got


def parametric(net: MicroSupernet, keys) -> set:
    return {
        key
        for key in keys
        if any(True for _ in net.cells[key[0]].ops[key[1]][key[2]][key[3]][key[4]].parameters())
    }


@pytest.mark.parametrize("seed", range(3))
def test_micro_child_gets_gradients_only_on_its_ops(seed: int) -> None:
    net = micro_net()
    for arch in micro_archs(2, seed):
        backward(net, arch)
        assert micro_op_grads(net) == parametric(net, micro_chosen(net, arch))
        for k, cell in enumerate(net.cells):
            spec = arch.reduce if k in net.reductions else arch.normal
            # the 1x1 output conv: one [C, C] block per node, only the loose ends' blocks learn
            c = cell.channels
            g = cell.out_weight.grad.view(c, B + 2, c)
            for node in range(B + 2):
                assert (g[:, node].abs().sum() > 0) == (node in spec.loose_ends), (k, node)
            # both cell inputs are always read (by a node or as a loose end)
            for cal in cell.calibrate:
                if any(True for _ in cal.parameters()):
                    assert has_grad(cal)
        for fr in net.pre_reduce.values():
            assert has_grad(fr)


def test_micro_weights_are_shared_per_decision() -> None:
    net = micro_net()
    a, b = micro_archs(2, 7)
    # b takes a's first normal node, nothing else in common is needed
    node = MicroNode((1, 0), ("sep_conv_3x3", "sep_conv_5x5"))
    a = MicroArch(MicroCell((node, *a.normal.nodes[1:])), a.reduce)
    b = MicroArch(MicroCell((node, *b.normal.nodes[1:])), b.reduce)
    shared = net.cells[0].ops[0][0][1][0]  # cell 0, node 0, slot 0, input 1, sep_conv_3x3
    grads = []
    for arch in (a, b):
        backward(net, arch)
        assert has_grad(shared)
        grads.append({id(p) for p in net.parameters() if p.grad is not None})
    assert {id(p) for p in shared.parameters()} <= grads[0] & grads[1]
    # a different input index or op is a different weight
    assert not has_grad(net.cells[0].ops[0][0][0][0])
    assert not has_grad(net.cells[0].ops[0][0][1][1])


@pytest.mark.parametrize("seed", range(3))
def test_macro_child_gets_gradients_only_on_its_branches(seed: int) -> None:
    layers = 6
    net = macro_net(layers)
    for arch in macro_archs(2, seed, layers):
        backward(net, arch)
        for i, layer in enumerate(arch.layers):
            chosen = AUTHORS_MACRO_OPS.index(layer.op)
            for o, branch in enumerate(net.branches[i]):
                assert has_grad(branch) == (o == chosen), (i, o)
        # reductions after layers 1 and 3: an earlier output (the stem's included) is reduced
        # iff a later layer reads it
        for r, after in enumerate(net.reductions):
            assert list(net.reduce[r]) == ["stem"] + [str(j) for j in range(after + 1)]
            for key, fr in net.reduce[r].items():
                j = STEM if key == "stem" else int(key)
                read = j == after or any(j in later.skips for later in arch.layers[after + 1 :])
                assert has_grad(fr) == read, (after, j)
        assert not any(fr.relu for per in net.reduce for fr in per.values())
        # sum merge: layer i >= 1 has one BN, always used; layer 0 has no merge
        assert len(net.merges) == layers - 1
        assert all(has_grad(m) for m in net.merges)


def test_macro_reductions_of_unread_outputs_get_no_gradient() -> None:
    # layer 4 reads the stem across the first reduction, layer 5 reads layer 1 across both;
    # layer 0 is read by layer 3 (across the first only), layer 2 by nobody but layer 3
    layers = (
        MacroLayer("conv_3x3"),
        MacroLayer("sep_conv_3x3", (STEM,)),
        MacroLayer("conv_5x5"),
        MacroLayer("max_pool_3x3", (0,)),
        MacroLayer("avg_pool_3x3", (STEM,)),
        MacroLayer("sep_conv_5x5", (1,)),
    )
    net = macro_net(6)
    backward(net, MacroArch(layers))
    assert net.reductions == (1, 3)
    # after layer 1: stem, 0, 1 (layer 2's input)
    assert [has_grad(m) for m in net.reduce[0].values()] == [True, True, True]
    # after layer 3: stem (layer 4), 0 no, 1 (layer 5), 2 no, 3 (layer 4's input)
    assert [has_grad(m) for m in net.reduce[1].values()] == [True, False, True, False, True]


def macro_params_by_hand(layers: int, c: int, merge: str, classes: int) -> int:
    """The parameters of a supernet whose only op is conv_3x3, by hand.

    stem 3x3 conv + BN; per layer 1x1 conv-BN-ReLU then 3x3 conv-BN-ReLU; layer ``i >= 1``'s
    merge: BN (sum) or a 1x1 conv from ``(i + 1) c`` channels + BN (concat); per reduction after
    layer ``a``, ``a + 2`` factorized reductions (stem, layers 0..a), each two 1x1 convs to
    ``c / 2`` + BN; linear classifier with bias. BN has a weight and a bias per channel.
    """
    bn = 2 * c
    n = 3 * 9 * c + bn
    n += layers * (c * c + bn + 9 * c * c + bn)
    for i in range(1, layers):
        n += bn + ((i + 1) * c * c if merge == "concat" else 0)
    d = layers // 3
    for after in (d - 1, 2 * d - 1):
        n += (after + 2) * (2 * c * (c // 2) + bn)
    return n + c * classes + classes


@pytest.mark.parametrize("merge", ["sum", "concat"])
def test_macro_supernet_merges_build_and_count(merge: str) -> None:
    torch.manual_seed(0)
    net = MacroSupernet(3, 3, layers=6, channels=C, ops=("conv_3x3",), skip_merge=merge)
    assert count_params(net) == macro_params_by_hand(6, C, merge, 3)
    # C = 4, 6 layers: stem 116, layers 6 x 176, merges 5 x 8, 8 reductions x 24, linear 15;
    # concat adds (2 + 3 + 4 + 5 + 6) x 16 weights
    assert count_params(net) == {"sum": 1419, "concat": 1419 + 320}[merge]
    ops = ("conv_3x3",) * 6
    skips = ((), (STEM,), (), (STEM, 1), (0,), (2, 3))
    arch = MacroArch(tuple(MacroLayer(op, s) for op, s in zip(ops, skips, strict=True)))
    backward(net, arch)
    if merge == "concat":
        # layer i's 1x1 weight: block b = source + 1 of a chosen skip and block i of the op
        for i, layer in enumerate(arch.layers[1:], start=1):
            w = net.merges[i - 1].conv.weight.grad
            used = {j + 1 for j in layer.skips} | {i}
            for b in range(i + 1):
                block = w[:, b * C : (b + 1) * C]
                assert (block.abs().sum() > 0) == (b in used), (i, b)


def test_macro_skip_merge_is_checked() -> None:
    with pytest.raises(ConfigError, match="search_space.skip_merge='mean' is not allowed: one of"):
        MacroSupernet(3, 3, layers=3, channels=C, ops=AUTHORS_MACRO_OPS, skip_merge="mean")
    arch = macro_archs(1, 0, layers=3)[0]
    with pytest.raises(ConfigError, match="final.skip_merge='cat' is not allowed: one of concat"):
        MacroNetwork(arch, 3, 3, channels=C, skip_merge="cat")


# --- supernet vs standalone network --------------------------------------------------------------
def micro_op_name(m: nn.Module) -> str:
    if isinstance(m, nn.Sequential) and isinstance(m[0], SepConvUnit):
        k = m[0][1].kernel_size[0]
        return f"sep_conv_{k}x{k}"
    if isinstance(m, SamePool):
        return f"{m.kind}_pool_{m.kernel}x{m.kernel}"
    if isinstance(m, nn.Identity | FactorizedReduce):
        return "identity"
    raise AssertionError(m)


def macro_op_name(m: nn.Module) -> str:
    second = m[1]
    if isinstance(second, SamePool):
        return f"{second.kind}_pool_{second.kernel}x{second.kernel}"
    # search: conv-BN-ReLU, final: ReLU-conv-BN; separable: depthwise then pointwise
    convs = [c for c in second.modules() if isinstance(c, nn.Conv2d)]
    k = convs[0].kernel_size[0]
    return f"sep_conv_{k}x{k}" if len(convs) == 2 else f"conv_{k}x{k}"


def run_ops(net: nn.Module, modules: dict[nn.Module, str], x: torch.Tensor, *args) -> list[str]:
    """Names of the candidate op modules that ran, in order."""
    ran: list[str] = []
    hooks = [
        m.register_forward_hook(lambda mod, i, o, name=name: ran.append(name))
        for m, name in modules.items()
    ]
    try:
        out = net(x, *args)
    finally:
        for h in hooks:
            h.remove()
    return ran, out


@pytest.mark.parametrize("seed", range(2))
def test_micro_standalone_and_supernet_agree(seed: int) -> None:
    arch = micro_archs(1, seed)[0]
    sup = micro_net().eval()
    net = MicroNetwork(arch, 3, 3, layers=3, channels=C).eval()
    x = torch.randn(2, 3, 8, 8)
    cands = {
        op: AUTHORS_MICRO_OPS[o]
        for cell in sup.cells
        for per_slot in cell.ops
        for per_input in per_slot
        for per_op in per_input
        for o, op in enumerate(per_op)
    }
    ran_sup, out_sup = run_ops(sup, cands, x, arch)
    own = {op: micro_op_name(op) for cell in net.cells for pair in cell.ops for op in pair}
    ran_net, out_net = run_ops(net, own, x)
    assert out_sup.shape == out_net.shape == (2, 3)
    assert ran_sup == ran_net
    # and both run exactly the arch's ops, cell by cell
    per_cell = [
        op
        for k in range(len(sup.cells))
        for node in (arch.reduce if k in sup.reductions else arch.normal).nodes
        for op in node.ops
    ]
    assert ran_sup == per_cell


@pytest.mark.parametrize("seed", range(2))
def test_macro_standalone_and_supernet_agree(seed: int) -> None:
    arch = macro_archs(1, seed)[0]
    sup = macro_net(6).eval()
    net = MacroNetwork(arch, 3, 3, channels=C).eval()
    x = torch.randn(2, 3, 8, 8)
    cands = {b: AUTHORS_MACRO_OPS[o] for per_layer in sup.branches for o, b in enumerate(per_layer)}
    ran_sup, out_sup = run_ops(sup, cands, x, arch)
    ran_net, out_net = run_ops(net, {m: macro_op_name(m) for m in net.ops}, x)
    assert out_sup.shape == out_net.shape == (2, 3)
    assert ran_sup == ran_net == [layer.op for layer in arch.layers]
    # the same reductions are needed: the standalone builds exactly those that get gradients
    backward(sup, arch)
    used = {
        f"{after}_{key}"
        for r, after in enumerate(sup.reductions)
        for key, m in sup.reduce[r].items()
        if has_grad(m)
    }
    assert used == set(net.reduce.keys())


def test_micro_weights_per_input_off_shares_one_copy_across_inputs() -> None:
    """``weights_per_input=False``: node j's op on input 0 and on input 1 is the same tensor."""
    torch.manual_seed(0)
    shared = MicroSupernet(
        3, 3, layers=3, channels=C, num_nodes=B, ops=AUTHORS_MICRO_OPS, weights_per_input=False
    )
    per_input = micro_net()
    # one copy per (cell, node, slot, op) instead of j + 2 of them
    cell_shared, cell_per = shared.cells[0], per_input.cells[0]
    assert [len(slot) for node in cell_shared.ops for slot in node] == [1] * (2 * B)
    assert [len(slot) for node in cell_per.ops for slot in node] == [
        j + 2 for j in range(B) for _ in range(2)
    ]
    assert count_params(shared) < count_params(per_input)

    def arch(first_input: int) -> MicroArch:
        node = MicroNode((first_input, 1), ("sep_conv_3x3", "identity"))
        rest = MicroNode((0, 1), ("identity", "identity"))
        cell = MicroCell((node, *[rest] * (B - 1)))
        return MicroArch(cell, cell)

    sep = cell_shared.ops[0][0][0][AUTHORS_MICRO_OPS.index("sep_conv_3x3")]
    grads = []
    for first in (0, 1):  # the two children read different inputs through the same copy
        shared.zero_grad(set_to_none=True)
        out = shared(torch.randn(4, 3, 8, 8), arch(first))
        (out[0] if isinstance(out, tuple) else out).sum().backward()
        grads.append(sep[0][1].weight.grad)
    assert all(g is not None and g.abs().sum() > 0 for g in grads)

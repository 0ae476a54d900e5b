"""Standalone micro and macro networks: shapes, gradients, drop path, aux head, paper parity."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from torch import nn

from enas_lightning.spaces.cost import count_madds, count_params

# The authors' published cells (melodyguan/enas scripts/cifar10_micro_final.sh and
# scripts/cifar10_macro_final.sh, the `fixed_arc` strings).
from enas_lightning.spaces.macro.arch import AUTHORS_MACRO_FINAL as AUTHORS_MACRO  # noqa: E402
from enas_lightning.spaces.macro.arch import STEM, MacroArch, MacroLayer
from enas_lightning.spaces.macro.network import MacroNetwork, reduction_after
from enas_lightning.spaces.macro.network import network_cost as macro_network_cost
from enas_lightning.spaces.micro.arch import AUTHORS_MICRO_FINAL as AUTHORS_MICRO  # noqa: E402
from enas_lightning.spaces.micro.arch import MicroArch, MicroCell, MicroNode
from enas_lightning.spaces.micro.network import FinalCell, MicroNetwork
from enas_lightning.spaces.micro.network import network_cost as micro_network_cost
from enas_lightning.spaces.ops import FactorizedReduce, SepConvUnit, drop_path

# A DARTS-inspired cell in this space's ops (dil_conv -> sep_conv, skip -> identity, 5th node
# added): normal 2=sep3(0)+sep3(1) 3=sep3(0)+sep3(1) 4=sep3(1)+id(0) 5=id(0)+sep3(2)
# 6=sep3(1)+id(5); reduce: max pools and identities.
DARTS_LIKE = "0 0 1 0 0 0 1 0 1 0 0 4 0 4 2 0 1 0 5 4 0 3 1 3 2 4 1 3 0 3 2 4 2 4 1 3 0 3 5 4"


def ints(text: str) -> list[int]:
    return [int(t) for t in text.split()]


def random_micro(rng: random.Random, nodes: int = 5) -> MicroArch:
    out = []
    for _cell in range(2):
        for j in range(nodes):
            out += [
                rng.randint(0, j + 1),
                rng.randint(0, 4),
                rng.randint(0, j + 1),
                rng.randint(0, 4),
            ]
    return MicroArch.from_ints(out)


def random_macro(rng: random.Random, layers: int = 6, num_ops: int = 6) -> MacroArch:
    out = []
    for i in range(layers):
        out += [rng.randint(0, num_ops - 1)] + [rng.randint(0, 1) for _ in range(i)]
    return MacroArch.from_ints(out)


def assert_all_grads(model: nn.Module) -> None:
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, f"parameters without gradient: {missing}"


# --- micro ------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("shape", [(2, 3, 32, 32), (2, 1, 8, 8)])
def test_micro_forward_backward_all_params_used(seed: int, shape: tuple[int, ...]) -> None:
    torch.manual_seed(seed)
    arch = random_micro(random.Random(seed))
    net = MicroNetwork(
        arch, 7, in_channels=shape[1], layers=6, channels=8, aux_head=True, image_size=shape[2]
    )
    net.train()
    logits, aux = net(torch.randn(shape))
    assert logits.shape == (2, 7) and aux.shape == (2, 7)
    (logits.sum() + aux.sum()).backward()
    assert_all_grads(net)
    net.eval()
    assert net(torch.randn(shape)).shape == (2, 7)


def test_micro_reductions_and_channel_doubling() -> None:
    arch = random_micro(random.Random(0))
    net = MicroNetwork(arch, 10, layers=6, channels=8)
    assert net.reductions == (2, 5)
    assert MicroNetwork(arch, 10, layers=15, channels=8).reductions == (5, 11)
    assert [c.reduction for c in net.cells] == [i in (2, 5) for i in range(8)]
    seen: dict[int, tuple[int, int]] = {}
    x = net.stem(torch.randn(1, 3, 32, 32))
    s0 = s1 = x
    for i, cell in enumerate(net.cells):
        s0, s1 = s1, cell(s0, s1)
        seen[i] = (s1.shape[1] // len(cell.loose_ends), s1.shape[-1])
    assert [seen[i] for i in range(8)] == [(8, 32)] * 2 + [(16, 16)] * 3 + [(32, 8)] * 3


def test_micro_builds_exactly_the_arch_ops() -> None:
    arch = MicroArch.from_ints(ints(AUTHORS_MICRO))
    net = MicroNetwork(arch, 10, layers=6, channels=8)
    for cell_module in net.cells:
        cell: FinalCell = cell_module
        spec = arch.reduce if cell.reduction else arch.normal
        names = [op for node in spec.nodes for op in node.ops]
        inputs = [i for node in spec.nodes for i in node.inputs]
        mods = list(cell.ops.modules())
        assert sum(isinstance(m, SepConvUnit) for m in mods) == 2 * sum("sep" in n for n in names)
        assert sum(isinstance(m, nn.AvgPool2d) for m in mods) == names.count("avg_pool_3x3")
        assert sum(isinstance(m, nn.MaxPool2d) for m in mods) == names.count("max_pool_3x3")
        stride2_identity = sum(
            n == "identity" and cell.reduction and i < 2 for n, i in zip(names, inputs, strict=True)
        )
        assert sum(isinstance(m, FactorizedReduce) for m in mods) == stride2_identity
    # the cell output is the concat of the loose ends, no 1x1 conv after it
    assert net.cells[0].out_channels == len(arch.normal.loose_ends) * 8


# --- drop path --------------------------------------------------------------------------------
def test_drop_path_rate_and_scale() -> None:
    torch.manual_seed(0)
    x = torch.ones(20000, 1, 1, 1)
    y = drop_path(x, 0.7)
    kept = (y != 0).float().mean().item()
    assert abs(kept - 0.7) < 0.02
    assert torch.allclose(y[y != 0], torch.tensor(1 / 0.7))
    assert drop_path(x, 1.0) is x


def test_drop_path_keep_formula() -> None:
    arch = random_micro(random.Random(1))
    net = MicroNetwork(arch, 10, layers=6, channels=8, drop_path_keep=0.6)
    net.drop_path_progress = 0.5
    for index in range(8):
        assert net.cell_keep(index) == pytest.approx(1 - (index + 1) / 8 * 0.4 * 0.5)
    # measured: the fraction of samples the last cell's keep lets through
    torch.manual_seed(0)
    keep = net.cell_keep(7)
    kept = (drop_path(torch.ones(20000, 1, 1, 1), keep) != 0).float().mean().item()
    assert abs(kept - keep) < 0.02


def test_drop_path_stochastic_in_train_deterministic_in_eval() -> None:
    torch.manual_seed(0)
    net = MicroNetwork(random_micro(random.Random(2)), 10, layers=6, channels=8, drop_path_keep=0.5)
    x = torch.randn(4, 3, 16, 16)
    net.train()
    assert not torch.allclose(net(x), net(x))
    net.eval()
    assert torch.equal(net(x), net(x))


def test_identity_ops_are_exempt_from_drop_path() -> None:
    torch.manual_seed(0)
    ident = MicroCell(tuple(MicroNode((0, 1), ("identity", "identity")) for _ in range(5)))
    arch = MicroArch(ident, ident)
    cell = FinalCell(ident, 8, 8, 8, reduction=False, prev_prev_larger=False).train()
    s0, s1 = torch.randn(4, 8, 8, 8), torch.randn(4, 8, 8, 8)
    assert torch.equal(cell(s0, s1, drop_keep=0.1), cell(s0, s1, drop_keep=1.0))
    # a sep conv node is dropped
    sep = MicroCell(tuple(MicroNode((0, 1), ("sep_conv_3x3", "identity")) for _ in range(5)))
    cell = FinalCell(sep, 8, 8, 8, reduction=False, prev_prev_larger=False).train()
    assert not torch.equal(cell(s0, s1, drop_keep=0.1), cell(s0, s1, drop_keep=1.0))
    MicroNetwork(arch, 10, layers=3, channels=8, drop_path_keep=0.5)  # builds


# --- aux head ---------------------------------------------------------------------------------
def test_aux_head_trains() -> None:
    torch.manual_seed(0)
    net = MicroNetwork(random_micro(random.Random(3)), 10, layers=6, channels=8, aux_head=True)
    net.train()
    out = net(torch.randn(2, 3, 32, 32))
    assert isinstance(out, tuple) and len(out) == 2
    loss = nn.functional.cross_entropy(out[1], torch.tensor([1, 2]))
    loss.backward()
    assert net.aux is not None
    for name, p in net.aux.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert isinstance(net.eval()(torch.randn(2, 3, 32, 32)), torch.Tensor)


# --- macro ------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(4))
def test_macro_forward_backward_all_params_used(seed: int) -> None:
    torch.manual_seed(seed)
    net = MacroNetwork(random_macro(random.Random(seed)), 10, channels=8)
    out = net(torch.randn(2, 3, 16, 16))
    assert out.shape == (2, 10)
    out.sum().backward()
    assert_all_grads(net)


def test_macro_channels_double_at_reductions() -> None:
    net = MacroNetwork(random_macro(random.Random(0)), 10, channels=8)
    assert net.reductions == (1, 3)
    assert net.out_channels == 32
    shapes = []
    hooks = [
        op.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:])))
        for op in net.ops
    ]
    net(torch.randn(1, 3, 16, 16))
    for h in hooks:
        h.remove()
    assert shapes == [(8, 16, 16)] * 2 + [(16, 8, 8)] * 2 + [(32, 4, 4)] * 2


def test_macro_pools_pool() -> None:
    torch.manual_seed(0)
    avg = MacroNetwork(MacroArch((MacroLayer("avg_pool_3x3"),)), 10, channels=8)
    mx = MacroNetwork(MacroArch((MacroLayer("max_pool_3x3"),)), 10, channels=8)
    mx.load_state_dict(avg.state_dict())  # same 1x1 conv weights, only the pool differs
    x = avg.stem(torch.randn(1, 3, 8, 8))
    a, m = avg.ops[0](x), mx.ops[0](x)
    assert not torch.allclose(a, m)
    assert (m >= a - 1e-6).all()  # max >= mean of the same window


def macro_final_params_by_hand(arch: MacroArch, c: int, merge: str, classes: int) -> int:
    """MacroNetwork's parameters by hand (BN: a weight and a bias per channel).

    stem 3x3 conv + BN; op at ``c`` channels: ReLU-1x1 conv-BN then ReLU-k x k conv-BN (conv:
    ``k^2 c^2``; separable: depthwise ``k^2 c`` + pointwise ``c^2``); layer ``i >= 1``'s merge:
    BN (sum) or a 1x1 conv from ``(n_skips + 1) c`` channels + BN (concat); at each reduction,
    per output still read, a factorized reduction ``c -> 2c`` (two 1x1 convs to ``c``, BN of
    ``2c``); linear classifier with bias.
    """
    reductions = reduction_after(arch.num_layers)
    n, ch = 27 * c + 2 * c, c
    for i, layer in enumerate(arch.layers):
        k = int(layer.op[-1])
        conv = k * k * ch + ch * ch if layer.op.startswith("sep") else k * k * ch * ch
        n += ch * ch + 2 * ch + conv + 2 * ch
        if i > 0:
            n += 2 * ch + ((len(layer.skips) + 1) * ch * ch if merge == "concat" else 0)
        if i in reductions:
            read = {i} | {j for later in arch.layers[i + 1 :] for j in later.skips if j <= i}
            n += len(read) * (2 * ch * ch + 4 * ch)
            ch *= 2
    return n + ch * classes + classes


# 6 layers, reductions after layers 1 and 3; stem skips across the first reduction (layers 2
# and 4) and across both (layer 4)
MACRO_6 = MacroArch(
    (
        MacroLayer("conv_3x3"),
        MacroLayer("sep_conv_3x3"),
        MacroLayer("conv_5x5", (STEM,)),
        MacroLayer("conv_3x3", (0, 1)),
        MacroLayer("sep_conv_5x5", (STEM, 2)),
        MacroLayer("conv_3x3", (1,)),
    )
)


@pytest.mark.parametrize("merge", ["sum", "concat"])
def test_macro_merges_build_and_count_as_documented(merge: str) -> None:
    torch.manual_seed(0)
    net = MacroNetwork(MACRO_6, 10, channels=4, skip_merge=merge)
    assert count_params(net) == macro_final_params_by_hand(MACRO_6, 4, merge, 10)
    # by hand at C = 4: stem 116; ops 176 + 84 + 1696 + 672 + 976 + 2624 = 6228; merges' BNs
    # 8 + 16 + 16 + 32 + 32 = 104; reductions 3 x 48 (stem, 0, 1) + 4 x 160 (stem, 1, 2, 3);
    # linear 170. concat adds 1x1 weights 1 x 16 + 2 x 64 + 3 x 64 + 3 x 256 + 2 x 256 = 1616
    assert count_params(net) == {"sum": 7402, "concat": 7402 + 1616}[merge]
    assert sorted(net.reduce) == ["1_0", "1_1", "1_stem", "3_1", "3_2", "3_3", "3_stem"]
    out = net(torch.randn(2, 3, 16, 16))
    assert out.shape == (2, 10)
    out.sum().backward()
    assert_all_grads(net)


def test_macro_final_layer_follows_the_authors() -> None:
    """``_fixed_layer``: ops are ReLU-conv-BN; layer 0 is its op alone (no merge, no extra BN);
    concat merges ReLU the concatenation, 1x1 conv, BN; the head pools without a ReLU; and
    ``_factorized_reduction`` has no ReLU of its own."""
    net = MacroNetwork(MACRO_6, 10, channels=4)
    assert net.reduce and not any(fr.relu for fr in net.reduce.values())
    assert net.skip_merge == "concat" and len(net.merges) == 5
    for unit in net.ops[0]:
        assert [type(m) for m in unit] == [nn.ReLU, nn.Conv2d, nn.BatchNorm2d]
    assert net.merges[3].conv.in_channels == 3 * 16  # layer 4: stem, layer 2 and its op
    seen: dict[str, torch.Tensor] = {}

    def keep(name: str, value: torch.Tensor) -> None:  # a hook returning None keeps the output
        seen[name] = value

    net.ops[0].register_forward_hook(lambda m, i, o: keep("layer0", o))
    net.ops[1].register_forward_hook(lambda m, i, o: keep("layer1_in", i[0]))
    net.merges[-1].register_forward_hook(lambda m, i, o: keep("layer5", o))
    logits = net.eval()(torch.randn(2, 3, 8, 8))
    # layer 1's input is layer 0's op output itself
    assert torch.equal(seen["layer1_in"], seen["layer0"])
    # the head pools layer 5's output as it is (it has negative values a ReLU would zero)
    assert (seen["layer5"] < 0).any()
    torch.testing.assert_close(logits, net.classifier.linear(seen["layer5"].mean(dim=(2, 3))))


def authors_macro_final_params(arc: list[int], layers: int, c: int, separable: bool) -> int:
    """The trained parameters of melodyguan/enas ``general_child.py`` with ``fixed_arc`` (and
    ``whole_channels``), an independent count of its ``create_weight`` and ``batch_norm``
    variables: stem 3x3 conv + BN; ``_fixed_layer``: 1x1 conv + BN, k x k conv + BN where ops
    0-3 are all plain convs (``separable=True`` counts ops 1 and 3 as depthwise + pointwise, as
    this project builds them), and for ``layer_id > 0`` the ``skip`` 1x1 conv from
    ``(sum(skip) + 1) * out_filters`` channels + BN; at each pool layer every entry of
    ``layers`` (the stem and every layer so far, read later or not) gets a factorized reduction
    to the doubled ``out_filters``; ``fc`` without bias."""
    pool_layers = (layers // 3 - 1, 2 * (layers // 3) - 1)
    n, pos, entries = 27 * c + 2 * c, 0, 1
    for layer_id in range(layers):
        op, skip = arc[pos], arc[pos + 1 : pos + 1 + layer_id]
        pos += 1 + layer_id
        k = (3, 3, 5, 5)[op]
        n += c * c + 2 * c
        n += (k * k * c + c * c if separable and op in (1, 3) else k * k * c * c) + 2 * c
        if layer_id > 0:
            n += (sum(skip) + 1) * c * c + 2 * c
        entries += 1
        if layer_id in pool_layers:
            n += entries * (2 * c * c + 4 * c)
            c *= 2
    return n + c * 10


def test_published_macro_arc_params_against_the_authors_code() -> None:
    arc = ints(AUTHORS_MACRO)
    arch = MacroArch.from_ints(arc)
    concat = count_params(MacroNetwork(arch, 10, channels=96))
    summed = count_params(MacroNetwork(arch, 10, channels=96, skip_merge="sum"))
    assert concat == macro_final_params_by_hand(arch, 96, "concat", 10) == 30_947_434
    assert summed == macro_final_params_by_hand(arch, 96, "sum", 10) == 19_796_074
    # the authors' code builds 42,559,392 (plain convs for the separable ops). With the ops
    # separable the counts agree up to our classifier's bias: every output the authors reduce
    # is read later in this arc, so reducing only the read ones changes nothing here
    assert authors_macro_final_params(arc, 24, 96, separable=False) == 42_559_392
    assert authors_macro_final_params(arc, 24, 96, separable=True) == concat - 10


# --- cost and parity with the paper -----------------------------------------------------------
def test_cost_counters() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 8 * 8, 5))
    assert count_params(net) == 3 * 4 * 9 + 4 + 256 * 5 + 5
    assert count_madds(net, (3, 8, 8)) == 8 * 8 * 4 * 3 * 9 + 256 * 5


def built_cost(net: nn.Module, shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """(params, madds, aux params) counted on a built network, as ``Space.cost`` first did."""
    aux = getattr(net, "aux", None)
    return count_params(net), count_madds(net, shape), count_params(aux) if aux else 0


@pytest.mark.parametrize("seed", range(6))
def test_micro_cost_counted_without_building_equals_the_built_networks(seed: int) -> None:
    """:func:`micro.network.network_cost` walks the network's structure instead of building it;
    its counts are the built network's, on random cells, depths, widths, odd and non-square
    images, with and without the aux head and the layer base."""
    rng = random.Random(seed)
    for _ in range(4):
        nodes, layers = rng.choice((2, 3, 5)), rng.choice((1, 2, 3, 6))
        channels, aux, base = rng.choice((2, 4, 8)), rng.random() < 0.5, rng.random() < 0.5
        shape = rng.choice(((3, 8, 8), (1, 14, 14), (3, 7, 9), (2, 11, 6)))
        arch = random_micro(rng, nodes)
        kwargs = {"aux_head": aux, "layer_base": base}
        net = MicroNetwork(arch, 7, shape[0], layers, channels, image_size=shape[1], **kwargs)
        cost = micro_network_cost(arch, 7, shape[0], shape[1:], layers, channels, **kwargs)
        assert (cost.params, cost.madds, cost.aux_params) == built_cost(net, shape)


@pytest.mark.parametrize("merge", ["concat", "sum"])
@pytest.mark.parametrize("seed", range(3))
def test_macro_cost_counted_without_building_equals_the_built_networks(
    seed: int, merge: str
) -> None:
    rng = random.Random(seed)
    for _ in range(4):
        layers, channels = rng.choice((1, 2, 3, 6, 8)), rng.choice((2, 4, 8))
        shape = rng.choice(((3, 8, 8), (1, 14, 14), (3, 7, 9)))
        arch = random_macro(rng, layers)
        net = MacroNetwork(arch, 7, shape[0], channels, skip_merge=merge)
        cost = macro_network_cost(arch, 7, shape[0], shape[1:], channels, skip_merge=merge)
        assert (cost.params, cost.madds, cost.aux_params) == built_cost(net, shape)


def test_space_cost_at_paper_size_is_the_built_networks_without_building_one(monkeypatch) -> None:
    """The derivation and ``reward=cost_aware`` count every candidate through ``Space.cost``:
    the micro and macro spaces count the paper's networks exactly, and never build one."""
    from hydra import compose, initialize_config_dir

    from enas_lightning.config import register_configs
    from enas_lightning.spaces import get_space
    from enas_lightning.spaces.macro import network as macro_network
    from enas_lightning.spaces.micro import network as micro_network

    register_configs()
    conf = str(Path(__file__).resolve().parents[1] / "conf")
    archs = {
        "micro": MicroArch.from_ints(ints(AUTHORS_MICRO)),
        "macro": MacroArch.from_ints(ints(AUTHORS_MACRO)),
    }
    want = {}
    for name, arch in archs.items():
        with initialize_config_dir(config_dir=conf, version_base=None):
            f = compose("config", overrides=[f"search_space={name}"]).final
        net = get_space(name).build_network(f, arch, 10, (3, 32, 32))
        want[name] = (f, built_cost(net, (3, 32, 32)))

    def no_build(*args: object, **kwargs: object) -> None:
        raise AssertionError("Space.cost built the network")

    monkeypatch.setattr(micro_network.MicroNetwork, "__init__", no_build)
    monkeypatch.setattr(macro_network.MacroNetwork, "__init__", no_build)
    for name, arch in archs.items():
        f, built = want[name]
        cost = get_space(name).cost(f, arch, 10, (3, 32, 32))
        assert (cost.params, cost.madds, cost.aux_params) == built
    assert want["micro"][1][2] > 0  # the paper's micro network has its aux head


def test_parity_with_paper(capsys: pytest.CaptureFixture[str]) -> None:
    counts = {}
    cells = {
        "authors": MicroArch.from_ints(ints(AUTHORS_MICRO)),
        "darts_like": MicroArch.from_ints(ints(DARTS_LIKE)),
        "random": random_micro(random.Random(0)),
    }
    for name, arch in cells.items():
        with_aux = MicroNetwork(arch, 10, layers=15, channels=36, aux_head=True)
        counts[f"micro {name} (aux)"] = count_params(with_aux)
        counts[f"micro {name} (no aux)"] = count_params(
            MicroNetwork(arch, 10, layers=15, channels=36)
        )
        counts[f"micro {name} madds"] = count_madds(with_aux, (3, 32, 32))
    macro = MacroNetwork(MacroArch.from_ints(ints(AUTHORS_MACRO)), 10, channels=96)
    assert macro.arch.num_layers == 24
    counts["macro authors"] = count_params(macro)
    counts["macro authors madds"] = count_madds(macro, (3, 32, 32))
    with capsys.disabled():
        print()
        for k, v in counts.items():
            print(f"  {k:<28s} {v / 1e6:8.3f}M")
    # paper: 4.6M for the published micro cell (aux head included here)
    assert abs(counts["micro authors (aux)"] - 4.6e6) / 4.6e6 < 0.10


def authors_micro_final_params(arc: list[int], layers: int, channels: int) -> dict[str, int]:
    """The trained parameter count of the authors' fixed-architecture micro network.

    An independent count that walks ``micro_child.py`` (melodyguan/enas) with ``fixed_arc`` set
    and adds up the shapes of its ``create_weight`` calls and its ``batch_norm`` variables:
    ``_model`` (stem, ``layers + 2`` calls of ``_fixed_layer``, ``fc``), ``_maybe_calibrate_size``
    (``pool_x``: ``_factorized_reduction`` when the resolutions differ, else a 1x1 conv when the
    channels differ; ``pool_y``: a 1x1 conv when the channels differ), ``layer_base`` (a 1x1
    conv, always), ``_fixed_conv`` (two depthwise + pointwise units), the pools' and the
    identity's 1x1 conv when the channels differ (never, after calibration), the stride-2
    identity's ``_factorized_reduction`` and ``_fixed_combine``'s reduction of loose ends of a
    larger resolution. BatchNorm counts ``offset`` and ``scale`` (the moving statistics are not
    trainable); convolutions and ``fc`` have no bias. ``"model"`` is what their
    ``_build_train`` prints as "Model has ... params": it excludes the aux head
    (``"aux_head" not in var.name``), which is counted on its own under ``"aux_head"``.
    """
    n = {"model": 0, "aux_head": 0}

    def add(k: int, c_in: int, c_out: int) -> None:
        n["model"] += k * k * c_in * c_out

    def bn(c: int) -> None:
        n["model"] += 2 * c  # offset, scale

    def factorized_reduction(c_in: int, c_out: int) -> None:
        add(1, c_in, c_out // 2)  # path1_conv
        add(1, c_in, c_out // 2)  # path2_conv
        bn(c_out)

    normal, reduce = arc[:20], arc[20:]
    add(3, 3, 3 * channels)  # stem_conv
    bn(3 * channels)
    prev = [(3 * channels, 32), (3 * channels, 32)]  # (channels, resolution) of the two inputs
    pool_layers = (layers // 3, 2 * (layers // 3) + 1)
    out_filters = channels
    for layer_id in range(layers + 2):
        stride = 1
        cell = normal
        if layer_id in pool_layers:
            out_filters, stride, cell = 2 * out_filters, 2, reduce
        (c0, hw0), (c1, hw1) = prev
        if hw0 != hw1:  # calibrate/pool_x
            factorized_reduction(c0, out_filters)
        elif c0 != out_filters:
            add(1, c0, out_filters)
            bn(out_filters)
        if c1 != out_filters:  # calibrate/pool_y
            add(1, c1, out_filters)
            bn(out_filters)
        add(1, out_filters, out_filters)  # layer_base
        bn(out_filters)
        nodes = [(out_filters, hw1), (out_filters, hw1)]
        used = [0] * 7
        for node in range(5):
            hw_out = 0
            for slot in range(2):
                x_id, x_op = cell[4 * node + 2 * slot], cell[4 * node + 2 * slot + 1]
                used[x_id] += 1
                c, hw = nodes[x_id]
                s = stride if x_id in (0, 1) else 1
                if x_op in (0, 1):  # _fixed_conv: sep_conv_0 (strided), sep_conv_1
                    k = (3, 5)[x_op]
                    add(k, c, 1)
                    add(1, c, out_filters)
                    bn(out_filters)
                    add(k, out_filters, 1)
                    add(1, out_filters, out_filters)
                    bn(out_filters)
                elif x_op == 4 and s > 1:
                    factorized_reduction(c, out_filters)
                if x_op in (2, 3, 4) and c != out_filters:
                    add(1, c, out_filters)
                    bn(out_filters)
                hw_out = hw // s
            nodes.append((out_filters, hw_out))
        loose = [i for i in range(7) if used[i] == 0]
        out_hw = min(nodes[i][1] for i in loose)
        for i in loose:  # _fixed_combine
            if nodes[i][1] > out_hw:
                factorized_reduction(nodes[i][0], out_filters)
        prev = [prev[1], (len(loose) * out_filters, out_hw)]
        if layer_id == pool_layers[-1] + 1:  # aux_head: proj 1x1 -> 128, hw x hw -> 768, fc
            c, hw = prev[1]
            pooled = (hw - 5) // 3 + 1
            n["aux_head"] = c * 128 + 2 * 128 + pooled * pooled * 128 * 768 + 2 * 768 + 768 * 10
    n["model"] += prev[1][0] * 10  # fc
    return n


def test_published_micro_cell_matches_the_authors_code_count() -> None:
    arc = ints(AUTHORS_MICRO)
    authors = authors_micro_final_params(arc, layers=15, channels=36)
    net = MicroNetwork(MicroArch.from_ints(arc), 10, layers=15, channels=36, aux_head=True)
    assert net.aux is not None
    # the one documented difference: our classifiers' linear layers have a bias (10 each)
    bias = net.classifier.linear.bias.numel()
    assert count_params(net) - count_params(net.aux) - bias == authors["model"]
    assert count_params(net.aux) - net.aux.linear.bias.numel() == authors["aux_head"]
    # without the authors' layer_base the network is smaller by one 1x1 conv + BN per cell
    lean = MicroNetwork(MicroArch.from_ints(arc), 10, layers=15, channels=36, layer_base=False)
    widths = [36] * 5 + [72] * 6 + [144] * 6  # each cell's C: 5 + 1 + 5 + 1 + 5 cells
    assert count_params(net) - count_params(net.aux) - count_params(lean) == sum(
        c * c + 2 * c for c in widths
    )

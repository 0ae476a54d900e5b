"""The levers against the collapse to parameter-free cells (issue 20), each off by default:
``search.param_free_dropout``, ``search.bn_affine``, ``search.init`` and
``search.optim.dense_weight_decay``. Each changes what it claims and nothing else."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from enas_lightning.build import build_controller, build_supernet, validate
from enas_lightning.checkpointing import check_fingerprint, space_fingerprint
from enas_lightning.config import SearchOptimConfig
from enas_lightning.data.datasets import load_splits
from enas_lightning.data.device import DeviceSplits
from enas_lightning.errors import CheckpointError, ConfigError
from enas_lightning.optim import fill_missing_gradients_, sgd_with_sgdr
from enas_lightning.search.module import SearchModule
from enas_lightning.spaces import get_space
from enas_lightning.spaces.cost import count_params
from enas_lightning.spaces.init import TRUNCATED_STD
from enas_lightning.spaces.macro.arch import MacroArch, MacroLayer
from enas_lightning.spaces.macro.ops import AUTHORS_MACRO_OPS
from enas_lightning.spaces.macro.supernet import MacroSupernet
from enas_lightning.spaces.micro.arch import MicroArch, MicroCell, MicroNode
from enas_lightning.spaces.micro.ops import AUTHORS_MICRO_OPS, MICRO_OPS
from enas_lightning.spaces.micro.supernet import MicroSupernet
from enas_lightning.spaces.ops import ParamFreeDropout, SepConvUnit, parameter_free
from tests.test_search import fit

B = 3  # micro nodes per cell


def micro_net(channels: int = 4, p: float = 0.0) -> MicroSupernet:
    torch.manual_seed(0)
    net = MicroSupernet(3, 3, layers=3, channels=channels, num_nodes=B, ops=AUTHORS_MICRO_OPS)
    net.set_param_free_dropout(p)
    return net


def macro_net(p: float = 0.0) -> MacroSupernet:
    torch.manual_seed(0)
    net = MacroSupernet(3, 3, layers=6, channels=4, ops=AUTHORS_MACRO_OPS)
    net.set_param_free_dropout(p)
    return net


def micro_arch(first: str, second: str) -> MicroArch:
    """Every node of both cells reads inputs 0 and 1 through ``first`` and ``second``."""
    cell = MicroCell(tuple(MicroNode((0, 1), (first, second)) for _ in range(B)))
    return MicroArch(cell, cell)


def macro_arch(op: str) -> MacroArch:
    return MacroArch(tuple(MacroLayer(op, (i - 2,) if i >= 2 else ()) for i in range(6)))


def run(net: nn.Module, arch, seed: int = 1) -> torch.Tensor:
    """The supernet's logits for a fixed input, torch's generator (dropout) seeded first."""
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(seed)
    return net(x, arch)


# --- search.param_free_dropout -------------------------------------------------------------------
def test_the_parameter_free_ops_are_the_weightless_ones() -> None:
    index = AUTHORS_MICRO_OPS.index
    assert micro_net().cells[0].param_free_ops == {
        index("avg_pool_3x3"),
        index("max_pool_3x3"),
        index("identity"),
    }
    # a stride-2 identity is a factorized reduction, with weights (the search builds none)
    assert not parameter_free(MICRO_OPS.build("identity", 4, 2, search=True))
    # macro: each branch's own op after its 1x1 conv-BN-ReLU; only the pools have no weights
    index = AUTHORS_MACRO_OPS.index
    assert macro_net().param_free_ops == {index("avg_pool_3x3"), index("max_pool_3x3")}


@pytest.mark.parametrize(
    "make,weighted,weightless",
    [
        (micro_net, micro_arch("sep_conv_3x3", "sep_conv_5x5"), micro_arch("identity", "sep_conv_3x3")),
        (micro_net, micro_arch("sep_conv_3x3", "sep_conv_5x5"), micro_arch("avg_pool_3x3", "max_pool_3x3")),
        (macro_net, macro_arch("sep_conv_3x3"), macro_arch("max_pool_3x3")),
    ],
)  # fmt: skip
def test_param_free_dropout_never_touches_a_weighted_op(make, weighted, weightless) -> None:
    """Under the same seed a child of weighted ops gives exactly the output it gives without the
    dropout (no op is dropped, no random number drawn: the classifier's dropout draws the same
    mask); a child with parameter-free ops does not, in training only."""
    off, on = make().train(), make(p=0.5).train()
    assert torch.equal(run(off, weighted), run(on, weighted))
    assert not torch.equal(run(off, weightless), run(on, weightless))
    off.eval(), on.eval()
    assert torch.equal(run(off, weightless), run(on, weightless))


Call = tuple[bool, bool, torch.Tensor, torch.Tensor]  # grad enabled, training, input, output


def record_param_free_dropout(net: nn.Module) -> list[Call]:
    """Every ParamFreeDropout call of ``net`` from now on."""
    calls: list[Call] = []
    for m in net.modules():
        if isinstance(m, ParamFreeDropout):
            m.register_forward_hook(
                lambda mod, args, out: calls.append(
                    (torch.is_grad_enabled(), mod.training, args[0].detach(), out.detach())
                )
            )
    return calls


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_param_free_dropout_drops_at_its_rate_in_training_only(p: float) -> None:
    net = micro_net(channels=16, p=p)
    calls = record_param_free_dropout(net)
    arch = micro_arch("identity", "avg_pool_3x3")
    run(net.train(), arch)
    # 5 cells x 3 nodes x 2 parameter-free ops
    assert len(calls) == 30 and all(training for _, training, _, _ in calls)
    x = torch.cat([c[2].flatten() for c in calls])
    y = torch.cat([c[3].flatten() for c in calls])
    live = x != 0
    dropped = (y[live] == 0).float().mean()
    assert live.sum() > 40_000  # the rate's sampling error is about 0.002 at this size
    assert abs(float(dropped) - p) < 0.01, float(dropped)
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] / (1 - p))  # inverted scaling
    calls.clear()
    run(net.eval(), arch)
    assert len(calls) == 30 and all(torch.equal(x, y) for _, _, x, y in calls)


def test_param_free_dropout_only_in_child_steps(make_cfg, tmp_path) -> None:
    """In a search the dropout is on in every child step and off while rewards are scored
    (``search.reward_dropout`` switches the classifier's nn.Dropout on there) and in the
    derivation."""
    cfg = make_cfg(
        ["search.param_free_dropout=0.5", "search.child_batches=3", "search.derive_samples=2"]
    )
    assert cfg.search.reward_dropout
    splits = load_splits(cfg.dataset, holdout=True)
    data = DeviceSplits(splits, pad=cfg.dataset.pad, flip=cfg.dataset.flip)
    module = SearchModule(build_supernet(cfg, splits), build_controller(cfg), data, cfg)
    calls = record_param_free_dropout(module.supernet)
    fit(module, cfg, tmp_path)
    child = [c for c in calls if c[0]]
    scored = [c for c in calls if not c[0]]  # rewards (no_grad)
    assert child and scored
    assert all(training for _, training, _, _ in child)
    assert any(bool(((x != 0) & (y == 0)).any()) for _, _, x, y in child)
    assert not any(training for _, training, _, _ in scored)
    assert all(torch.equal(x, y) for _, _, x, y in scored)
    calls.clear()
    module.derive()
    assert calls and all(not training and torch.equal(x, y) for _, training, x, y in calls)


def test_param_free_dropout_is_checked(make_cfg) -> None:
    for rate in (1.0, -0.1):
        with pytest.raises(ConfigError, match=f"search.param_free_dropout={rate}"):
            validate(make_cfg([f"search.param_free_dropout={rate}"]))


def test_a_space_without_the_dropout_refuses_it(make_cfg) -> None:
    from tests.toy_space import CHAIN  # noqa: F401 (registers the chain space)

    cfg = make_cfg(["search_space=chain", "search.param_free_dropout=0.1"])
    splits = load_splits(cfg.dataset, holdout=True)
    with pytest.raises(ConfigError, match="search.param_free_dropout=0.1 is not allowed: 0 for"):
        build_supernet(cfg, splits)


# --- search.bn_affine ----------------------------------------------------------------------------
def batch_norms(net: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]


@pytest.mark.parametrize("space", ["micro", "macro"])
def test_bn_affine_false_leaves_no_batch_norm_parameter(space, make_cfg) -> None:
    sizes = [f"search_space={space}", "search_space.layers=3", "final.layers=3", "final.channels=4"]
    on, off = make_cfg(sizes), make_cfg([*sizes, "search.bn_affine=false"])
    splits = load_splits(on.dataset, holdout=True)
    torch.manual_seed(0)
    with_affine = build_supernet(on, splits)
    torch.manual_seed(0)
    without = build_supernet(off, splits)
    bns = batch_norms(without)
    assert bns and all(not bn.affine and bn.weight is None and bn.bias is None for bn in bns)
    channels = sum(bn.num_features for bn in bns)
    assert count_params(with_affine) - count_params(without) == 2 * channels
    # every other weight is the one the same seed gives with affine BatchNorm
    kept, full = without.state_dict(), with_affine.state_dict()
    assert kept and all(torch.equal(v, full[k]) for k, v in kept.items())
    arch = get_space(space).build_controller(off.search_space, off.controller).sample_archs(1)[0]
    out = run(without.train(), arch)
    (out[0] if isinstance(out, tuple) else out).sum().backward()  # (logits, aux logits)
    # the final network keeps its BatchNorm parameters
    from enas_lightning.final.train import build_final_network

    final_on, final_off = (build_final_network(c, arch, splits) for c in (on, off))
    assert count_params(final_on) == count_params(final_off)
    assert all(bn.affine and bn.weight is not None for bn in batch_norms(final_off))


# --- search.init ---------------------------------------------------------------------------------
def he_std(fan_in: int) -> float:
    """The sample std of the authors' he_normal (TF 1.x: a normal truncated at 2 sigma)."""
    return TRUNCATED_STD * math.sqrt(2.0 / fan_in)


def assert_he(weights: list[torch.Tensor], fan_in: int, what: str) -> None:
    w = torch.cat([t.detach().flatten() for t in weights])
    assert w.numel() >= 1000, what  # the sample std within ~2.5% (one sd) at this size
    sigma = math.sqrt(2.0 / fan_in)
    assert float(w.std()) == pytest.approx(he_std(fan_in), rel=0.06), what
    assert float(w.abs().max()) <= 2 * sigma + 1e-6, what  # truncated
    assert abs(float(w.mean())) < 0.1 * sigma, what


def built(make_cfg, overrides: list[str]) -> tuple[nn.Module, nn.Module]:
    """(supernet, controller) built in the search task's order from seed 0."""
    cfg = make_cfg(overrides)
    splits = load_splits(cfg.dataset, holdout=True)
    torch.manual_seed(0)
    return build_supernet(cfg, splits), build_controller(cfg)


def test_authors_init_micro_has_their_fan_in(make_cfg) -> None:
    sizes = ["search_space.channels=16", "search_space.aux_weight=0.4"]
    net, _ = built(make_cfg, [*sizes, "search.init=authors"])
    torch_net, _ = built(make_cfg, sizes)
    for j in range(B):
        # node j's separable convs: depthwise [j+2, k*k*C] and pointwise [j+2, C*C], fan-in j+2
        depthwise, pointwise = [], []
        for cell in net.cells:
            for unit in cell.ops[j].modules():
                if isinstance(unit, SepConvUnit):
                    depthwise.append(unit[1].weight)
                    pointwise.append(unit[2].weight)
        assert_he(depthwise, j + 2, f"depthwise, node {j}")
        assert_he(pointwise, j + 2, f"pointwise, node {j}")
    assert_he([c.out_weight for c in net.cells], B + 2, "cell output conv")
    assert_he([net.stem[0].weight], 3 * 3 * 3, "stem")
    assert_he([net.aux_head.conv.weight], net.aux_head.kernel**2 * 128, "aux head conv")
    assert_he([net.aux_head.linear.weight], 768, "aux head linear")
    assert net.classifier.linear.bias.abs().sum() == 0
    # several times torch's defaults where the authors' weight is 2-D
    pw = net.cells[-1].ops[0][0][0][0][0][2].weight
    torch_pw = torch_net.cells[-1].ops[0][0][0][0][0][2].weight
    assert float(pw.std()) > 5 * float(torch_pw.std())


def test_authors_init_macro_has_their_fan_in(make_cfg) -> None:
    net, _ = built(
        make_cfg,
        [
            "search_space=macro",
            "search_space.layers=12",
            "search_space.channels=16",
            "search.init=authors",
        ],
    )
    c = 16
    sep3 = AUTHORS_MACRO_OPS.index("sep_conv_3x3")
    depthwise = [layer[sep3][1][0][0].weight for layer in net.branches]
    assert depthwise[0].shape == (c, 1, 3, 3)
    # TF's depthwise filter [k, k, C, 1]: fan-in k * k * C (torch would count k * k)
    assert_he(depthwise, 3 * 3 * c, "depthwise 3x3")
    conv5 = AUTHORS_MACRO_OPS.index("conv_5x5")
    assert_he([layer[conv5][1][0].weight for layer in net.branches], 5 * 5 * c, "conv 5x5")
    assert_he([layer[conv5][0][0].weight for layer in net.branches], c, "1x1 conv")


def test_init_default_is_torch_and_authors_leaves_the_controller(make_cfg) -> None:
    default, ctrl = built(make_cfg, [])
    cfg = make_cfg([])
    assert cfg.search.init == "torch"
    splits = load_splits(cfg.dataset, holdout=True)
    torch.manual_seed(0)
    plain = get_space("micro").build_supernet(
        cfg.search_space, splits.num_classes, splits.image_shape
    )
    for (k, v), w in zip(default.state_dict().items(), plain.state_dict().values(), strict=True):
        assert torch.equal(v, w), k
    authors, authors_ctrl = built(make_cfg, ["search.init=authors"])
    again, _ = built(make_cfg, ["search.init=authors"])
    assert not torch.equal(authors.stem[0].weight, default.stem[0].weight)
    same = again.state_dict()
    for k, v in authors.state_dict().items():
        assert torch.equal(v, same[k]), k  # seeded
    same = ctrl.state_dict()
    for k, v in authors_ctrl.state_dict().items():
        assert torch.equal(v, same[k]), k  # its own generator
    with pytest.raises(ConfigError, match="search.init='xavier' is not allowed: one of torch"):
        validate(make_cfg(["search.init=xavier"]))


# --- search.optim.dense_weight_decay -------------------------------------------------------------
@pytest.mark.parametrize("dense", [False, True])
def test_dense_weight_decay_decays_an_unsampled_op(dense: bool) -> None:
    net = micro_net()
    o = SearchOptimConfig(lr_max=0.1, l2_reg=0.01)
    sgd, _ = sgd_with_sgdr(net.parameters(), o)
    arch = micro_arch("sep_conv_3x3", "sep_conv_3x3")
    unsampled = net.cells[0].ops[0][0][0][1][1][2].weight  # sep_conv_5x5's pointwise conv
    sampled = net.cells[0].ops[0][0][0][0][1][2].weight  # sep_conv_3x3's, input 0
    before = unsampled.detach().clone()
    sgd.zero_grad(set_to_none=True)
    run(net.train(), arch).square().sum().backward()
    assert unsampled.grad is None and sampled.grad is not None
    if dense:
        fill_missing_gradients_(sgd)
    sgd.step()
    if dense:
        # buf = 2 * l2_reg * w; Nesterov applies g + momentum * buf with g = buf
        expected = before * (1 - o.lr_max * 2 * o.l2_reg * (1 + o.momentum))
        torch.testing.assert_close(unsampled.detach(), expected)
        assert torch.equal(unsampled.grad, torch.zeros_like(unsampled))
    else:
        assert torch.equal(unsampled, before)


@pytest.mark.parametrize("dense", [False, True])
def test_dense_weight_decay_in_the_search(dense: bool, make_cfg, tmp_path) -> None:
    """Through the child step: every non-zero supernet weight moves with it, some stay without."""
    cfg = make_cfg(
        [
            "controller=random",
            "search.child_batches=2",
            f"search.optim.dense_weight_decay={str(dense).lower()}",
        ]
    )
    splits = load_splits(cfg.dataset, holdout=True)
    data = DeviceSplits(splits, pad=cfg.dataset.pad, flip=cfg.dataset.flip)
    module = SearchModule(build_supernet(cfg, splits), build_controller(cfg), data, cfg)
    before = [p.detach().clone() for p in module.supernet.parameters()]
    fit(module, cfg, tmp_path)
    params = list(module.supernet.parameters())
    moved = [not torch.equal(p, b) for p, b in zip(params, before, strict=True)]
    nonzero = [bool(b.any()) for b in before]  # a zero BatchNorm bias stays zero under decay
    if dense:
        assert all(m for m, nz in zip(moved, nonzero, strict=True) if nz)
    else:
        assert any(nz and not m for m, nz in zip(moved, nonzero, strict=True))


def test_dense_weight_decay_is_only_a_search_setting(make_cfg) -> None:
    with pytest.raises(Exception, match="dense_weight_decay"):
        make_cfg(["final.optim.dense_weight_decay=true"])


# --- the search fingerprint ----------------------------------------------------------------------
LEVERS = [
    "search.param_free_dropout=0.2",
    "search.bn_affine=false",
    "search.init=authors",
    "search.optim.dense_weight_decay=true",
    "search.derive_finetune_steps=10",
    "search.derive_finetune_lr=0.05",
    "search.derive_uniform_steps=100",
    "search.derive_uniform_lr=0.05",
    "search.derive_prune_keep=10",
    "search.derive_prune_steps=50",
    "search.derive_prune_lr=0.05",
    "search.uniform_children=true",
    "search.param_free_adjust=true",
]


@pytest.mark.parametrize("lever", LEVERS)
def test_a_changed_lever_refuses_the_checkpoint(lever: str, make_cfg) -> None:
    on, off = make_cfg([lever]), make_cfg([])
    checkpoint = {"enas": {"fingerprint": space_fingerprint(on)}}
    check_fingerprint(checkpoint, on)
    key = lever.split("=")[0]
    with pytest.raises(CheckpointError, match=f"made with {key}=.* but this run has {key}="):
        check_fingerprint(checkpoint, off)
    # a checkpoint from before the levers does not record them and still loads
    old = {"enas": {"fingerprint": space_fingerprint(off)}}
    del old["enas"]["fingerprint"][key]
    check_fingerprint(old, on)

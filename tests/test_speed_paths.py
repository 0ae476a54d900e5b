"""The optimised paths compute what the plain ones do: bf16-mixed search and final training on
the CPU, a compiled final training step, channels_last, and the supernet's child extracted as a
plain module (``bench/extract.py``, the reference of the weight-sharing benchmark).

Augmentation statistics of the on-device data path are in ``tests/test_data.py``.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from enas_lightning.build import build_trainer
from enas_lightning.final import train_final
from enas_lightning.optim import step_kwargs
from enas_lightning.spaces.macro.arch import AUTHORS_MACRO_OPS
from enas_lightning.spaces.macro.controller import MacroController
from enas_lightning.spaces.macro.supernet import MacroSupernet
from enas_lightning.spaces.micro.arch import AUTHORS_MICRO_OPS
from enas_lightning.spaces.micro.controller import MicroController
from enas_lightning.spaces.micro.network import MicroNetwork
from enas_lightning.spaces.micro.supernet import MicroSupernet
from enas_lightning.tasks.search import run_search

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from extract import extract  # noqa: E402

from tests.test_final import AUTHORS_MICRO, QUIET  # noqa: E402
from tests.test_final import make_cfg as final_cfg  # noqa: E402

# one intra-op thread, restored after each test (conftest.py)
pytestmark = pytest.mark.usefixtures("one_thread")

BF16_CPU = torch.cpu._is_avx512_bf16_supported() or torch.backends.mkldnn.is_available()


def supernet_and_archs(space: str, n: int = 3):
    torch.manual_seed(0)
    if space == "micro":
        ops = tuple(AUTHORS_MICRO_OPS)
        net = MicroSupernet(10, 3, 3, 4, 3, ops, dropout_keep=0.7, aux_head=True, image_size=16)
        ctrl = MicroController(ops, num_nodes=3)
    else:
        ops = tuple(AUTHORS_MACRO_OPS)
        net = MacroSupernet(10, 3, 6, 4, ops, dropout_keep=0.7)
        ctrl = MacroController(ops, num_layers=6)
    return net, ctrl.sample_archs(n, torch.Generator().manual_seed(1))


@pytest.mark.parametrize("space", ["micro", "macro"])
def test_extracted_child_is_the_supernets_child(space: str) -> None:
    net, archs = supernet_and_archs(space)
    x = torch.rand(6, 3, 16, 16)
    for arch in archs:
        child = extract(net, arch)
        for train in (True, False):
            net.train(train)
            child.train(train)
            torch.manual_seed(5)  # same dropout mask
            a = net(x, arch)
            torch.manual_seed(5)
            b = child(x)
            for u, v in zip(
                a if isinstance(a, tuple) else (a,),
                b if isinstance(b, tuple) else (b,),
                strict=True,
            ):
                torch.testing.assert_close(u, v, atol=0, rtol=0)
        # the child's parameters are exactly the ones the supernet's child uses
        net.zero_grad(set_to_none=True)
        net.train()
        out = net(x, arch)
        (out[0].sum() + out[1].sum() if isinstance(out, tuple) else out.sum()).backward()
        used = {id(p) for p in net.parameters() if p.grad is not None}
        mine = {id(p) for p in child.parameters()}
        assert used <= mine
        assert len(mine) < len(list(net.parameters()))


def test_extracted_child_trains_like_the_supernet() -> None:
    net, archs = supernet_and_archs("micro", 1)
    arch = archs[0]
    a, b = copy.deepcopy(net), copy.deepcopy(net)
    child = extract(b, arch)
    x, y = torch.rand(8, 3, 16, 16), torch.randint(0, 10, (8,))
    for model, fwd in ((a, lambda: a(x, arch)), (child, lambda: child(x))):
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, foreach=True)
        for _ in range(2):
            torch.manual_seed(3)
            logits, aux = fwd()
            opt.zero_grad(set_to_none=True)
            (F.cross_entropy(logits, y) + 0.4 * F.cross_entropy(aux, y)).backward()
            opt.step()
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-5, msg=name)


@pytest.mark.skipif(not BF16_CPU, reason="no bf16 support on this CPU")
def test_bf16_mixed_search_runs_on_cpu(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg(["trainer.precision=bf16-mixed", "search.epochs=1"])
    acc, arch, path = run_search(cfg, tmp_path)
    assert path.exists() and 0.0 <= acc <= 1.0


@pytest.mark.skipif(not BF16_CPU, reason="no bf16 support on this CPU")
def test_bf16_mixed_final_runs_on_cpu(tmp_path: Path) -> None:
    cfg = final_cfg(epochs=1)
    cfg.trainer.precision = "bf16-mixed"
    metrics = train_final(cfg, AUTHORS_MICRO, tmp_path, trainer_kwargs=QUIET)
    assert 0.0 <= metrics["test_acc"] <= 1.0
    assert torch.isfinite(torch.tensor(metrics["test_acc"]))


def tiny_network() -> MicroNetwork:
    from enas_lightning.arch import load_arch

    arch = load_arch(AUTHORS_MICRO, "micro", tuple(AUTHORS_MICRO_OPS))
    torch.manual_seed(0)
    return MicroNetwork(arch, 4, 3, layers=3, channels=4, aux_head=True, image_size=8)


def train_step_grads(net, forward, x, y) -> list[torch.Tensor]:
    net.train()
    logits, aux = forward(x)
    (F.cross_entropy(logits, y) + 0.4 * F.cross_entropy(aux, y)).backward()
    return [p.grad.clone() for p in net.parameters()]


def test_compiled_training_step_matches_eager() -> None:
    """Forward in train mode (BN batch statistics, aux head) and gradients, ``aot_eager``
    (compiles in seconds; the inductor forward is compared in tests/test_final.py)."""
    eager, comp = tiny_network(), tiny_network()
    x, y = torch.rand(8, 3, 8, 8), torch.randint(0, 4, (8,))
    try:
        compiled = torch.compile(comp, backend="aot_eager")
        g_c = train_step_grads(comp, compiled, x, y)
    except Exception as e:  # noqa: BLE001 - a broken toolchain is an environment limit
        pytest.skip(f"torch.compile failed here: {type(e).__name__}: {e}")
    g_e = train_step_grads(eager, eager, x, y)
    for a, b in zip(g_c, g_e, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_channels_last_matches_contiguous() -> None:
    a, b = tiny_network(), tiny_network().to(memory_format=torch.channels_last)
    x, y = torch.rand(8, 3, 8, 8), torch.randint(0, 4, (8,))
    g_a = train_step_grads(a, a, x, y)
    g_b = train_step_grads(b, b, x.contiguous(memory_format=torch.channels_last), y)
    # the two layouts sum in different orders: float rounding (measured up to 1.4e-5 absolute
    # once the final cells got their layer_base conv), while a layout bug gives O(1) differences
    for u, v in zip(g_a, g_b, strict=True):
        torch.testing.assert_close(u, v, atol=1e-4, rtol=1e-3)


def test_trainer_num_threads_is_applied(make_cfg, tmp_path: Path) -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        cfg = make_cfg(["trainer.num_threads=1"])
        build_trainer(cfg, "search", tmp_path, 1, [], False)
        assert torch.get_num_threads() == 1
        torch.set_num_threads(2)
        cfg = make_cfg(["trainer.num_threads=0"])  # 0 leaves torch's setting alone
        build_trainer(cfg, "search", tmp_path, 1, [], False)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_fused_optimizer_only_without_mixed_precision() -> None:
    params = [torch.nn.Parameter(torch.zeros(3))]
    assert step_kwargs(params, "32-true") == {"fused": True}
    assert step_kwargs(params, None) == {"fused": True}
    # Lightning cannot clip the gradients of a fused optimizer under mixed precision
    assert step_kwargs(params, "bf16-mixed") == {"foreach": True}
    assert step_kwargs(params, "16-mixed") == {"foreach": True}


def test_fused_and_foreach_sgd_agree() -> None:
    torch.manual_seed(0)
    a = [torch.nn.Parameter(torch.randn(5, 4)), torch.nn.Parameter(torch.randn(7))]
    b = [torch.nn.Parameter(p.detach().clone()) for p in a]
    kw = dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4)
    opt_a = torch.optim.SGD(a, foreach=True, **kw)
    opt_b = torch.optim.SGD(b, **step_kwargs(b), **kw)
    for k in range(3):
        g = torch.Generator().manual_seed(k)
        for p, q in zip(a, b, strict=True):
            p.grad = torch.randn(p.shape, generator=g)
            q.grad = p.grad.clone()
        opt_a.step()
        opt_b.step()
    for p, q in zip(a, b, strict=True):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-5)


def test_fused_sgd_with_buffers_up_front_matches_lazy_foreach_on_sparse_steps() -> None:
    """A supernet step gives gradients to the sampled child's weights only: the fused SGD with
    zero momentum buffers made up front updates exactly as the foreach SGD whose buffers appear
    when a weight first gets a gradient; a ``found_inf`` step changes nothing."""
    from enas_lightning.optim import ensure_momentum_buffers

    torch.manual_seed(0)
    a = [torch.nn.Parameter(torch.randn(4, 3)) for _ in range(6)]
    b = [torch.nn.Parameter(p.detach().clone()) for p in a]
    kw = dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4)
    lazy = torch.optim.SGD(a, foreach=True, **kw)
    fused = torch.optim.SGD(b, fused=True, **kw)
    ensure_momentum_buffers(fused)
    g = torch.Generator().manual_seed(1)
    for _ in range(8):
        used = torch.randperm(6, generator=g)[:2].tolist()  # this step's child
        for i, (p, q) in enumerate(zip(a, b, strict=True)):
            p.grad = q.grad = None
            if i in used:
                p.grad = torch.randn(p.shape, generator=g)
                q.grad = p.grad.clone()
        lazy.step()
        fused.found_inf = torch.zeros(())
        fused.step()
        for p, q in zip(a, b, strict=True):
            torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-5)
    before = [q.detach().clone() for q in b]
    bufs = [fused.state[q]["momentum_buffer"].clone() for q in b]
    for q in b:
        q.grad = torch.full_like(q, float("nan"))
    fused.found_inf = torch.ones(())
    fused.step()
    for q, w, m in zip(b, before, bufs, strict=True):
        assert torch.equal(q, w) and torch.equal(fused.state[q]["momentum_buffer"], m)


def test_supernet_sgd_fused_and_foreach_search_the_same(make_cfg, monkeypatch) -> None:
    """The fused supernet SGD (momentum buffers made up front, on-device skip) trains the same
    weights as the foreach one, whose buffers appear as children first use their weights.

    Random search, so both runs train the same children, and only two steps: the kernels round
    differently in the last bits (1e-9 after two steps), and over more steps a max pool's or a
    ReLU's tie that flips turns such bits into visibly different weights."""
    import enas_lightning.search.module as search_module

    weights = {}
    real_derive = search_module.SearchModule.derive

    def derive(self):
        kind = "fused" if self.optimizers()[0].optimizer.defaults["fused"] else "foreach"
        weights[kind] = {k: v.clone() for k, v in self.supernet.state_dict().items()}
        return real_derive(self)

    monkeypatch.setattr(search_module.SearchModule, "derive", derive)
    cfg = make_cfg(["search.epochs=1", "controller=random", "search.child_batches=2"])
    run_search(cfg, Path(cfg.output_dir) / "fused")
    monkeypatch.setattr(search_module, "fused_supported", lambda params: False)
    run_search(cfg, Path(cfg.output_dir) / "foreach")
    assert set(weights) == {"fused", "foreach"}
    for k, v in weights["fused"].items():
        torch.testing.assert_close(v, weights["foreach"][k], atol=1e-5, rtol=1e-4, msg=k)


def test_channels_last_search_trains_the_same_weights(make_cfg, monkeypatch) -> None:
    """``search.channels_last=true``: channels-last supernet, data and momentum buffers, and the
    same step as the contiguous search (random search: the same child).

    One step only: the two layouts sum convolutions in other orders, and this tiny network's
    training is chaotic (weights perturbed by 1e-6 differ by 3 % after one step and 48 % after
    two), so later steps differ for that reason alone. The whole update is compared."""
    import enas_lightning.search.module as search_module

    runs, start = {}, {}
    real_fit_start = search_module.SearchModule.on_fit_start
    real_derive = search_module.SearchModule.derive

    def on_fit_start(self):
        real_fit_start(self)
        start[self.cfg.search.channels_last] = [
            p.detach().clone() for p in self.supernet.parameters()
        ]

    def derive(self):
        runs[self.cfg.search.channels_last] = self
        return real_derive(self)

    monkeypatch.setattr(search_module.SearchModule, "on_fit_start", on_fit_start)
    monkeypatch.setattr(search_module.SearchModule, "derive", derive)
    base = ["search.epochs=1", "controller=random", "search.child_batches=1"]
    cfg = make_cfg(base)
    run_search(cfg, Path(cfg.output_dir) / "nchw")
    cfg = make_cfg([*base, "search.channels_last=true"])
    run_search(cfg, Path(cfg.output_dir) / "nhwc")
    nchw, nhwc = runs[False], runs[True]
    convs = [p for p in nhwc.supernet.parameters() if p.dim() == 4]
    # all channels-last; those with spatial extent and several input channels differ in layout
    assert any(not p.is_contiguous() for p in convs)
    for p in convs:
        assert p.is_contiguous(memory_format=torch.channels_last)
        buf = nhwc.optimizers()[0].optimizer.state[p]["momentum_buffer"]
        assert buf.stride() == p.stride()
    assert nhwc.data.train_x.is_contiguous(memory_format=torch.channels_last)
    for a, b in zip(start[False], start[True], strict=True):
        assert torch.equal(a, b)  # the same initial weights
    flat = lambda ps: torch.cat([p.detach().flatten() for p in ps])  # noqa: E731
    w0 = flat(start[False])
    update_a = flat(nchw.supernet.parameters()) - w0
    update_b = flat(nhwc.supernet.parameters()) - w0
    assert update_a.norm() > 0
    assert (update_a - update_b).norm() < 1e-3 * update_a.norm()  # measured 1.2e-5


def test_channels_last_final_training_runs(tmp_path: Path) -> None:
    cfg = final_cfg(epochs=1)
    cfg.final.channels_last = True
    metrics = train_final(cfg, AUTHORS_MICRO, tmp_path, trainer_kwargs=QUIET)
    assert 0.0 <= metrics["test_acc"] <= 1.0


class FrozenNorm(torch.nn.Module):
    """A module that overrides ``train``: its BatchNorm stays in eval mode (a frozen layer)."""

    def __init__(self) -> None:
        super().__init__()
        self.bn = torch.nn.BatchNorm2d(3)
        self.drop = torch.nn.Dropout(0.5)

    def train(self, mode: bool = True) -> FrozenNorm:
        super().train(mode)
        self.bn.eval()
        return self


def modes(net: torch.nn.Module) -> list[bool]:
    return [m.training for m in net.modules()]


@pytest.mark.parametrize("on", [(), (torch.nn.Dropout,)])
def test_set_training_sets_the_flags_that_train_sets(on) -> None:
    """The scoring views' fast mode switch (``set_training``) leaves every module of the
    supernet, and of a network holding a module with its own ``train``, in the mode that
    ``train(mode)`` followed by ``train()`` on every module of the types ``on`` gives."""
    from enas_lightning.search.scoring import set_training

    net, _ = supernet_and_archs("micro")
    net = torch.nn.Sequential(net, FrozenNorm(), torch.nn.Sequential(FrozenNorm()))
    expected = copy.deepcopy(net)
    for mode in (False, True, False):
        expected.train(mode)
        for m in expected.modules():
            if on and not mode and isinstance(m, on):
                m.train()
        set_training(net, mode, on=on)
        assert modes(net) == modes(expected)
    assert not net[1].bn.training and net[1].drop.training == bool(on)
    assert any(isinstance(m, torch.nn.Dropout) for m in net[0].modules())

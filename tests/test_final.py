"""Final training: the task end to end, cutout/drop path/aux head wiring, export, resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from pytorch_lightning.callbacks import Callback

from enas_lightning.arch import load_arch
from enas_lightning.config import space_config
from enas_lightning.data.datasets import load_splits
from enas_lightning.data.device import DeviceSplits
from enas_lightning.errors import ConfigError
from enas_lightning.final import FinalModule, build_final_network, train_final
from enas_lightning.final.train import final_checkpoints
from enas_lightning.spaces import Cost, get_space
from enas_lightning.spaces.cost import count_madds, count_params
from enas_lightning.spaces.macro.arch import MacroArch

# The authors' micro final cells (melodyguan/enas scripts/cifar10_micro_final.sh).
from enas_lightning.spaces.micro.arch import AUTHORS_MICRO_FINAL as AUTHORS_MICRO  # noqa: E402
from enas_lightning.spaces.micro.arch import MicroArch

# one intra-op thread, restored after each test (conftest.py)
pytestmark = pytest.mark.usefixtures("one_thread")

# 3 macro layers: conv3, sep3 <- skip from the stem (bit 0), conv5 <- the stem and layer 0.
MACRO_3 = "0 1 1 2 1 1"
MACRO_OPS = ["conv_3x3", "sep_conv_3x3", "conv_5x5", "sep_conv_5x5"]
METRIC_KEYS = {
    "test_acc",
    "best_test_acc",
    "params",
    "params_without_aux",
    "madds",
    "epochs",
    "wall_time_s",
    "arch",
}
QUIET = {"enable_model_summary": False, "enable_progress_bar": False}


def make_cfg(space: str = "micro", **final: Any) -> DictConfig:
    """A tiny CPU config: fake 8x8 images, 64 train / 32 test, 3 layers x 4 channels."""
    cfg = space_config(space)
    cfg.output_dir = "unused"
    cfg.dataset.name = "fake"
    cfg.dataset.train_size = 64
    cfg.dataset.test_size = 32
    cfg.dataset.image_size = 8
    cfg.dataset.cutout = 4
    cfg.trainer.accelerator = "cpu"
    cfg.trainer.enable_progress_bar = False
    f = cfg.final
    f.layers, f.channels, f.epochs, f.batch_size, f.test_every = 3, 4, 2, 16, 1
    for k, v in final.items():
        setattr(f, k, v)
    return cfg


def make_module(cfg: DictConfig, arch: str = AUTHORS_MICRO) -> FinalModule:
    """The module train_final builds, without a Trainer (same seeding)."""
    record = load_arch(arch, cfg.search_space.name, tuple(cfg.search_space.ops))
    splits = load_splits(cfg.dataset, holdout=False)
    d = cfg.dataset
    data = DeviceSplits(splits, pad=d.pad, flip=d.flip, cutout=d.cutout)
    pl.seed_everything(cfg.seed, verbose=False)
    return FinalModule(build_final_network(cfg, record, splits), data, cfg.final, seed=cfg.seed)


def fit(
    module: FinalModule,
    out: Path,
    epochs: int,
    ckpt_path: Path | None = None,
    callbacks: list[Callback] | None = None,
    **kwargs: Any,
) -> pl.Trainer:
    """Fit like train_final (same checkpointing), without the final evaluation and export."""
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=epochs,
        default_root_dir=out,
        callbacks=[*final_checkpoints(out / "checkpoints"), *(callbacks or [])],
        check_val_every_n_epoch=1,
        use_distributed_sampler=False,
        num_sanity_val_steps=0,
        logger=False,
        **QUIET,
        **kwargs,
    )
    trainer.fit(module, ckpt_path=ckpt_path)
    return trainer


@pytest.fixture(scope="module")
def micro_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[DictConfig, Path, dict]:
    """train_final with aux head (0.4), drop path (keep 0.6) and cutout (4) for 2 epochs."""
    cfg = make_cfg()
    assert cfg.final.aux_weight > 0 and cfg.final.drop_path_keep < 1 and cfg.dataset.cutout > 0
    out = tmp_path_factory.mktemp("micro")
    metrics = train_final(cfg, AUTHORS_MICRO, out, trainer_kwargs=QUIET)
    return cfg, out, metrics


def test_final_training_writes_checkpoints_metrics_export(
    micro_run: tuple[DictConfig, Path, dict],
) -> None:
    _cfg, out, metrics = micro_run
    for name in ("checkpoints/best.ckpt", "checkpoints/last.ckpt", "metrics.json"):
        assert (out / name).is_file(), name
    for name in ("model.pt2", "arch.json", "preprocess.json"):
        assert (out / "export" / name).is_file(), name
    on_disk = json.loads((out / "metrics.json").read_text())
    assert set(on_disk) == METRIC_KEYS
    assert on_disk == metrics
    assert on_disk["arch"] == AUTHORS_MICRO
    assert on_disk["epochs"] == 2
    assert 0.0 <= on_disk["test_acc"] <= on_disk["best_test_acc"] <= 1.0
    assert on_disk["params"] > on_disk["params_without_aux"] > 0  # aux head counted separately
    assert on_disk["madds"] > 0 and on_disk["wall_time_s"] > 0
    pre = json.loads((out / "export" / "preprocess.json").read_text())
    assert pre["input_shape"] == [3, 8, 8] and pre["num_classes"] == 10
    assert len(pre["mean"]) == len(pre["std"]) == 3
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["epoch"] == 1 and ckpt["final"]["best_test_acc"] == metrics["best_test_acc"]


def test_final_metrics_count_the_trained_network_through_space_cost(
    micro_run: tuple[DictConfig, Path, dict],
) -> None:
    """metrics.json's params and madds are the space's :meth:`Space.cost`, the counts of the
    network final training built (aux head included in ``params`` only)."""
    cfg, _out, metrics = micro_run
    net = make_module(cfg).network  # the network train_final trained (same seed, same build)
    assert net.aux is not None
    assert metrics["params"] == count_params(net)
    assert metrics["params_without_aux"] == count_params(net) - count_params(net.aux)
    assert metrics["madds"] == count_madds(net, (3, 8, 8))
    arch = load_arch(AUTHORS_MICRO, "micro", tuple(cfg.search_space.ops))
    cost = get_space("micro").cost(cfg.final, arch, 10, (3, 8, 8))
    assert (cost.params, cost.params - cost.aux_params, cost.madds) == (
        metrics["params"],
        metrics["params_without_aux"],
        metrics["madds"],
    )


def test_final_training_reports_the_spaces_own_cost(tmp_path: Path, monkeypatch) -> None:
    """A space that counts its cost its own way (overriding ``cost``) is what metrics.json
    reports: final training does not count on its own."""
    space = get_space("micro")
    monkeypatch.setattr(type(space), "cost", lambda self, f, arch, k, shape: Cost(7, 11, 3))
    kwargs = {**QUIET, "limit_train_batches": 1}
    metrics = train_final(make_cfg(epochs=1), AUTHORS_MICRO, tmp_path, kwargs, export=False)
    assert (metrics["params"], metrics["params_without_aux"], metrics["madds"]) == (7, 4, 11)


def test_space_cost_leaves_the_random_stream_alone() -> None:
    """Counting builds a network of its own; the caller's next random numbers stay the same."""
    cfg = make_cfg()
    arch = load_arch(AUTHORS_MICRO, "micro", tuple(cfg.search_space.ops))
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    get_space("micro").cost(cfg.final, arch, 10, (3, 8, 8))
    assert torch.equal(torch.rand(3), expected)


def test_export_runs_without_enas_lightning(
    micro_run: tuple[DictConfig, Path, dict], tmp_path: Path
) -> None:
    """model.pt2 loads in a process where enas_lightning cannot be imported; same logits."""
    cfg, out, _ = micro_run
    module = make_module(cfg)
    state = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    module.load_state_dict(state)  # the weights at the end of training = the exported ones
    net = module.network.eval()
    x = module.data.test_x[:5]  # [5, 3, 8, 8]: a batch size the export was not traced with
    torch.save(x, tmp_path / "x.pt")
    script = (
        "import sys; sys.modules['enas_lightning'] = None\n"
        "try:\n    import enas_lightning\nexcept ImportError:\n    pass\n"
        "else:\n    raise SystemExit('enas_lightning importable')\n"
        "import torch\ntorch.set_num_threads(1)\n"
        f"m = torch.export.load({str(out / 'export' / 'model.pt2')!r}).module()\n"
        f"x = torch.load({str(tmp_path / 'x.pt')!r})\n"
        "with torch.no_grad():\n"
        f"    torch.save(m(x), {str(tmp_path / 'y.pt')!r})\n"
    )
    # -I: isolated mode (no PYTHONPATH, no cwd on sys.path); cwd outside the repository.
    done = subprocess.run(
        [sys.executable, "-I", "-c", script], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    with torch.no_grad():
        expected = net(x)
    got = torch.load(tmp_path / "y.pt")
    assert got.shape == (5, 10)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


class Spy(Callback):
    """Records the network's training inputs and its ``drop_path_progress`` at each training
    forward pass."""

    def __init__(self) -> None:
        self.inputs: list[torch.Tensor] = []
        self.progress: list[float] = []

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        def hook(m: torch.nn.Module, args: tuple) -> None:
            if m.training:
                self.inputs.append(args[0].detach().clone())
                self.progress.append(m.drop_path_progress)

        pl_module.network.register_forward_pre_hook(hook)


def test_cutout_and_drop_path_progress_reach_training(tmp_path: Path) -> None:
    cfg = make_cfg(epochs=4)
    cfg.dataset.pad, cfg.dataset.flip = 0, False  # only cutout makes zeros
    module = make_module(cfg)
    spy = Spy()
    fit(module, tmp_path, epochs=2, callbacks=[spy], limit_train_batches=2, limit_val_batches=0)
    # drop path grows with every step, as the reference: (step + 1) / (final.epochs * 2 batches)
    assert spy.progress == [1 / 8, 2 / 8, 3 / 8, 4 / 8]
    x = spy.inputs[0]  # [16, 3, 8, 8]
    assert x.shape == (16, 3, 8, 8)
    for img in x:
        zero = (img == 0).all(0)  # [H, W]: cut-out pixels, zero in every channel
        rows, cols = zero.any(1).nonzero().flatten(), zero.any(0).nonzero().flatten()
        h, w = len(rows), len(cols)
        # a 4x4 square, clipped to at least 2x2 at the borders, and nothing else
        assert 2 <= h <= 4 and 2 <= w <= 4 and int(zero.sum()) == h * w
        assert rows[-1] - rows[0] + 1 == h and cols[-1] - cols[0] + 1 == w
        assert (h == 4 or rows[0] == 0 or rows[-1] == 7) and (
            w == 4 or cols[0] == 0 or cols[-1] == 7
        )
    assert any(int((img == 0).all(0).sum()) == 16 for img in x)


def test_aux_loss_trains_the_aux_head(tmp_path: Path) -> None:
    module = make_module(make_cfg(epochs=1))
    assert module.network.aux is not None
    before = {k: v.clone() for k, v in module.network.aux.state_dict().items()}
    fit(module, tmp_path, epochs=1, limit_train_batches=1, limit_val_batches=0)
    after = module.network.aux.state_dict()
    changed = [k for k, v in before.items() if "weight" in k and not torch.equal(v, after[k])]
    weights = [k for k in before if k.endswith("weight")]
    assert changed == weights  # every aux conv/BN/linear weight got an update


def test_macro_final_trains_and_exports(tmp_path: Path) -> None:
    cfg = make_cfg("macro", epochs=1, aux_weight=0.0, drop_path_keep=1.0)
    cfg.search_space.ops = MACRO_OPS
    metrics = train_final(cfg, MACRO_3, tmp_path, trainer_kwargs=QUIET)
    assert set(metrics) == METRIC_KEYS and metrics["epochs"] == 1
    assert metrics["params"] == metrics["params_without_aux"]
    assert metrics["arch"] == MACRO_3
    arch = json.loads((tmp_path / "export" / "arch.json").read_text())
    assert MacroArch.from_dict(arch).num_layers == 3
    m = torch.export.load(tmp_path / "export" / "model.pt2").module()
    assert m(torch.zeros(3, 3, 8, 8)).shape == (3, 10)
    cfg.final.layers = 4
    with pytest.raises(ConfigError, match="final.layers"):
        train_final(cfg, MACRO_3, tmp_path / "bad")


@pytest.mark.skipif(
    os.environ.get("ENAS_TEST_COMPILE") != "1",
    reason=(
        "torch.compile (inductor) of the tiny micro network took 224 s on this 2-core CPU "
        "(aot_eager: 36 s), over the 60 s budget; set ENAS_TEST_COMPILE=1 to run"
    ),
)
def test_compiled_and_eager_agree() -> None:
    cfg = make_cfg(compile=True)
    module = make_module(cfg)
    module.maybe_compile()
    module.eval()
    x = module.data.test_x[:4]
    start = time.perf_counter()
    try:
        with torch.no_grad():
            compiled = module(x)
    except Exception as e:  # noqa: BLE001 - a broken toolchain is an environment limit
        pytest.skip(f"torch.compile failed here: {type(e).__name__}: {e}")
    print(f"compile + first forward: {time.perf_counter() - start:.1f} s")
    with torch.no_grad():
        eager = module.network(x)
    torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=1e-4)


def test_resume_equals_uninterrupted_run(tmp_path: Path) -> None:
    """1 epoch, then resume from last.ckpt for the 2nd == 2 epochs in one go, bit for bit."""
    cfg = make_cfg(epochs=2)
    whole = make_module(cfg)
    fit(whole, tmp_path / "whole", epochs=2)

    first = make_module(cfg)
    fit(first, tmp_path / "split", epochs=1)
    last = tmp_path / "split" / "checkpoints" / "last.ckpt"
    resumed = make_module(cfg)
    fit(resumed, tmp_path / "split", epochs=2, ckpt_path=last)

    a, b = whole.network.state_dict(), resumed.network.state_dict()
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, differ
    # and the interruption really happened: after 1 epoch the weights were different
    c = first.network.state_dict()
    assert any(not torch.equal(a[k], c[k]) for k in a)
    assert isinstance(load_arch(AUTHORS_MICRO, "micro", tuple(cfg.search_space.ops)), MicroArch)


@pytest.mark.parametrize("mode", ["norm", "global", "none"])
def test_final_clipping_follows_grad_clip_mode(mode: str) -> None:
    """Each weight's gradient is clipped to norm 5 on its own (norm, the default), all
    together (global), or not at all (none)."""
    cfg = make_cfg(aux_weight=0.0)
    cfg.final.optim.grad_clip_mode = mode
    module = make_module(cfg)
    params = list(module.network.parameters())
    torch.manual_seed(0)
    for k, p in enumerate(params):  # every other gradient far above the bound, the rest small
        g = torch.randn_like(p)
        p.grad = g * (50.0 if k % 2 == 0 else 0.01) / g.norm()
    before = [p.grad.clone() for p in params]
    optimizer = torch.optim.SGD(params, lr=0.1)
    module.configure_gradient_clipping(optimizer)
    norms = [float(p.grad.norm()) for p in params]
    if mode == "norm":
        assert norms[0::2] == pytest.approx([5.0] * len(norms[0::2]), rel=1e-5)
        assert all(torch.equal(p.grad, b) for p, b in zip(params[1::2], before[1::2], strict=True))
    elif mode == "global":
        total = float(torch.cat([p.grad.flatten() for p in params]).norm())
        assert total == pytest.approx(5.0, rel=1e-5)
        assert max(norms) < 5.0
    else:
        assert all(torch.equal(p.grad, b) for p, b in zip(params, before, strict=True))

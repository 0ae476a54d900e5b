"""Exact resume of a search and interruption by SIGTERM (issue 7, items 1 and 2)."""

from __future__ import annotations

import csv
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf, open_dict

from enas_lightning.checkpointing import AtomicCheckpointIO
from enas_lightning.config import register_configs
from tests._resil_util import ROOT, TINY, assert_same_training_state, cli


def rows(run: Path, epoch: int) -> list[list[str]]:
    with (run / "sampled_archs.csv").open() as f:
        return [r for r in csv.reader(f) if r[0] == str(epoch)]


def test_two_epochs_equal_one_plus_resumed_one_cli(tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    r = cli(*TINY, "search.epochs=2", f"hydra.run.dir={full}")
    assert r.returncode == 0, r.stderr
    r = cli(*TINY, "search.epochs=1", f"hydra.run.dir={part}")
    assert r.returncode == 0, r.stderr
    # resume=true in the same run directory picks up checkpoints/last.ckpt
    r = cli(*TINY, "search.epochs=2", "resume=true", f"hydra.run.dir={part}")
    assert r.returncode == 0, r.stderr
    assert rows(full, 1) and rows(full, 1) == rows(part, 1)
    assert rows(full, 0) == rows(part, 0)
    assert_same_training_state(full / "checkpoints/last.ckpt", part / "checkpoints/last.ckpt")
    assert (full / "best_arch.json").read_text() == (part / "best_arch.json").read_text()


class SaveEveryBatch(pl.Callback):
    """``e{epoch}_b{batch_idx}.ckpt`` after every training step (as ModelCheckpoint would), or
    after the one step named ``only``."""

    def __init__(self, dirpath: Path, only: str | None = None) -> None:
        self.dirpath = dirpath
        self.only = only

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        name = f"e{trainer.current_epoch}_b{batch_idx}.ckpt"
        if self.only in (None, name):
            trainer.save_checkpoint(self.dirpath / name)


def tiny_cfg(out: Path, **extra):
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_module("enas_lightning.conf", version_base="1.3"):
        cfg = compose("config", overrides=[*TINY, "search.epochs=2"])
    with open_dict(cfg):
        cfg.output_dir = str(out)
        for k, v in extra.items():
            OmegaConf.update(cfg, k, v)
    return cfg


def test_mid_epoch_resume_child_and_controller_phase(tmp_path):
    from enas_lightning.tasks.search import run_search

    ref = tmp_path / "ref"
    snaps = tmp_path / "snaps"
    run_search(tiny_cfg(ref), ref, extra_callbacks=(SaveEveryBatch(snaps),))
    # 128 training images / 32 = 4 child steps (b0-b3), then 2 controller steps (b4, b5)
    cases = {
        "e1_b1.ckpt": "middle of the child phase",
        "e1_b4.ckpt": "middle of the controller phase",
        "e0_b3.ckpt": "between the phases",
        # not covered: a checkpoint saved by on_train_batch_end on an epoch's *last* step
        # (Lightning resets the batch counters and re-enters that epoch; see the report)
    }
    for name, what in cases.items():
        assert (snaps / name).is_file(), sorted(p.name for p in snaps.iterdir())
        out = tmp_path / name
        run_search(tiny_cfg(out, ckpt_path=str(snaps / name)), out)
        try:
            assert_same_training_state(ref / "checkpoints/last.ckpt", out / "checkpoints/last.ckpt")
        except AssertionError as e:
            raise AssertionError(f"resume from {name} ({what}): {e}") from e


@pytest.mark.parametrize(
    "lever",
    [
        {"search.param_free_dropout": 0.3},
        {"search.bn_affine": False},
        {"search.init": "authors"},
        {"search.optim.dense_weight_decay": True},
        {"search.derive_finetune_steps": 2},
        {"search.derive_uniform_steps": 3},
        {"search.derive_prune_keep": 2, "search.derive_prune_steps": 3},
        {"search.uniform_children": True},
        {"search.param_free_adjust": True},
    ],
    ids=lambda lever: next(iter(lever)),
)
def test_mid_epoch_resume_with_each_lever(tmp_path, lever):
    """Each lever against the collapse (issue 20) resumes exactly from the middle of a child
    phase: its dropout draws, its weights and its optimizer state are those of the run, and so
    is the derivation (fine-tuned candidates included)."""
    from enas_lightning.tasks.search import run_search

    ref, snaps, out = tmp_path / "ref", tmp_path / "snaps", tmp_path / "out"
    lever = {"search.epochs": 1, **lever}  # 4 child steps (b0-b3), 2 controller steps
    run_search(tiny_cfg(ref, **lever), ref, (SaveEveryBatch(snaps, only="e0_b1.ckpt"),))
    run_search(tiny_cfg(out, ckpt_path=str(snaps / "e0_b1.ckpt"), **lever), out)
    assert_same_training_state(ref / "checkpoints/last.ckpt", out / "checkpoints/last.ckpt")
    for name in ("best_arch.json", "arch_candidates.csv"):
        assert (ref / name).read_text() == (out / name).read_text()


def test_resume_across_the_end_of_the_warmup(tmp_path):
    """``search.warmup_epochs=1``: resumes in the warm-up epoch, right after it (its end-of-epoch
    checkpoint) and in the first controller phase all end in the uninterrupted run's state."""
    from enas_lightning.tasks.search import run_search

    ref, snaps, part = tmp_path / "ref", tmp_path / "snaps", tmp_path / "part"
    run_search(tiny_cfg(ref, **{"search.warmup_epochs": 1}), ref, (SaveEveryBatch(snaps),))
    history = torch.load(ref / "checkpoints/last.ckpt", weights_only=False)["enas"]["history"]
    assert [h["warmup"] for h in history] == [True, False]
    assert "reward" not in history[0] and "reward" in history[1]  # the controller ran after it
    assert not rows(ref, 0) and rows(ref, 1)
    # 4 child steps in epoch 0 (no controller phase), then 4 child + 2 controller steps
    assert sorted(p.name for p in snaps.glob("e0_*")) == [f"e0_b{i}.ckpt" for i in range(4)]
    run_search(tiny_cfg(part, **{"search.warmup_epochs": 1, "search.epochs": 1}), part)
    resumes = {
        "e0_b1 (in the warm-up)": snaps / "e0_b1.ckpt",
        "end of the warm-up epoch": part / "checkpoints/last.ckpt",
        "e1_b4 (first controller phase)": snaps / "e1_b4.ckpt",
    }
    for what, ckpt in resumes.items():
        out = tmp_path / what.split()[0]
        cfg = tiny_cfg(out, **{"search.warmup_epochs": 1, "ckpt_path": str(ckpt)})
        run_search(cfg, out)
        try:
            assert_same_training_state(ref / "checkpoints/last.ckpt", out / "checkpoints/last.ckpt")
        except AssertionError as e:
            raise AssertionError(f"resume from {what}: {e}") from e


def test_atomic_checkpoint_io_keeps_old_file_on_failure(tmp_path):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"a": torch.ones(2)}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        io.save_checkpoint({"a": Unpicklable()}, path)
    assert torch.equal(torch.load(path)["a"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary left behind


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_saves_last_ckpt_and_resume_finishes(tmp_path, sig):
    run = tmp_path / "run"
    args = [*TINY, "search.epochs=40", f"hydra.run.dir={run}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "enas_lightning", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    ckpt = run / "checkpoints" / "last.ckpt"
    deadline = time.time() + 240
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[1]
    time.sleep(0.3)  # into the next epoch
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    lines = [ln for ln in (out + err).splitlines() if "resume with:" in ln]
    assert len(lines) == 1, err
    assert lines[0].endswith(f"hydra.run.dir={run} resume=true")
    assert "Traceback" not in err
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert state["epoch"] < 40 and "enas" in state
    epochs_done = state["epoch"]
    # the printed command, with fewer epochs to go
    cmd = shlex.split(lines[0].split("resume with: ", 1)[1])
    assert cmd[:3] == ["python", "-m", "enas_lightning"] and "search.epochs=40" in cmd
    args = [f"search.epochs={epochs_done + 2}" if a == "search.epochs=40" else a for a in cmd[3:]]
    r = cli(*args)
    assert r.returncode == 0, r.stderr
    assert (run / "best_arch.json").is_file()
    final = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert final["global_step"] > state["global_step"]  # the resumed run trained on


# --------------------------------------------------------------------- numerical guards (item 4)
def test_nonfinite_child_loss_skipped_counted_then_stops(tmp_path, monkeypatch):
    from enas_lightning.data.device import DeviceSplits
    from enas_lightning.errors import NonFiniteError
    from enas_lightning.search.module import SearchModule
    from enas_lightning.tasks.search import run_search

    real = DeviceSplits.train_batch

    def nan_batch(self, idx, gen):
        x, y = real(self, idx, gen)
        return x * float("nan"), y

    monkeypatch.setattr(DeviceSplits, "train_batch", nan_batch)
    seen = {}
    real_fit_start = SearchModule.on_fit_start

    def on_fit_start(self):
        real_fit_start(self)
        seen.setdefault("weights", {k: v.clone() for k, v in self.supernet.state_dict().items()})

    monkeypatch.setattr(SearchModule, "on_fit_start", on_fit_start)
    real_derive = SearchModule.derive

    def derive(self):
        seen["module"] = self
        return real_derive(self)

    monkeypatch.setattr(SearchModule, "derive", derive)
    # skipped and counted: 1 epoch of 4 child steps, all non-finite, limit not reached
    out = tmp_path / "skip"
    run_search(tiny_cfg(out, **{"search.epochs": 1, "search.max_nonfinite": 10}), out)
    m = seen["module"]
    assert m.nonfinite.total == 4 and m.nonfinite.in_a_row == 4
    assert m.trainer.callback_metrics["child/nonfinite_total"] == 4
    # skipped means skipped: no weight moved (no decay, no momentum) and every buffer is zero
    for k, v in seen["weights"].items():
        assert torch.equal(v, m.supernet.state_dict()[k]), f"supernet {k} changed"
    child_opt = m.optimizers()[0].optimizer
    assert child_opt.defaults["fused"]  # the on-device skip of the fused kernel is what ran
    assert all(not s["momentum_buffer"].any() for s in child_opt.state.values())
    # stops with exit code 3 after max_nonfinite in a row
    out = tmp_path / "stop"
    with pytest.raises(NonFiniteError, match="search.max_nonfinite=3") as exc:
        run_search(tiny_cfg(out, **{"search.max_nonfinite": 3}), out)
    assert exc.value.exit_code == 3


@pytest.mark.parametrize("what", ["reward", "gradient"])
def test_nonfinite_reward_or_controller_gradient_skips_update(tmp_path, monkeypatch, what):
    from enas_lightning.search.module import SearchModule
    from enas_lightning.tasks.search import run_search

    seen = {}
    if what == "reward":
        monkeypatch.setattr(
            SearchModule,
            "rewards",
            lambda self, archs, gen: torch.full((len(archs),), float("nan"), device=self.device),
        )
    real_fit_start = SearchModule.on_fit_start

    def on_fit_start(self):
        real_fit_start(self)
        seen["before"] = {k: v.clone() for k, v in self.controller.state_dict().items()}
        seen["module"] = self
        if what == "gradient":
            for p in self.controller.parameters():
                p.register_hook(lambda g: g * float("nan"))

    monkeypatch.setattr(SearchModule, "on_fit_start", on_fit_start)
    out = tmp_path / what
    run_search(tiny_cfg(out, **{"search.epochs": 1}), out)
    m = seen["module"]
    after = m.controller.state_dict()
    for k, v in seen["before"].items():
        assert torch.equal(v, after[k]), f"controller {k} changed"
    assert float(m.baseline) == 0.0 or what == "gradient"
    assert m.trainer.callback_metrics["ctrl/skipped"] == 1.0

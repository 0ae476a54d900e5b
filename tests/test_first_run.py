"""What a new user runs into (issue 14): earlier runs kept, inspect on any machine and with the
data's real shape, an epoch line in app.log, a quiet Lightning, the Makefile, the README."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from enas_lightning.arch import parse_ints
from enas_lightning.errors import ConfigError
from enas_lightning.rundir import RunDirGuard, check_job_dir, check_new_dir
from enas_lightning.spaces.micro.arch import AUTHORS_MICRO_FINAL, MicroArch
from tests._cli import enas, tiny

REPO = Path(__file__).resolve().parents[1]
TINY_CLI = tiny({"logger": "none", "trainer.enable_progress_bar": False, "search.epochs": 1})


def snapshot(d: Path) -> dict[str, tuple[int, str]]:
    """Every file under ``d`` with its modification time and content hash."""
    return {
        str(p.relative_to(d)): (p.stat().st_mtime_ns, hashlib.md5(p.read_bytes()).hexdigest())
        for p in sorted(d.rglob("*"))
        if p.is_file()
    }


def earlier_run(d: Path) -> Path:
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "config.yaml").write_text("task: search\n")
    (d / "checkpoints").mkdir()
    (d / "checkpoints" / "last.ckpt").write_bytes(b"earlier")
    return d


# ------------------------------------------------------------------ 1. earlier runs are kept
def test_check_new_dir_rules(tmp_path: Path) -> None:
    run = earlier_run(tmp_path / "run")
    search = {"task": "search", "resume": False, "ckpt_path": None}
    check_new_dir(search, tmp_path / "absent", "hydra.run.dir")  # new: fine
    (tmp_path / "empty").mkdir()
    check_new_dir(search, tmp_path / "empty", "hydra.run.dir")  # empty: fine
    with pytest.raises(ConfigError) as e:
        check_new_dir(search, run, "hydra.run.dir")
    msg = str(e.value)
    assert msg.startswith(f"hydra.run.dir='{run}' is not allowed")
    assert "resume=true" in msg and "another hydra.run.dir" in msg and "\n" not in msg
    check_new_dir({**search, "resume": True}, run, "hydra.run.dir")  # continues it
    inside = str(run / "checkpoints" / "last.ckpt")
    check_new_dir({**search, "ckpt_path": inside}, run, "hydra.run.dir")
    with pytest.raises(ConfigError):  # a checkpoint of another run does not make this one new
        check_new_dir({**search, "ckpt_path": str(tmp_path / "x.ckpt")}, run, "hydra.run.dir")
    # inspect has nothing to resume: only another directory helps
    with pytest.raises(ConfigError) as e:
        check_new_dir({"task": "inspect", "resume": True}, run, "hydra.run.dir")
    assert "resume=true" not in str(e.value) and "another hydra.run.dir" in str(e.value)


def test_sweep_job_dir_may_hold_only_what_hydra_wrote(tmp_path: Path) -> None:
    job = tmp_path / "0"
    (job / ".hydra").mkdir(parents=True)
    (job / "app.log").write_text("")
    cfg = {"task": "search", "resume": False}
    check_job_dir(cfg, job, "app")
    (job / "best_arch.json").write_text("{}")
    with pytest.raises(ConfigError, match="best_arch.json"):
        check_job_dir(cfg, job, "app")


@pytest.mark.parametrize("mode", ["run", "sweep"])
def test_guard_refuses_before_hydra_writes(tmp_path: Path, mode: str, capsys) -> None:
    """The Hydra callback, with the config Hydra passes it (``hydra`` node included)."""
    from enas_lightning.precheck import compose

    run = earlier_run(tmp_path / "earlier")
    before = snapshot(run)
    cfg = compose([*TINY_CLI, f"hydra.{mode}.dir={run}"])
    guard = RunDirGuard()
    with pytest.raises(SystemExit) as e:
        (guard.on_run_start if mode == "run" else guard.on_multirun_start)(config=cfg)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: hydra.{mode}.dir='{run}'"), err
    assert snapshot(run) == before
    # resume=true lets the same directory through
    cfg = compose([*TINY_CLI, f"hydra.{mode}.dir={run}", "resume=true"])
    (guard.on_run_start if mode == "run" else guard.on_multirun_start)(config=cfg)


def test_guard_is_one_of_hydras_callbacks() -> None:
    from enas_lightning.precheck import compose

    cfg = compose(TINY_CLI)
    targets = [c["_target_"] for c in cfg.hydra.callbacks.values()]
    assert "enas_lightning.rundir.RunDirGuard" in targets


@pytest.mark.slow
def test_rerun_is_refused_and_the_earlier_run_kept(tmp_path: Path, cli_env) -> None:
    run = tmp_path / "run"
    args = [*TINY_CLI, f"hydra.run.dir={run}"]
    first = enas(args, REPO, cli_env, 300)
    assert first.returncode == 0, first.stderr[-3000:]
    before = snapshot(run)
    assert ".hydra/config.yaml" in before and "checkpoints/last.ckpt" in before
    again = enas([*args, "seed=1"], REPO, cli_env, 300)
    assert again.returncode == 2
    err = again.stderr.strip().splitlines()
    assert len(err) == 1 and f"hydra.run.dir='{run}'" in err[0], again.stderr
    assert "resume=true" in err[0] and "another hydra.run.dir" in err[0]
    assert snapshot(run) == before  # .hydra/config.yaml, the log, the checkpoint: untouched
    # a sweep into a directory with an earlier sweep: refused before any job starts
    sweep = tmp_path / "sweep"
    (sweep / "0").mkdir(parents=True)
    (sweep / "0" / "best_arch.json").write_text("{}")
    multi = enas(["-m", *TINY_CLI, f"hydra.sweep.dir={sweep}", "seed=0,1"], REPO, cli_env, 300)
    assert multi.returncode == 2, multi.stdout[-2000:] + multi.stderr[-2000:]
    assert f"error: hydra.sweep.dir='{sweep}'" in multi.stderr
    assert sorted(p.name for p in sweep.iterdir()) == ["0"]  # no multirun.yaml, no job 1


# ------------------------------------------------------------------ 2./3. inspect
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


@pytest.mark.parametrize("trainer", ["gpu", "ddp", "default", "cpu"])
def test_inspect_validates_with_any_trainer_preset(make_cfg, monkeypatch, trainer) -> None:
    from enas_lightning.build import validate

    no_gpu(monkeypatch)
    validate(make_cfg(["task=inspect", f"arch='{AUTHORS_MICRO_FINAL}'", f"trainer={trainer}"]))


@pytest.mark.parametrize("task", ["search", "final", "pipeline"])
def test_gpu_preset_without_gpu_names_the_fix(make_cfg, monkeypatch, task) -> None:
    from enas_lightning.build import validate

    no_gpu(monkeypatch)
    with pytest.raises(ConfigError) as e:
        validate(make_cfg([f"task={task}", "trainer=gpu"]))
    assert str(e.value).startswith("trainer.accelerator='gpu' is not allowed")
    assert "trainer=cpu" in str(e.value)


def test_data_shape_matches_the_loaded_data(make_cfg) -> None:
    from enas_lightning.data.datasets import data_shape, load_splits

    for name in ("digits", "fake"):
        cfg = make_cfg([f"dataset={name}"]).dataset
        splits = load_splits(cfg, holdout=True)
        assert data_shape(cfg) == (splits.num_classes, splits.image_shape), name
    assert data_shape(make_cfg(["dataset=cifar10"]).dataset) == (10, (3, 32, 32))


def image_folder(root: Path, classes: int, side: int = 6) -> Path:
    from PIL import Image

    for k in range(classes):
        (root / f"class{k}").mkdir(parents=True)
        Image.new("RGB", (side, side), (40 * k, 0, 0)).save(root / f"class{k}" / "a.png")
    return root


def test_inspect_counts_the_image_folder_classes(make_cfg, tmp_path, monkeypatch, capsys) -> None:
    """5 class folders, resized to 12x12: the network inspect counts has 5 outputs."""
    from enas_lightning.app import run
    from enas_lightning.data.datasets import data_shape, load_splits
    from enas_lightning.spaces.cost import count_params
    from enas_lightning.spaces.micro.network import MicroNetwork

    no_gpu(monkeypatch)
    data = image_folder(tmp_path / "images", classes=5)
    cfg = make_cfg(
        [
            "task=inspect",
            f"arch='{AUTHORS_MICRO_FINAL}'",
            "search_space.num_nodes=5",
            "trainer=ddp",  # 4 GPUs: not needed to count a network
            "dataset=image_folder",
            f"dataset.data_dir={data}",
            "dataset.image_size=12",
            "final.layers=3",
            "final.channels=8",
        ]
    )
    cfg.output_dir = str(tmp_path / "inspect")
    assert data_shape(cfg.dataset) == (5, (3, 12, 12))
    splits = load_splits(cfg.dataset, holdout=False)  # the loader agrees
    assert (splits.num_classes, splits.image_shape) == (5, (3, 12, 12))
    run(cfg)
    out = capsys.readouterr().out
    assert "5 classes, 3x12x12 input" in out
    params = int(re.search(r"^params: (\d+)$", out, re.M).group(1))
    arch = MicroArch.from_ints(parse_ints(AUTHORS_MICRO_FINAL))

    def counted(classes: int) -> int:
        net = MicroNetwork(
            arch, classes, 3, layers=3, channels=8, aux_head=cfg.final.aux_weight > 0, image_size=12
        )
        return count_params(net)

    assert params == counted(5) != counted(10)


# ------------------------------------------------------------------ 5. what the search prints
def test_epoch_line_format() -> None:
    from enas_lightning.search.history import EpochSummary
    from enas_lightning.search.progress import EpochLine

    arch = MicroArch.from_ints(parse_ints(AUTHORS_MICRO_FINAL))
    trainer = SimpleNamespace(
        max_epochs=30,
        callback_metrics={"child/loss_epoch": torch.tensor(1.23456), "child/acc_epoch": 0.5},
    )
    module = SimpleNamespace(controller=SimpleNamespace(ops=arch_ops()))
    summary = EpochSummary(
        epoch=2, warmup=False, baseline=0.25, lr=0.05, reward=0.3, entropy=12.5, greedy_arch=arch
    )
    line = EpochLine.line(trainer, module, summary, 4.26)
    assert line == (
        "epoch 3/30 | child loss 1.2346 acc 0.5000 | reward 0.3000 baseline 0.2500 "
        f"entropy 12.500 | lr 0.05 | 4.3 s | greedy: {AUTHORS_MICRO_FINAL}"
    )
    # an epoch without a controller phase (warm-up, random controller): dashes, no greedy arc
    trainer.callback_metrics = {}
    summary = EpochSummary(epoch=0, warmup=False, baseline=0.0, lr=0.05)
    line = EpochLine.line(trainer, module, summary, 1.0)
    assert "child loss - acc - | reward - baseline 0.0000 entropy - |" in line
    assert line.endswith("greedy: -")


def arch_ops() -> tuple[str, ...]:
    from enas_lightning.spaces.micro.ops import AUTHORS_MICRO_OPS

    return tuple(AUTHORS_MICRO_OPS)


def test_progress_bar_shows_three_numbers() -> None:
    from enas_lightning.search.progress import SearchProgressBar

    logged = {
        name: torch.tensor(0.5)
        for name in (
            "child/loss_step",
            "child/loss_epoch",
            "child/acc_step",
            "child/acc_epoch",
            "ctrl/reward_step",
            "ctrl/reward_epoch",
            "ctrl/baseline",
            "ctrl/entropy_step",
            "ctrl/entropy_epoch",
            "lr",
        )
    }
    trainer = SimpleNamespace(callback_metrics=logged, progress_bar_metrics={})
    bar = SearchProgressBar()
    assert bar.get_metrics(trainer, None) == {"loss": 0.5, "acc": 0.5, "reward": 0.5}
    # with an 80-column terminal in mind: no it/s column, a short bar
    columns = bar.configure_columns(trainer)
    assert "ProcessingSpeedColumn" not in [type(c).__name__ for c in columns]
    assert [c.bar_width for c in columns if hasattr(c, "bar_width")] == [8]


def test_lightning_tip_and_tpu_lines_are_filtered(tmp_path: Path, make_cfg, caplog) -> None:
    from enas_lightning.build import build_trainer

    with caplog.at_level(logging.INFO):
        build_trainer(make_cfg(["trainer=cpu"]), "final", tmp_path, 1, [], False)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "GPU available" in text  # Lightning's own lines still arrive, but not these:
    assert "Tip" not in text and "TPU available" not in text and "HPU" not in text


@pytest.mark.slow
def test_search_logs_one_line_per_epoch(tiny_cfg, tmp_path: Path, caplog) -> None:
    from enas_lightning.tasks.search import run_search

    with caplog.at_level(logging.INFO, logger="enas_lightning.search"):
        run_search(tiny_cfg, tmp_path)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert len(lines) == tiny_cfg.search.epochs == 2
    number = r"\d+\.\d+"
    for k, line in enumerate(lines):
        assert re.fullmatch(
            rf"epoch {k + 1}/2 \| child loss {number} acc {number} \| reward {number} "
            rf"baseline {number} entropy {number} \| lr [\d.e-]+ \| {number} s \| greedy: [\d ]+",
            line,
        ), line
    import json

    history = json.loads((tmp_path / "history.json").read_text())
    greedy = [line.rpartition("greedy: ")[2] for line in lines]
    assert greedy == [h["greedy_arch"]["ints"] for h in history]


# ------------------------------------------------------------------ 7. two commands
def make_dry(*args: str, venv: Path) -> str:
    # CI runs these tests inside `make test`: a nested make would print "Entering directory"
    # lines and inherit the outer make's flags and command-line variables, so none is passed on
    outer = {"MAKEFLAGS", "MAKELEVEL", "MFLAGS", "PYTEST_ARGS", "ARGS", "VENV", "PYTHON"}
    outer |= {"TORCH", "TORCH_INDEX", "EXTRAS"}
    env = {k: v for k, v in os.environ.items() if k not in outer}
    proc = subprocess.run(
        ["make", "--no-print-directory", "-n", *args, f"VENV={venv}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_makefile_creates_then_reuses_the_environment(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    first = make_dry("test", venv=venv)
    assert f"python3 -m venv {venv}" in first
    assert "'torch==2.13.0' --index-url https://download.pytorch.org/whl/cpu" in first
    assert "pip install -q -e '.[dev,sweeps]'" in first
    assert first.strip().endswith(f"{venv}/bin/python -m pytest")
    gpu = make_dry("quickstart", "TORCH_INDEX=https://download.pytorch.org/whl/cu124", venv=venv)
    assert "--index-url https://download.pytorch.org/whl/cu124" in gpu
    assert gpu.strip().endswith("-m enas_lightning experiment=quickstart")
    # once installed (the stamp is newer than setup.cfg and pyproject.toml): only the command
    (venv / "bin").mkdir(parents=True)
    (venv / ".installed").touch()
    again = make_dry("test", "PYTEST_ARGS=-m 'not slow'", venv=venv)
    assert again.strip().splitlines() == [f"{venv}/bin/python -m pytest -m 'not slow'"]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    commands = [ln for ln in ci.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert commands[-1] == "make test"
    readme = (REPO / "README.md").read_text()
    assert re.search(r"^make test\s*(#.*)?$", readme, re.M), "the README's test command"
    assert re.search(r"^make quickstart\s*(#.*)?$", readme, re.M)
    assert "pip install -e '.[dev,sweeps]'" in readme  # the pip commands stay documented


# ------------------------------------------------------------------ 6. the README
def test_readme_quickstart_numbers_match_its_config() -> None:
    import yaml

    readme = (REPO / "README.md").read_text()
    quick = yaml.safe_load((REPO / "enas_lightning/conf/experiment/quickstart.yaml").read_text())
    m = re.search(r"(\d+) search epochs on digits,\s+then (\d+) epochs of final training", readme)
    assert m, "the quickstart's epochs in the README"
    assert (int(m.group(1)), int(m.group(2))) == (
        quick["search"]["epochs"],
        quick["final"]["epochs"],
    )


def test_readme_paths_exist() -> None:
    readme = (REPO / "README.md").read_text()
    paths = set(
        re.findall(
            r"\b((?:docs|docker|experiments|bench|enas_lightning|tests|\.ci)/[\w./-]*\w)", readme
        )
    )
    assert len(paths) > 5
    missing = sorted(p for p in paths if not (REPO / p).exists())
    assert not missing, missing

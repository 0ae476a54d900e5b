"""Sweeps: a Hydra multirun (one run dir and one W&B run per job), an Optuna sweep, and
``experiments/collect_multirun.py`` on a real multirun directory."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests._cli import tiny
from tests._offline import cli_env

ROOT = Path(__file__).resolve().parents[1]
TINY = tiny(
    {
        "trainer.enable_progress_bar": False,
        "controller.num_aggregate": 2,
        "search.derive_samples": 2,
        "search.epochs": 1,
    }
)


def run(cmd: list[str], tmp: Path, timeout: int = 1500) -> subprocess.CompletedProcess:
    p = subprocess.run(
        cmd, cwd=tmp, env=cli_env(tmp), capture_output=True, text=True, timeout=timeout
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p


@pytest.fixture(scope="module")
def multirun_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``-m controller.lr=1e-3,3.5e-3`` with the W&B logger (offline): two jobs."""
    tmp = tmp_path_factory.mktemp("multirun")
    sweep = tmp / "sweep"
    run(
        [
            sys.executable,
            "-m",
            "enas_lightning",
            "-m",
            *TINY,
            "logger=wandb",
            "controller.lr=1e-3,3.5e-3",
            f"hydra.sweep.dir={sweep}",
        ],
        tmp,
    )
    return sweep


@pytest.mark.slow
def test_multirun_one_dir_and_one_wandb_run_per_job(multirun_dir: Path) -> None:
    jobs = sorted(p for p in multirun_dir.iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0", "1"]
    run_ids = set()
    for job, lr in zip(jobs, (1e-3, 3.5e-3), strict=True):
        overrides = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
        # Hydra writes the swept value normalised (1e-3 -> 0.001)
        values = [float(o.split("=", 1)[1]) for o in overrides if o.startswith("controller.lr=")]
        assert values == [pytest.approx(lr)]
        assert (job / "best_arch.json").exists()
        runs = list((job / "wandb").glob("offline-run-*"))
        assert len(runs) == 1, runs  # wandb.finish() after each job: a fresh run per job
        run_ids.add(runs[0].name.rsplit("-", 1)[-1])
    assert len(run_ids) == 2
    assert (multirun_dir / "multirun.yaml").exists()


@pytest.mark.slow
def test_collect_multirun_table_and_plot(multirun_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "collected"
    p = run(
        [
            sys.executable,
            str(ROOT / "experiments" / "collect_multirun.py"),
            str(multirun_dir),
            "--out",
            str(out),
        ],
        tmp_path,
    )
    with (out / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["job"] for r in rows] == ["0", "1"]
    # the varying override has a column
    assert [float(r["controller.lr"]) for r in rows] == [pytest.approx(1e-3), pytest.approx(3.5e-3)]
    for r in rows:
        assert 0.0 <= float(r["val_acc"]) <= 1.0
        assert float(r["controller_mean_val_acc"]) >= 0.0
        assert float(r["uniform_mean_val_acc"]) >= 0.0
        assert float(r["wall_s"]) > 0
        assert "dataset=fake" in r["overrides"]
    md = (out / "results.md").read_text().splitlines()
    assert md[0].startswith("| job | controller.lr | val_acc")
    assert len(md) == 2 + 2
    assert (out / "results.png").read_bytes()[:4] == b"\x89PNG"
    assert "results.csv" in p.stdout


def test_collect_multirun_rejects_empty_dir(tmp_path: Path) -> None:
    p = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "collect_multirun.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        env=cli_env(tmp_path),
    )
    assert p.returncode == 2 and "no job directories" in p.stderr


@pytest.mark.slow
def test_optuna_sweep_two_trials(tmp_path: Path) -> None:
    sweep = tmp_path / "optuna"
    run(
        [
            sys.executable,
            "-m",
            "enas_lightning",
            "hparams_search=optuna",
            *TINY,
            "logger=none",
            "hydra.sweeper.n_trials=2",
            f"hydra.sweep.dir={sweep}",
        ],
        tmp_path,
    )
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert jobs == ["0", "1"]
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert result["name"] == "optuna"
    assert 0.0 <= result["best_value"] <= 1.0
    assert set(result["best_params"]) == {
        "controller.lr",
        "controller.entropy_weight",
        "controller.tanh_constant",
    }
    for j in jobs:
        overrides = yaml.safe_load((sweep / j / ".hydra" / "overrides.yaml").read_text())
        assert any(o.startswith("controller.lr=") for o in overrides)
        assert (sweep / j / "best_arch.json").exists()

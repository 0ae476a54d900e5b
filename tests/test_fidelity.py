"""task=fidelity: the rank statistics against scipy, the bootstrap, the task end to end with resume."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from enas_lightning.fidelity.stats import (
    average_ranks,
    bootstrap,
    kendall_tau_b,
    spearman_rho,
    top1_regret,
)
from tests._cli import enas, tiny

REPO = Path(__file__).resolve().parents[1]

# A fixed table with ties in both columns (shared-weight score, standalone accuracy).
SHARED = [0.50, 0.62, 0.62, 0.41, 0.70, 0.55, 0.55, 0.55, 0.33, 0.70]
STANDALONE = [0.80, 0.85, 0.83, 0.80, 0.90, 0.79, 0.86, 0.80, 0.70, 0.84]


def test_average_ranks_match_scipy() -> None:
    np.testing.assert_allclose(average_ranks(SHARED), scipy_stats.rankdata(SHARED))


def test_kendall_tau_b_matches_scipy_with_ties() -> None:
    expected = scipy_stats.kendalltau(SHARED, STANDALONE).statistic  # tau-b by default
    assert kendall_tau_b(SHARED, STANDALONE) == pytest.approx(expected, abs=1e-12)
    # no ties, and a perfect inversion
    x = [0.1, 0.4, 0.2, 0.9, 0.5]
    assert kendall_tau_b(x, [3, 1, 2, 5, 4]) == pytest.approx(
        scipy_stats.kendalltau(x, [3, 1, 2, 5, 4]).statistic
    )
    assert kendall_tau_b(x, [-v for v in x]) == pytest.approx(-1.0)


def test_spearman_rho_matches_scipy_with_ties() -> None:
    expected = scipy_stats.spearmanr(SHARED, STANDALONE).statistic
    assert spearman_rho(SHARED, STANDALONE) == pytest.approx(expected, abs=1e-12)


def test_constant_column_has_no_correlation() -> None:
    assert np.isnan(kendall_tau_b([1, 1, 1], [1, 2, 3]))
    assert np.isnan(spearman_rho([1, 2, 3], [5, 5, 5]))


def test_top1_regret() -> None:
    # the best shared score (0.70) is tied between 0.90 and 0.84 standalone: mean 0.87
    assert top1_regret(SHARED, STANDALONE) == pytest.approx(0.90 - 0.87)
    assert top1_regret([0.1, 0.3, 0.2], [0.5, 0.7, 0.6]) == 0.0
    assert top1_regret([0.1, 0.3, 0.2], [0.9, 0.7, 0.6]) == pytest.approx(0.2)


def noisy_table(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` architectures whose standalone accuracy follows the shared score plus noise."""
    rng = np.random.default_rng(seed)
    shared = rng.uniform(0.3, 0.7, n)
    return shared, shared + rng.normal(0, 0.08, n)


@pytest.mark.parametrize("statistic", [kendall_tau_b, spearman_rho])
def test_bootstrap_interval_contains_estimate_and_narrows(statistic) -> None:
    widths = []
    for n in (8, 32, 128):
        x, y = noisy_table(n, seed=n)
        ci = bootstrap(statistic, x, y, samples=1000, confidence=0.95, seed=0)
        assert ci.estimate == pytest.approx(statistic(x, y))
        assert ci.low <= ci.estimate <= ci.high
        assert ci.valid == 1000  # continuous values: every resample of >1 distinct arch counts
        widths.append(ci.high - ci.low)
    assert widths[0] > widths[1] > widths[2]
    # seeded: the same interval again; another seed moves it
    again = bootstrap(statistic, x, y, samples=1000, seed=0)
    other = bootstrap(statistic, x, y, samples=1000, seed=1)
    assert (again.low, again.high) == (ci.low, ci.high)
    assert (other.low, other.high) != (ci.low, ci.high)


def test_bootstrap_skips_undefined_resamples() -> None:
    # two architectures: about half the resamples draw one of them twice (constant columns)
    ci = bootstrap(kendall_tau_b, [0.1, 0.2], [0.3, 0.4], samples=200, seed=0)
    assert 0 < ci.valid < 200 and ci.low == ci.high == 1.0


# --------------------------------------------------------------------------- end to end
SEARCH_CHANGES = {"logger": "none", "trainer.enable_progress_bar": False, "search.epochs": 1}
SEARCH = tiny(SEARCH_CHANGES)
# final training as small as the tiny search; 3 epochs, so that a kill after the first
# epoch's checkpoint lands in the middle of the training (two epochs to go)
FIDELITY = [
    "task=fidelity",
    "trainer=cpu",
    "trainer.enable_progress_bar=false",
    "fidelity.epochs=3",
    "fidelity.bootstrap=200",
    "final.layers=3",
    "final.channels=4",
    "final.batch_size=32",
    "final.aux_weight=0",
]


def cli(args: list[str], env: dict[str, str]):
    proc = enas(args, REPO, env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def kill_when(args: list[str], env: dict[str, str], appears: Path, timeout: float = 600) -> str:
    """Start ``python -m enas_lightning args``; SIGTERM it once ``appears`` exists; its stderr."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "enas_lightning", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + timeout
    while not appears.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, f"finished before {appears} appeared: {proc.stderr.read()[-2000:]}"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    return err


@pytest.mark.slow
def test_fidelity_end_to_end_and_resume(tmp_path: Path, cli_env) -> None:
    """A tiny search; fidelity with K=2; then K=4 in the same directory, killed during the
    third architecture's training; the rerun keeps the first two rows (not retrained), resumes
    the third from its checkpoint, trains the fourth and writes every output."""
    run = tmp_path / "search"
    cli([*SEARCH, f"hydra.run.dir={run}"], cli_env)
    out = tmp_path / "fidelity"
    args = [*FIDELITY, f"fidelity.run={run}", f"hydra.run.dir={out}", "logger=csv"]

    first = cli([*args, "fidelity.num_archs=2"], cli_env)
    rows2 = read_csv(out / "fidelity.csv")
    assert [r["index"] for r in rows2] == ["0", "1"]
    assert [r["source"] for r in rows2] == ["controller", "uniform"]
    assert "Kendall tau" in first.stdout and "Spearman rho" in first.stdout
    metrics_mtime = (out / "archs" / "000" / "metrics.json").stat().st_mtime_ns

    # a rerun in the same directory continues it (resume=true, as for search and final);
    # killed once the third architecture finished its first epoch
    k4 = [*args, "fidelity.num_archs=4", "resume=true"]
    err = kill_when(k4, cli_env, out / "archs" / "002" / "checkpoints" / "last.ckpt")
    assert "interrupted during architecture 3 of 4" in err and "resume=true" in err
    assert read_csv(out / "fidelity.csv") == rows2

    third = cli(k4, cli_env)
    rows4 = read_csv(out / "fidelity.csv")
    assert rows4[:2] == rows2  # kept as saved, shared and standalone accuracy included
    assert [r["source"] for r in rows4] == ["controller", "uniform"] * 2
    assert len({r["arch"] for r in rows4}) == 4
    assert "keeping 2 finished architectures" in third.stdout
    trained = [n for n in range(1, 5) if f"architecture {n}/4 " in third.stdout]
    assert trained == [3, 4]
    assert (out / "archs" / "000" / "metrics.json").stat().st_mtime_ns == metrics_mtime
    assert json.loads((out / "archs" / "002" / "metrics.json").read_text())["epochs"] == 3
    for r in rows4:
        assert 0 <= float(r["shared_acc"]) <= 1 and 0 <= float(r["standalone_acc"]) <= 1
        assert int(r["params"]) > 0 and float(r["seconds"]) > 0
        assert len(r["arch"].split()) == 2 * 3 * 4  # 2 cells x 3 nodes x 4 integers

    summary = json.loads((out / "fidelity.json").read_text())
    assert summary["num_archs"] == 4
    shared = [float(r["shared_acc"]) for r in rows4]
    standalone = [float(r["standalone_acc"]) for r in rows4]
    # the CSV rounds to 6 decimals
    assert summary["top1_regret"] == pytest.approx(top1_regret(shared, standalone), abs=1e-5)
    tau = summary["kendall_tau"]["estimate"]  # null where a column is constant
    expected = kendall_tau_b(shared, standalone)
    assert tau == pytest.approx(expected, abs=1e-9) if tau is not None else np.isnan(expected)
    assert summary["config"]["final"]["epochs"] == 3 and summary["config"]["final"]["layers"] == 3
    assert (out / "fidelity_scatter.png").stat().st_size > 0
    assert str(out / "fidelity.json") in third.stdout.splitlines()[-1]
    assert not (out / "archs" / "002" / "checkpoints").exists()

    # other settings are refused in one line, before anything is written
    refused = enas([*k4, "fidelity.epochs=4"], REPO, cli_env, 300)
    assert refused.returncode == 2
    assert refused.stderr.strip().count("\n") == 0
    assert "fidelity.epochs=4 is not allowed" in refused.stderr
    assert read_csv(out / "fidelity.csv") == rows4


@pytest.mark.parametrize(
    "run, message",
    [
        ("missing", "no such directory"),
        ("not_a_run", "no .hydra/config.yaml"),
        ("no_ckpt", "no checkpoint"),
    ],
)
def test_bad_fidelity_run_is_one_line(run: str, message: str, tmp_path: Path, cli_env) -> None:
    path = tmp_path / run
    if run != "missing":
        path.mkdir()
    if run == "no_ckpt":
        (path / ".hydra").mkdir()
        (path / ".hydra" / "config.yaml").write_text("task: search\n")
    proc = enas(
        ["task=fidelity", f"fidelity.run={path}", f"hydra.run.dir={tmp_path / 'out'}"],
        REPO,
        cli_env,
        120,
    )
    assert proc.returncode == 2
    line = proc.stderr.strip()
    assert "\n" not in line and line.startswith("error: fidelity.run=") and message in line
    assert not (tmp_path / "out").exists()  # refused before Hydra wrote anything


@pytest.mark.parametrize(
    "override, setting",
    [
        ("fidelity.num_archs=1", "fidelity.num_archs"),
        ("fidelity.epochs=0", "fidelity.epochs"),
        ("fidelity.confidence=1.0", "fidelity.confidence"),
        ("fidelity.bootstrap=-1", "fidelity.bootstrap"),
    ],
)
def test_fidelity_settings_are_checked(override: str, setting: str, make_cfg) -> None:
    from enas_lightning.errors import ConfigError
    from enas_lightning.tasks.fidelity import check_fidelity

    with pytest.raises(ConfigError, match=f"^{setting}="):
        check_fidelity(make_cfg(["task=fidelity", override]))


def fake_run(root: Path, task: str, finished: bool = True) -> Path:
    """A run directory with just the files find_search_run looks at."""
    (root / ".hydra").mkdir(parents=True)
    (root / ".hydra" / "config.yaml").write_text(f"task: {task}\n")
    search = root / "search" if task == "pipeline" else root
    (search / "checkpoints").mkdir(parents=True)
    (search / "checkpoints" / "last.ckpt").write_bytes(b"")
    if finished:
        (search / "best_arch.json").write_text("{}")
    return root


def test_find_search_run_layouts(tmp_path: Path) -> None:
    from enas_lightning.errors import ConfigError
    from enas_lightning.fidelity.search_run import find_search_run

    search = fake_run(tmp_path / "s", "search")
    assert find_search_run(str(search)).ckpt == search / "checkpoints" / "last.ckpt"
    pipe = fake_run(tmp_path / "p", "pipeline")
    for given in (pipe, pipe / "search"):  # the pipeline run or its search/ subfolder
        found = find_search_run(str(given))
        assert found.search_dir == pipe / "search"
        assert found.config_file == pipe / ".hydra" / "config.yaml"
    final = fake_run(tmp_path / "f", "final")
    with pytest.raises(ConfigError, match="task=final"):
        find_search_run(str(final))
    unfinished = fake_run(tmp_path / "u", "search", finished=False)
    with pytest.raises(ConfigError, match="did not finish"):
        find_search_run(str(unfinished))
    with pytest.raises(ConfigError, match="^fidelity.run=None"):
        find_search_run(None)


def test_summary_logged_with_scatter_image(tmp_path: Path, make_cfg) -> None:
    """The correlations as scalars and the scatter plot as an image reach TensorBoard."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from enas_lightning.fidelity.plot import plot_fidelity
    from enas_lightning.fidelity.summary import log_summary

    cfg = make_cfg(["logger=tensorboard"])
    png = plot_fidelity(SHARED, STANDALONE, ["controller", "uniform"] * 5, tmp_path / "s.png")
    summary = {
        "kendall_tau": {"estimate": 0.5},
        "spearman_rho": {"estimate": 0.6},
        "top1_regret": 0.03,
        "num_archs": 10,
    }
    log_summary(cfg, tmp_path, summary, png)
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert events.Tags()["images"] == ["fidelity/scatter"]
    assert events.Scalars("fidelity/kendall_tau")[0].value == pytest.approx(0.5)


@pytest.mark.slow
def test_fidelity_macro(tmp_path: Path, cli_env) -> None:
    """Macro: the standalone networks are as deep as the searched architectures."""
    run = tmp_path / "search"
    search = [*tiny(SEARCH_CHANGES, space="macro"), "search_space=macro", "search_space.layers=3"]
    cli([*search, f"hydra.run.dir={run}"], cli_env)
    out = tmp_path / "fidelity"
    fidelity = [a for a in FIDELITY if not a.startswith(("final.layers", "fidelity.epochs"))]
    where = [f"fidelity.run={run}", f"hydra.run.dir={out}", "logger=none"]
    cli([*fidelity, "fidelity.epochs=1", "fidelity.num_archs=2", *where], cli_env)
    rows = read_csv(out / "fidelity.csv")
    assert [r["source"] for r in rows] == ["controller", "uniform"]
    assert all(len(r["arch"].split()) == 1 + 2 + 3 for r in rows)  # op + skips per layer
    summary = json.loads((out / "fidelity.json").read_text())
    assert summary["config"]["final"]["layers"] == 3  # not the search run's final.layers (24)


def test_fidelity_config_takes_the_search_runs_settings(tmp_path: Path, make_cfg) -> None:
    """Final settings come from the search run; final.* on the command line and this
    command's trainer override them; fidelity.epochs is the budget; other rows are refused."""
    from omegaconf import OmegaConf

    from enas_lightning.errors import ConfigError
    from enas_lightning.fidelity.rows import check_settings, row_settings
    from enas_lightning.fidelity.search_run import fidelity_config, find_search_run

    run = fake_run(tmp_path / "run", "search")
    searched = make_cfg(["final.batch_size=17", "final.channels=36", "search.derive_batches=2"])
    OmegaConf.save(searched, run / ".hydra" / "config.yaml")
    given = ["task=fidelity", f"fidelity.run={run}", "fidelity.epochs=3", "final.channels=8"]
    cfg = make_cfg([*given, "trainer.num_threads=2", "fidelity.seed=5"])
    fcfg = fidelity_config(cfg, given, tmp_path / "out")
    assert fcfg.final.batch_size == 17  # the search run's
    assert fcfg.final.channels == 8  # this command's final.*
    assert fcfg.final.epochs == 3 and fcfg.seed == 5
    assert fcfg.trainer.num_threads == 2  # not an override in `given`: this command's trainer
    assert fcfg.search.derive_batches == 0  # the whole validation split
    assert fcfg.task == "fidelity" and fcfg.output_dir == str(tmp_path / "out")

    with pytest.raises(ConfigError, match="^final.epochs=5 .*fidelity.epochs"):
        fidelity_config(make_cfg([*given, "final.epochs=5"]), [*given, "final.epochs=5"], tmp_path)

    found = find_search_run(str(run))
    mine = row_settings(fcfg, found)
    check_settings(mine, mine, tmp_path, str(run))
    lr = [*given, "final.optim.lr_max=0.2"]
    other = row_settings(fidelity_config(make_cfg([*lr, "fidelity.seed=5"]), lr, tmp_path), found)
    # the saved rows were made with lr_max 0.2; this command has the search run's 0.05
    with pytest.raises(
        ConfigError, match=r"^final.optim.lr_max=0.05 .*made with final.optim.lr_max=0.2"
    ):
        check_settings(other, mine, tmp_path, str(run))

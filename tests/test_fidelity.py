"""task=fidelity: the rank statistics against scipy, the bootstrap, the noise ceiling over retrain
seeds, the rows and their resume per (architecture, seed), the task end to end with resume."""

from __future__ import annotations

import csv
import json
import re
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
    bootstrap_rows,
    kendall_tau_b,
    leave_one_out,
    seed_pairs_mean,
    single_seed_mean,
    spearman_rho,
    split_half,
    spread,
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


def test_bootstrap_resamples_architectures_as_before() -> None:
    """bootstrap is bootstrap_rows of the two columns: the same seeded resamples of the pairs
    as a loop over ``rng.integers`` (the intervals of earlier runs do not move)."""
    x, y = noisy_table(20, seed=3)
    rng = np.random.default_rng(7)
    loop = [kendall_tau_b(x[i], y[i]) for i in rng.integers(0, 20, (300, 20))]
    ci = bootstrap(kendall_tau_b, x, y, samples=300, confidence=0.9, seed=7)
    assert (ci.low, ci.high) == tuple(np.quantile(loop, [0.05, 0.95]))
    rows = bootstrap_rows(lambda t: kendall_tau_b(t[:, 0], t[:, 1]), np.c_[x, y], 300, 0.9, 7)
    assert rows == ci


# A hand-made table: 6 architectures (rows), their shared-weight score and their retrained
# accuracy under 3 seeds (columns), with ties.
SEED_SHARED = [0.41, 0.55, 0.38, 0.62, 0.55, 0.47]
SEED_ACCS = [
    [0.80, 0.82, 0.79],
    [0.84, 0.81, 0.86],
    [0.78, 0.80, 0.77],
    [0.85, 0.86, 0.84],
    [0.82, 0.82, 0.85],
    [0.81, 0.79, 0.80],
]


def scipy_pair_mean(stat, accs: np.ndarray) -> float:
    s = accs.shape[1]
    return float(
        np.mean([stat(accs[:, a], accs[:, b]).statistic for a in range(s) for b in range(a + 1, s)])
    )


def test_noise_ceiling_and_single_seed_against_scipy() -> None:
    accs = np.array(SEED_ACCS)
    for ours, theirs in (
        (kendall_tau_b, scipy_stats.kendalltau),
        (spearman_rho, scipy_stats.spearmanr),
    ):
        assert seed_pairs_mean(ours, accs) == pytest.approx(
            scipy_pair_mean(theirs, accs), abs=1e-12
        )
        # two seeds: the one pair's correlation
        assert seed_pairs_mean(ours, accs[:, :2]) == pytest.approx(
            theirs(accs[:, 0], accs[:, 1]).statistic, abs=1e-12
        )
        single = np.mean([theirs(SEED_SHARED, accs[:, s]).statistic for s in range(3)])
        assert single_seed_mean(ours, np.c_[SEED_SHARED, accs]) == pytest.approx(single, abs=1e-12)
    assert np.isnan(seed_pairs_mean(kendall_tau_b, accs[:, :1]))  # one seed: no ceiling
    between, within = spread(accs)
    assert between == pytest.approx(np.std(accs.mean(1), ddof=1))
    assert within == pytest.approx(np.sqrt(np.mean(np.var(accs, axis=1, ddof=1))))


def test_split_half_ceiling_on_a_hand_made_table() -> None:
    """4 seeds: the first two seeds' mean ranks 4 cells 1 < 2 < 3 < 4 and the last two's
    1 < 3 < 2 < 4: one discordant pair of six, tau (5 - 1) / 6."""
    accs = np.array(
        [
            [0.70, 0.72, 0.71, 0.71],  # means 0.710 / 0.710
            [0.74, 0.74, 0.75, 0.77],  # 0.740 / 0.760
            [0.76, 0.78, 0.74, 0.74],  # 0.770 / 0.740
            [0.80, 0.80, 0.79, 0.81],  # 0.800 / 0.800
        ]
    )
    assert split_half(kendall_tau_b, accs) == pytest.approx(4 / 6)
    # two seeds: the one pair's correlation, as seed_pairs_mean
    assert split_half(kendall_tau_b, accs[:, :2]) == seed_pairs_mean(kendall_tau_b, accs[:, :2])
    assert np.isnan(split_half(kendall_tau_b, accs[:, :3]))  # odd: no halves
    assert np.isnan(spread(accs[:, :1])[1])


def test_leave_one_out_ceiling_compares_each_seed_with_the_others_mean() -> None:
    """3 seeds of 3 cells: seed 0 ranks them against the mean of seeds 1 and 2 with one
    discordant pair of three, seeds 1 and 2 agree with their others' means: (1/3 + 1 + 1) / 3."""
    accs = np.array(
        [
            [0.72, 0.70, 0.70],  # others' means: 0.700 / 0.710 / 0.710
            [0.71, 0.75, 0.75],  # 0.750 / 0.730 / 0.730
            [0.80, 0.80, 0.80],  # 0.800 / 0.800 / 0.800
        ]
    )
    assert leave_one_out(kendall_tau_b, accs) == pytest.approx((1 / 3 + 1 + 1) / 3)
    assert np.isnan(leave_one_out(kendall_tau_b, accs[:, :2]))  # the other "mean" is one seed


def seed_rows(accs: list[list[float]], seeds: list[int]) -> list[dict]:
    """The CSV rows of the hand-made table: one per (architecture, seed)."""
    return [
        {
            "index": i,
            "source": ("controller", "uniform")[i % 2],
            "arch": f"arch {i}",
            "seed": seed,
            "shared_acc": SEED_SHARED[i],
            "standalone_acc": acc,
            "params": 100 + i,
            "param_free_share": 0.25 * (i % 3),
            "seconds": 1.0,
        }
        for i, row in enumerate(accs)
        for seed, acc in zip(seeds, row, strict=True)
    ]


def test_summary_of_seed_means_and_ceiling() -> None:
    """The ground truth is the seed mean; the ceiling is seed vs seed, beside the shared tau."""
    from omegaconf import OmegaConf

    from enas_lightning.fidelity.summary import correlation_lines, per_arch, summarize

    fcfg = OmegaConf.create({"fidelity": {"bootstrap": 500, "confidence": 0.9, "seed": 0}})
    seeds = [4, 9, 2]
    rows = seed_rows(SEED_ACCS, seeds)[::-1]  # any order
    archs = per_arch(rows, seeds)
    accs = np.array(SEED_ACCS)
    means = accs.mean(1)
    assert [a["index"] for a in archs] == list(range(6))
    assert [a["standalone_accs"] for a in archs] == SEED_ACCS  # in the order of the seeds
    np.testing.assert_allclose([a["standalone_acc"] for a in archs], means)
    assert archs[1]["seconds"] == 3.0

    s = summarize(archs, seeds, fcfg)
    assert s["retrain_seeds"] == seeds and s["num_archs"] == 6
    assert s["kendall_tau"]["estimate"] == pytest.approx(
        scipy_stats.kendalltau(SEED_SHARED, means).statistic, abs=1e-12
    )
    assert s["spearman_rho"]["estimate"] == pytest.approx(
        scipy_stats.spearmanr(SEED_SHARED, means).statistic, abs=1e-12
    )
    ceiling = s["noise_ceiling"]
    assert ceiling["seed_pairs"] == 3
    assert ceiling["kendall_tau"]["estimate"] == pytest.approx(
        scipy_pair_mean(scipy_stats.kendalltau, accs), abs=1e-12
    )
    assert ceiling["spearman_rho"]["estimate"] == pytest.approx(
        scipy_pair_mean(scipy_stats.spearmanr, accs), abs=1e-12
    )
    for d in (s["kendall_tau"], ceiling["kendall_tau"], s["shared_vs_single_seed"]["kendall_tau"]):
        assert d["ci"][0] <= d["estimate"] <= d["ci"][1]
    assert s["top1_regret"] == pytest.approx(top1_regret(SEED_SHARED, means))
    assert s["best_standalone_acc"] == pytest.approx(means.max())
    assert s["spread"]["ratio"] == pytest.approx(np.divide(*spread(accs)))
    assert s["by_source"]["uniform"]["mean_standalone_acc"] == pytest.approx(means[1::2].mean())
    assert s["by_source"]["controller"]["mean_param_free_share"] == pytest.approx(0.25)
    lines = correlation_lines(s)
    assert lines[0].startswith("Kendall tau ") and "mean of 3 seeds" in lines[0]
    assert "noise ceiling: Kendall tau" in lines[2] and "mean over 3 seed pairs" in lines[2]

    # one seed: today's numbers, no ceiling
    one = summarize(per_arch(seed_rows([[r[0]] for r in SEED_ACCS], [0]), [0]), [0], fcfg)
    assert one["kendall_tau"]["estimate"] == pytest.approx(
        kendall_tau_b(SEED_SHARED, accs[:, 0]), abs=1e-15
    )
    assert one["noise_ceiling"] is None and one["shared_vs_single_seed"] is None
    assert len(correlation_lines(one)) == 2

    with pytest.raises(ValueError, match="architecture 0 has no row for seeds \\[9\\]"):
        per_arch([r for r in rows if (r["index"], r["seed"]) != (0, 9)], seeds)


# --------------------------------------------------------------------------- rows and resume
def micro_candidates(k: int) -> list[tuple[str, object]]:
    from enas_lightning.spaces.micro.arch import MicroArch

    # 2 nodes per cell; node j's op 1 is op (i + j) % 5: distinct architectures
    return [
        (
            ("controller", "uniform")[i % 2],
            MicroArch.from_ints([0, i % 5, 1, 4, 2, 2, 0, 3, 1, 0, 0, 1, 2, 4, 1, 2]),
        )
        for i in range(k)
    ]


def test_rows_resume_per_arch_and_seed(tmp_path: Path, make_cfg) -> None:
    """Saved rows count per (architecture, seed): the rows of other seeds and of architectures
    beyond K stay on file; a table from before the seed column reads as fidelity.seed's."""
    from enas_lightning.errors import ConfigError
    from enas_lightning.fidelity.rows import COLUMNS, Rows, read_rows, write_rows

    ops = ("sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3", "identity")
    cfg = make_cfg(["fidelity.seed=3"])
    cands = micro_candidates(3)
    ints = [" ".join(map(str, a.to_ints(ops))) for _, a in cands]

    def row(i: int, seed: int, acc: float) -> dict:
        return {
            "index": i,
            "source": cands[i][0],
            "arch": ints[i],
            "seed": seed,
            "shared_acc": 0.5,
            "standalone_acc": acc,
            "params": 10,
            "param_free_share": 0.5,
            "seconds": 2.0,
        }

    path = tmp_path / "fidelity.csv"
    write_rows(
        path, [row(0, 3, 0.7), row(0, 4, 0.71), row(1, 3, 0.6), row(2, 3, 0.8), row(1, 9, 0.1)]
    )
    table = Rows.resume(path, cands[:2], ops, [3, 4], cfg)  # K=2, seeds 3 and 4
    assert table.done() == {(0, 3), (0, 4), (1, 3)}
    assert {(r["index"], r["seed"]) for r in table.beyond} == {(2, 3), (1, 9)}
    assert table.shared_acc(1) == 0.5 and table.shared_acc(5) is None
    table.add(row(1, 4, 0.65))
    saved = read_rows(path, 3)
    assert [(r["index"], r["seed"]) for r in saved] == [
        (0, 3),
        (0, 4),
        (1, 3),
        (1, 4),
        (1, 9),
        (2, 3),
    ]
    assert saved[3]["standalone_acc"] == 0.65
    assert Rows.resume(path, cands[:2], ops, [3, 4], cfg).done() == {(0, 3), (0, 4), (1, 3), (1, 4)}

    # a row whose architecture differs from the candidate: other sampling, refused
    with pytest.raises(ConfigError, match="^fidelity.seed=3 .*row 1 differs"):
        Rows.resume(path, [cands[0], cands[2]], ops, [3, 4], cfg)

    # a table written before the seed and param_free_share columns
    old = tmp_path / "old.csv"
    with old.open("w", newline="") as f:
        w = csv.DictWriter(
            f, fieldnames=[c for c in COLUMNS if c not in ("seed", "param_free_share")]
        )
        w.writeheader()
        w.writerow({k: v for k, v in row(0, 3, 0.7).items() if k in w.fieldnames})
    kept = Rows.resume(old, cands[:2], ops, [3, 4], cfg)
    assert kept.done() == {(0, 3)}
    from enas_lightning.spaces import get_space

    assert kept.rows[0]["param_free_share"] == get_space("micro").param_free_share(cands[0][1])


@pytest.mark.parametrize(
    "value, seeds",
    [(None, [7]), (3, [7, 8, 9]), ("[4,2]", [4, 2]), ("[0]", [0])],
)
def test_retrain_seeds(value, seeds: list[int], make_cfg) -> None:
    from enas_lightning.tasks.fidelity import retrain_seeds

    given = [] if value is None else [f"fidelity.retrain_seeds={value}"]
    assert retrain_seeds(make_cfg(["fidelity.seed=7", *given]).fidelity) == seeds


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


def seed_table(rows: list[dict[str, str]]) -> tuple[list[float], np.ndarray]:
    """The CSV's shared scores ``[K]`` and retrained accuracies ``[K, seeds]`` (seeds ascending)."""
    seeds = sorted({int(r["seed"]) for r in rows})
    by = {(int(r["index"]), int(r["seed"])): r for r in rows}
    k = 1 + max(i for i, _ in by)
    shared = [float(by[i, seeds[0]]["shared_acc"]) for i in range(k)]
    return shared, np.array([[float(by[i, s]["standalone_acc"]) for s in seeds] for i in range(k)])


@pytest.mark.slow
def test_fidelity_end_to_end_and_resume(tmp_path: Path, cli_env) -> None:
    """A tiny search; fidelity with K=2 and one retrain seed; then K=4 with retrain_seeds=2 in
    the same directory, killed during the third architecture's first-seed training; the rerun
    keeps the two finished retrains (not redone), resumes the third from its checkpoint, retrains
    the rest seed by seed and reports the noise ceiling beside the shared-weight correlation."""
    from enas_lightning.spaces import get_space

    run = tmp_path / "search"
    cli([*SEARCH, f"hydra.run.dir={run}"], cli_env)
    out = tmp_path / "fidelity"
    args = [*FIDELITY, f"fidelity.run={run}", f"hydra.run.dir={out}", "logger=csv"]

    first = cli([*args, "fidelity.num_archs=2"], cli_env)
    rows2 = read_csv(out / "fidelity.csv")
    assert [(r["index"], r["seed"]) for r in rows2] == [("0", "0"), ("1", "0")]
    assert [r["source"] for r in rows2] == ["controller", "uniform"]
    assert "Kendall tau" in first.stdout and "Spearman rho" in first.stdout
    assert "noise ceiling" not in first.stdout  # one seed: no ceiling
    one = json.loads((out / "fidelity.json").read_text())
    assert one["retrain_seeds"] == [0] and one["noise_ceiling"] is None
    metrics_mtime = (out / "archs" / "000" / "seed_0" / "metrics.json").stat().st_mtime_ns

    # a rerun in the same directory continues it (resume=true, as for search and final);
    # killed once the third architecture finished its first epoch under the first seed
    k4 = [*args, "fidelity.num_archs=4", "fidelity.retrain_seeds=2", "resume=true"]
    err = kill_when(k4, cli_env, out / "archs" / "002" / "seed_0" / "checkpoints" / "last.ckpt")
    assert "interrupted during architecture 3 of 4, seed 0 (1 of 2)" in err
    assert "resume=true" in err
    assert read_csv(out / "fidelity.csv") == rows2

    third = cli(k4, cli_env)
    rows = read_csv(out / "fidelity.csv")
    assert [(int(r["index"]), int(r["seed"])) for r in rows] == [
        (i, s) for i in range(4) for s in (0, 1)
    ]
    assert [r for r in rows if r["seed"] == "0"][:2] == rows2  # kept as saved
    assert "keeping 2 finished retrains" in third.stdout
    trained = re.findall(r"architecture (\d)/4 \(\w+\), seed (\d) \(", third.stdout)
    # seed by seed; the two saved retrains are not redone
    assert trained == [("3", "0"), ("4", "0"), ("1", "1"), ("2", "1"), ("3", "1"), ("4", "1")]
    assert (out / "archs" / "000" / "seed_0" / "metrics.json").stat().st_mtime_ns == metrics_mtime
    resumed = json.loads((out / "archs" / "002" / "seed_0" / "metrics.json").read_text())
    assert resumed["epochs"] == 3
    assert not (out / "archs" / "002" / "seed_0" / "checkpoints").exists()
    micro = get_space("micro")
    ops = ("sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3", "identity")
    for r in rows:
        assert 0 <= float(r["shared_acc"]) <= 1 and 0 <= float(r["standalone_acc"]) <= 1
        assert int(r["params"]) > 0 and float(r["seconds"]) > 0
        assert len(r["arch"].split()) == 2 * 3 * 4  # 2 cells x 3 nodes x 4 integers
        arch = micro.decode([int(v) for v in r["arch"].split()], ops, 3)
        assert float(r["param_free_share"]) == pytest.approx(micro.param_free_share(arch), abs=1e-4)
    assert len({r["arch"] for r in rows}) == 4
    for i in range(4):  # one shared score per architecture, whatever the seed
        assert len({r["shared_acc"] for r in rows if r["index"] == str(i)}) == 1

    summary = json.loads((out / "fidelity.json").read_text())
    assert summary["num_archs"] == 4 and summary["retrain_seeds"] == [0, 1]
    shared, accs = seed_table(rows)
    means = accs.mean(1)
    # the CSV rounds to 6 decimals
    assert summary["top1_regret"] == pytest.approx(top1_regret(shared, means), abs=1e-5)
    for got, expected in (
        (summary["kendall_tau"]["estimate"], kendall_tau_b(shared, means)),
        (summary["noise_ceiling"]["kendall_tau"]["estimate"], kendall_tau_b(*accs.T)),
    ):  # null where a column is constant
        assert got == pytest.approx(expected, abs=1e-9) if got is not None else np.isnan(expected)
    assert summary["noise_ceiling"]["seed_pairs"] == 1
    assert "noise ceiling: Kendall tau" in third.stdout
    assert "shared vs the mean of 2 seeds" in third.stdout
    assert summary["config"]["final"]["epochs"] == 3 and summary["config"]["final"]["layers"] == 3
    assert (out / "fidelity_scatter.png").stat().st_size > 0
    assert (out / "fidelity_cost.png").stat().st_size > 0  # retrained accuracy against params
    assert str(out / "fidelity.json") in third.stdout.splitlines()[-1]
    logged = read_csv(next((out / "logs").rglob("metrics.csv")))
    assert float(logged[-1]["fidelity/retrain_seeds"]) == 2.0

    # other settings are refused in one line, before anything is written
    refused = enas([*k4, "fidelity.epochs=4"], REPO, cli_env, 300)
    assert refused.returncode == 2
    assert refused.stderr.strip().count("\n") == 0
    assert "fidelity.epochs=4 is not allowed" in refused.stderr
    assert read_csv(out / "fidelity.csv") == rows


@pytest.mark.slow
def test_fidelity_retrains_with_each_seed_on_num_threads(
    tmp_path: Path, cli_env, make_cfg, monkeypatch
) -> None:
    """Each retrain runs under its own seed (the list's order) and on trainer.num_threads
    threads, whatever the process had before."""
    import torch

    from enas_lightning.final.module import FinalModule
    from enas_lightning.tasks.fidelity import run_fidelity

    run = tmp_path / "search"
    cli([*SEARCH, f"hydra.run.dir={run}"], cli_env)
    seen: list[tuple[int, int]] = []
    fit_start = FinalModule.on_fit_start

    def spy(self) -> None:
        seen.append((self.seed, torch.get_num_threads()))
        fit_start(self)

    monkeypatch.setattr(FinalModule, "on_fit_start", spy)
    given = [a for a in FIDELITY if not a.startswith(("trainer=", "fidelity.epochs"))]
    given += [
        f"fidelity.run={run}",
        "fidelity.epochs=1",
        "fidelity.num_archs=2",
        "fidelity.retrain_seeds=[5,3]",
        "trainer.num_threads=1",
        "logger=none",
    ]
    cfg = make_cfg(given)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        run_fidelity(cfg, tmp_path / "fidelity", given)
    finally:
        torch.set_num_threads(threads)
    assert seen == [(5, 1), (5, 1), (3, 1), (3, 1)]
    rows = read_csv(tmp_path / "fidelity" / "fidelity.csv")
    assert [(r["index"], r["seed"]) for r in rows] == [
        ("0", "3"),
        ("0", "5"),
        ("1", "3"),
        ("1", "5"),
    ]


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
        ("fidelity.retrain_seeds=0", "fidelity.retrain_seeds"),
        ("fidelity.retrain_seeds=[]", "fidelity.retrain_seeds"),
        ("fidelity.retrain_seeds=[1,1]", "fidelity.retrain_seeds"),
        ("fidelity.retrain_seeds=[1,1.5]", "fidelity.retrain_seeds"),
        ("fidelity.retrain_seeds=two", "fidelity.retrain_seeds"),
        ("fidelity.retrain_seeds=true", "fidelity.retrain_seeds"),
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
    """The correlations and the noise ceiling as scalars and the scatter plot (seed ranges as
    bars) as an image reach TensorBoard."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from enas_lightning.fidelity.plot import plot_fidelity
    from enas_lightning.fidelity.summary import log_summary, per_arch, summarize

    cfg = make_cfg(["logger=tensorboard", "fidelity.bootstrap=50"])
    seeds = [0, 1, 2]
    summary = summarize(per_arch(seed_rows(SEED_ACCS, seeds), seeds), seeds, cfg)
    means = np.mean(SEED_ACCS, 1)
    ranges = [(min(r), max(r)) for r in SEED_ACCS]
    png = plot_fidelity(
        SEED_SHARED, means, ["controller", "uniform"] * 3, tmp_path / "s.png", ranges=ranges
    )
    log_summary(cfg, tmp_path, summary, png)
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert events.Tags()["images"] == ["fidelity/scatter"]
    expected = {
        "fidelity/kendall_tau": summary["kendall_tau"]["estimate"],
        "fidelity/noise_ceiling_kendall_tau": summary["noise_ceiling"]["kendall_tau"]["estimate"],
        "fidelity/single_seed_kendall_tau": summary["shared_vs_single_seed"]["kendall_tau"][
            "estimate"
        ],
        "fidelity/retrain_seeds": 3.0,
        "fidelity/within_arch_seed_sd": summary["spread"]["within_arch_seed_sd"],
    }
    for tag, value in expected.items():
        assert events.Scalars(tag)[0].value == pytest.approx(value, rel=1e-6)


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
    assert all(0 <= float(r["param_free_share"]) <= 1 for r in rows)
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


def test_report_goes_on_without_its_plot_and_full_disk_writes_name_the_file(
    tmp_path: Path, make_cfg, monkeypatch, caplog
) -> None:
    """A scatter plot that cannot be written costs one warning line; the table and the JSON on a
    full disk are one WriteError naming the file, and the earlier file survives."""
    import errno
    import logging
    import os

    from enas_lightning.errors import WriteError
    from enas_lightning.fidelity import plot, rows, summary
    from enas_lightning.fidelity.summary import per_arch, report, summarize, write_summary

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    cfg = make_cfg(["logger=none", "fidelity.bootstrap=50"])
    seeds = [0, 1, 2]
    archs = per_arch(seed_rows(SEED_ACCS, seeds), seeds)
    s = summarize(archs, seeds, cfg)
    monkeypatch.setattr(plot, "plot_fidelity", no_space)
    with caplog.at_level(logging.WARNING, logger="enas_lightning.files"):
        png = report(tmp_path, archs, s, cfg, files=(tmp_path / "a.csv", tmp_path / "b.json"))
    assert png is None
    warned = [r.getMessage() for r in caplog.records if r.name == "enas_lightning.files"]
    assert len(warned) == 1 and summary.PLOT_NAME in warned[0]

    table = tmp_path / "fidelity.csv"
    rows.write_rows(table, seed_rows(SEED_ACCS, seeds))
    before = table.read_text()
    monkeypatch.setattr(os, "replace", no_space)  # the atomic write's last step fails
    with pytest.raises(WriteError, match="fidelity.csv"):
        rows.write_rows(table, seed_rows(SEED_ACCS, seeds)[:2])
    assert table.read_text() == before
    with pytest.raises(WriteError, match="fidelity.json"):
        write_summary(tmp_path, s, cfg)

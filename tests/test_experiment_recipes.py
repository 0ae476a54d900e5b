"""The study recipes' own code: the Fashion-MNIST folder writer and the retrained comparison."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))

import retrained_study  # noqa: E402


def write_clothes(folder: Path, per_class: int) -> None:
    """Files in the npm package's format: ``<label>.json`` = ``{"data": [[784 uint8], ...]}``,
    with an empty row as the package has."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    for label in range(10):
        rows = rng.integers(0, 256, size=(per_class, 784)).tolist()
        (folder / f"{label}.json").write_text(json.dumps({"data": [*rows, []]}))


def test_fashion_mnist_folder_writes_a_class_per_folder_tree(tmp_path: Path) -> None:
    write_clothes(tmp_path / "clothes", per_class=4)
    out = tmp_path / "fm"
    script = REPO / "experiments" / "fashion_mnist_folder.py"
    cmd = [sys.executable, str(script), str(tmp_path / "clothes"), str(out), "--per-class", "3"]
    subprocess.run(cmd, check=True, capture_output=True)
    folders = sorted(p.name for p in out.iterdir())
    assert len(folders) == 10 and folders[0] == "0_tshirt_top" and folders[9] == "9_ankle_boot"
    pngs = list((out / "3_dress").glob("*.png"))
    assert len(pngs) == 3
    with Image.open(pngs[0]) as im:
        assert im.size == (28, 28) and im.mode == "L"
    # never writes into a folder that holds files
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode != 0 and "already holds files" in again.stderr


def test_fashion_mnist_folder_can_leave_out_an_earlier_folders_images(tmp_path: Path) -> None:
    """``--exclude``: an unseen test set holds none of the earlier folder's images, and without it
    the seeded draw is the one it always was."""
    write_clothes(tmp_path / "clothes", per_class=6)
    script = [sys.executable, str(REPO / "experiments" / "fashion_mnist_folder.py")]
    clothes = str(tmp_path / "clothes")
    for out, extra in (("fm", []), ("again", []), ("unseen", ["--exclude", str(tmp_path / "fm")])):
        cmd = [*script, clothes, str(tmp_path / out), "--per-class", "3", *extra]
        subprocess.run(cmd, check=True, capture_output=True)

    def names(out: str) -> set[str]:
        return {p.name for p in (tmp_path / out / "3_dress").glob("*.png")}

    assert names("fm") == names("again") and len(names("unseen")) == 3
    assert not names("fm") & names("unseen")
    cmd = [*script, clothes, str(tmp_path / "more"), "--per-class", "4"]
    done = subprocess.run([*cmd, "--exclude", str(tmp_path / "fm")], capture_output=True, text=True)
    assert done.returncode != 0 and "has only 3 images outside" in done.stderr
    done = subprocess.run(
        [*cmd, "--exclude", str(tmp_path / "nowhere")], capture_output=True, text=True
    )
    assert done.returncode != 0 and "nowhere: not a folder this script wrote" in done.stderr
    assert not (tmp_path / "more").exists()
    # repeated: none of either earlier folder's images (6 a class: 3 + 3 taken, none left)
    two = ["--exclude", str(tmp_path / "fm"), "--exclude", str(tmp_path / "unseen")]
    done = subprocess.run(
        [*script, clothes, str(tmp_path / "rest"), "--per-class", "1", *two],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and "has only 0 images outside" in done.stderr
    assert "unseen" in done.stderr


def test_retest_scores_an_exported_network_as_its_preprocessing_says(tmp_path: Path) -> None:
    """experiments/retest.py: images scaled to [0, 1], normalised by preprocess.json, and the
    accuracy of the exported network's argmax; a regime's rows carry the new accuracies."""
    import retest

    class Brightest(torch.nn.Module):  # class 1 where the normalised mean pixel is above 0
        def forward(self, x):
            m = x.mean((1, 2, 3))
            return torch.stack([-m, m], 1)

    run = tmp_path / "run"
    (run / "export").mkdir(parents=True)
    x = torch.tensor([0, 100, 200, 255], dtype=torch.uint8).view(4, 1, 1, 1).expand(4, 1, 2, 2)
    batch = {"x": {0: torch.export.Dim("batch", min=1, max=64)}}  # as final/export.py
    program = torch.export.export(Brightest(), (x.float(),), dynamic_shapes=batch)
    torch.export.save(program, run / "export/model.pt2")
    prep = {"mean": [150 / 255], "std": [0.5]}
    (run / "export/preprocess.json").write_text(json.dumps(prep))
    # normalised means: below 0, below 0, above 0, above 0
    assert retest.accuracy(run, x.contiguous(), torch.tensor([0, 0, 1, 1])) == 1.0
    assert retest.accuracy(run, x.contiguous(), torch.tensor([0, 1, 1, 0]), batch=3) == 0.5

    regime = {"per_arch": [{"arch": a, "param_free_share": 0.5, "params": 10} for a in (0, 1)]}
    accs = {(0, 0): 0.8, (0, 1): 0.7, (1, 0): 0.6, (1, 1): 0.5}
    rows = retest.regime_rows(regime, accs)
    assert [(r["arch"], r["seed"], r["test_acc"]) for r in rows] == [
        (0, 0, 0.8),
        (0, 1, 0.7),
        (1, 0, 0.6),
        (1, 1, 0.5),
    ]


def test_fashion_mnist_folder_rejects_a_broken_file(tmp_path: Path) -> None:
    write_clothes(tmp_path / "clothes", per_class=2)
    (tmp_path / "clothes" / "4.json").write_text('{"data": [[1, 2, 3]]}')
    script = REPO / "experiments" / "fashion_mnist_folder.py"
    cmd = [sys.executable, str(script), str(tmp_path / "clothes"), str(tmp_path / "fm")]
    cmd += ["--per-class", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode != 0 and "4.json: expected rows of 784 values" in done.stderr


def test_retrained_comparison_intervals() -> None:
    rows = [
        *(
            {"group": "enas", "seed": s, "test_acc": a, "params": 1}
            for s, a in enumerate([0.8, 0.82, 0.81])
        ),
        *(
            {"group": "random search", "seed": s, "test_acc": a, "params": 1}
            for s, a in enumerate([0.79, 0.8, 0.8])
        ),
        *(
            {"group": "uniform", "seed": s, "test_acc": a, "params": 1}
            for s, a in enumerate([0.7, 0.72])
        ),
    ]
    out = retrained_study.compare(rows)
    enas = out["groups"]["enas"]
    assert enas["mean"] == pytest.approx(0.81) and enas["ci95"][0] < 0.81 < enas["ci95"][1]
    paired = out["differences"]["enas - random search (paired by seed)"]
    assert paired["mean"] == pytest.approx(0.0133, abs=1e-4)
    assert paired["per_seed"] == pytest.approx({0: 0.01, 1: 0.02, 2: 0.01})
    welch = out["differences"]["enas - uniform (Welch)"]
    assert welch["mean"] == pytest.approx(0.1) and welch["ci95"][0] < 0.1 < welch["ci95"][1]
    # scipy's Welch test agrees on the interval's half-width via its t statistic
    from scipy import stats

    t = stats.ttest_ind([0.8, 0.82, 0.81], [0.7, 0.72], equal_var=False)
    half = welch["ci95"][1] - welch["mean"]
    se = welch["mean"] / t.statistic
    assert half == pytest.approx(stats.t.ppf(0.975, t.df) * se, rel=1e-6)


def test_regime_normal_depth_cells_are_uniform_cells_of_that_depth() -> None:
    """``regime.py --normal-depth``: every cell has the asked normal depth, the draw is seeded
    per id, a first uniform draw of that depth is kept as it is, and an impossible depth is one
    line naming the option and what is allowed."""
    import regime  # noqa: E402 (experiments/ is on sys.path above)

    uniform, _ = regime.uniform_archs(4, [])
    depth = uniform[3].cells["normal"].depth
    archs, ops = regime.normal_depth_archs([3, 7, 8], [], depth)
    assert archs[3] == uniform[3]  # its first draw already has the depth
    assert {a.cells["normal"].depth for a in archs.values()} == {depth}
    # the reduction cells are not conditioned on: they are still drawn, not all alike
    again, _ = regime.normal_depth_archs([7, 8], [], depth)
    assert again[7] == archs[7] and again[8] == archs[8] and archs[7] != archs[8]
    with pytest.raises(SystemExit, match=r"--normal-depth 9: allowed: 1\.\.4"):
        regime.normal_depth_archs([0], [], 9)
    with pytest.raises(SystemExit, match=r"--normal-depth 0: allowed: 1\.\.4"):
        regime.normal_depth_archs([0], [], 0)


def test_regime_spreads_and_noise_ceiling_on_a_hand_made_table() -> None:
    """experiments/regime.py: the cell spread, the seed spread and the ceiling tau."""
    import regime  # noqa: E402 (experiments/ is on sys.path above)
    from scipy import stats

    table = {0: (0.80, 0.82), 1: (0.75, 0.74), 2: (0.90, 0.86), 3: (0.70, 0.73)}
    loose = {0: 3, 1: 2, 2: 4, 3: 1}
    rows = [
        {
            "arch": a,
            "seed": s,
            "test_acc": acc,
            "params": 1,
            "wall_s": None,
            "param_free_share": a / 4,
            "shape": {
                "normal_loose_ends": loose[a],
                "normal_depth": 5 - loose[a],
                "reduce_depth": 2,  # the same for every cell: no tau
            },
        }
        for a, accs in table.items()
        for s, acc in zip((0, 1), accs, strict=True)
    ]
    out = regime.summarize(rows, [0, 1], n_test=1000, boot=50)
    # the cells' shape against their seed means: means 0.81, 0.745, 0.88, 0.715 order the
    # loose ends 3, 2, 4, 1 exactly, and the depths (5 - loose ends) exactly backwards
    tau, lo, hi = out["shape_vs_acc_tau"]["normal_loose_ends"]
    assert tau == pytest.approx(1.0) and lo <= tau <= hi
    assert out["shape_vs_acc_tau"]["normal_depth"][0] == pytest.approx(-1.0)
    assert "reduce_depth" not in out["shape_vs_acc_tau"]
    assert out["per_arch"][2]["normal_loose_ends"] == 4
    from enas_lightning.arch import parse_ints
    from enas_lightning.spaces.micro.arch import AUTHORS_MICRO_FINAL, MicroArch

    # the authors' published cell: every node of its normal cell reads the cell's inputs only
    shape = regime.cell_shape(MicroArch.from_ints(parse_ints(AUTHORS_MICRO_FINAL)))
    assert shape["normal_depth"] == 1 and shape["normal_loose_ends"] == 5, shape
    from enas_lightning.spaces.macro.arch import AUTHORS_MACRO_FINAL, MacroArch

    # a space without cells reports no shape (and summarize() then no shape taus)
    assert regime.cell_shape(MacroArch.from_ints(parse_ints(AUTHORS_MACRO_FINAL))) == {}
    means = np.array([np.mean(v) for v in table.values()])
    assert out["cell_sd"] == pytest.approx(means.std(ddof=1))
    # pooled within-architecture sd: mean of the per-architecture variances, square-rooted
    seed_var = np.mean([np.var(v, ddof=1) for v in table.values()])
    assert out["seed_sd"] == pytest.approx(seed_var**0.5)
    assert out["ratio_cell_to_seed_sd"] == pytest.approx(means.std(ddof=1) / seed_var**0.5)
    tau = stats.kendalltau([v[0] for v in table.values()], [v[1] for v in table.values()])
    assert out["ceiling_tau"] == pytest.approx(tau.statistic)
    lo, hi = out["ceiling_tau_ci95"]
    assert -1 <= lo <= hi <= 1
    assert "loo_tau" not in out  # two seeds: no mean of the others to compare with
    third = [{**r, "seed": 2, "test_acc": r["test_acc"] + 0.01 * r["arch"]} for r in rows[::2]]
    out3 = regime.summarize(rows + third, [0, 1, 2], n_test=1000, boot=50)
    from enas_lightning.fidelity.stats import kendall_tau_b, leave_one_out

    accs3 = np.array([[*v, v[0] + 0.01 * a] for a, v in table.items()])
    assert out3["loo_tau"] == pytest.approx(leave_one_out(kendall_tau_b, accs3))


def test_levers_table_keeps_earlier_invocations_rows(tmp_path: Path) -> None:
    """experiments/levers.py: a second invocation (another lever) keeps the first one's rows of
    the same regime, replaces its own (lever, seed) rows and drops another regime's."""
    import csv

    import levers

    path = tmp_path / "levers.csv"
    earlier = [
        {"lever": "base", "seed": 0, "regime": "final_a", "pick_acc": 0.8, "greedy_acc": 0.7},
        {"lever": "drop", "seed": 0, "regime": "final_a", "pick_acc": 0.1, "greedy_acc": ""},
        {"lever": "base", "seed": 1, "regime": "final_b", "pick_acc": 0.9, "greedy_acc": 0.6},
    ]
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(earlier[0]))
        w.writeheader()
        w.writerows(earlier)
    new = [{"lever": "drop", "seed": 0, "regime": "final_a", "pick_acc": 0.81}]
    kept = levers.earlier_rows(path, new, "final_a")
    assert [(r["lever"], r["seed"]) for r in kept] == [("base", 0)]
    assert kept[0]["pick_acc"] == 0.8 and kept[0]["greedy_acc"] == 0.7
    assert levers.earlier_rows(tmp_path / "none.csv", new, "final_a") == []


def test_powered_study_reads_picks_and_uniform_cells(tmp_path: Path) -> None:
    """experiments/powered_study.py: one row per search seed (the later row of a seed wins), the
    pick's parameter count from its first retrain, the uniform cells' seed means."""
    import csv

    import powered_study

    path = tmp_path / "levers.csv"
    rows = [
        {"lever": "base", "seed": 0, "regime": "final_a", "pick_acc": 0.70, "pick_pf": 0.5},
        {"lever": "base", "seed": 0, "regime": "final_a", "pick_acc": 0.80, "pick_pf": 0.25},
        {"lever": "base", "seed": 1, "regime": "final_a", "pick_acc": 0.82, "pick_pf": 0.75},
        {"lever": "base", "seed": 2, "regime": "final_b", "pick_acc": 0.99, "pick_pf": 1.0},
        {"lever": "random", "seed": 0, "regime": "final_a", "pick_acc": 0.79, "pick_pf": 0.5},
    ]
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    metrics = tmp_path / "base" / "s1" / "final_a" / "pick_r0" / "metrics.json"
    metrics.parent.mkdir(parents=True)
    metrics.write_text(json.dumps({"params": 1234}))
    enas = powered_study.pick_rows(path, "base", "enas", "final_a")
    assert [(r["seed"], r["test_acc"], r["param_free_share"]) for r in enas] == [
        (0, 0.80, 0.25),
        (1, 0.82, 0.75),
    ]
    assert [r["params"] for r in enas] == [0, 1234]
    assert len(powered_study.pick_rows(path, "base", "enas", None)) == 3
    regime_json = tmp_path / "regime.json"
    cells = [{"arch": i, "mean": 0.7 + i / 100, "param_free_share": 0.5} for i in range(3)]
    regime_json.write_text(json.dumps({"per_arch": cells}))
    uniform = powered_study.uniform_rows([regime_json])
    assert [r["test_acc"] for r in uniform] == [0.7, 0.71, 0.72]
    assert retrained_study.compare(enas + uniform)["differences"]["enas - uniform (Welch)"][
        "mean"
    ] == pytest.approx(0.81 - 0.71)


def test_powered_study_pools_regime_studies_over_chosen_seeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Cells added in a second regime study count beside the first's; --uniform-seeds averages
    each cell over those seeds only; a cell counted twice, another recipe or a missing seed stop
    the recipe with one line naming the setting."""
    import powered_study

    def study(name: str, cells: dict[int, list[float]], seeds: list[int], over: list[str]) -> Path:
        path = tmp_path / f"{name}.json"
        per_arch = [
            {"arch": i, "accs": a, "mean": sum(a) / len(a), "param_free_share": 0.5}
            for i, a in cells.items()
        ]
        path.write_text(json.dumps({"seeds": seeds, "per_arch": per_arch, "overrides": over}))
        return path

    first = study("first", {0: [0.70, 0.72, 0.80], 1: [0.74, 0.76, 0.90]}, [0, 1, 2], ["a=1"])
    more = study("more", {2: [0.60, 0.62]}, [0, 1], ["a=1"])
    rows = powered_study.uniform_rows([first, more], seeds=[0, 1])
    assert [r["seed"] for r in rows] == [0, 1, 2]
    assert [r["test_acc"] for r in rows] == pytest.approx([0.71, 0.75, 0.61])
    assert [r["test_acc"] for r in powered_study.uniform_rows([first])] == pytest.approx(
        [0.74, 0.80]
    )
    with pytest.raises(SystemExit, match="cell 0 is in an earlier study"):
        powered_study.uniform_rows([first, first])
    with pytest.raises(SystemExit, match="not \\['a=1'\\]"):
        powered_study.uniform_rows([first, study("other", {3: [0.5]}, [0], ["a=2"])])
    with pytest.raises(SystemExit, match="--uniform-seeds: .* not \\[2\\]"):
        powered_study.uniform_rows([first, more], seeds=[2])
    argv = ["powered_study.py", "--levers", "l.csv", "--regime", str(first), "--out", "o"]
    monkeypatch.setattr(sys, "argv", [*argv, "--uniform-seeds", "0,a"])
    with pytest.raises(SystemExit) as exit_info:
        powered_study.main()
    assert exit_info.value.code == 2
    assert "--uniform-seeds 0,a: comma-separated integers" in capsys.readouterr().err


def test_shared_rank_statistics_on_a_hand_made_table() -> None:
    """experiments/shared_rank.py: tau and top-1 regret of shared scores against seed means."""
    import shared_rank
    from scipy import stats

    means = [0.80, 0.75, 0.90, 0.70, 0.85]
    scores = [0.5, 0.4, 0.3, 0.2, 0.6]  # the best score goes to the second-best cell
    out = shared_rank.rank_stats(scores, means, boot=50, seed=0)
    assert out["tau"] == pytest.approx(stats.kendalltau(scores, means).statistic)
    assert out["regret"] == pytest.approx(0.90 - 0.85)
    assert -1 <= out["tau_ci95"][0] <= out["tau_ci95"][1] <= 1
    assert shared_rank.lever_and_seed(Path("runs/levers/pfdrop05/s3/search")) == ("pfdrop05", "3")


def test_shared_rank_ensemble_averages_the_runs_ranks() -> None:
    """Two supernets that each swap a different pair of cells rank, on their mean rank, better
    than either does alone."""
    import shared_rank
    from scipy import stats

    means = [0.70, 0.75, 0.80, 0.85, 0.90]
    runs = [
        {"accuracy": {"scores": [0.2, 0.1, 0.3, 0.4, 0.5]}},  # cells 0 and 1 swapped
        {"accuracy": {"scores": [0.1, 0.2, 0.3, 0.5, 0.4]}},  # cells 3 and 4 swapped
    ]
    alone = stats.kendalltau(runs[0]["accuracy"]["scores"], means).statistic
    assert alone == pytest.approx(0.8)
    # mean ranks 1.5, 1.5, 3, 4.5, 4.5: the swaps cancel into ties
    expected = stats.kendalltau([1.5, 1.5, 3, 4.5, 4.5], means).statistic
    assert shared_rank.ensemble_tau(runs, "accuracy", means) == pytest.approx(expected)
    assert expected > alone


def test_shared_rank_rejudges_stored_scores_against_a_regimes_new_means(
    tmp_path: Path, monkeypatch
) -> None:
    """``--scores``: a run's stored scores correlated with the regime's means as they are now
    (more seeds changed the truth's order), without loading any supernet."""
    import shared_rank

    def regime(means: list[float]) -> dict:
        return {
            "archs": 4,
            "seeds": [0, 1, 2, 3],
            "per_arch": [{"arch": i, "mean": m} for i, m in enumerate(means)],
            "ceiling_tau": 0.5,
            "ceiling_tau_ci95": [0.1, 0.9],
            "split_half_tau": 0.7,
            "split_half_tau_ci95": [0.3, 1.0],
        }

    (tmp_path / "regime.json").write_text(json.dumps(regime([0.80, 0.81, 0.83, 0.82])))
    stored = [
        {
            "lever": "pfadj",
            "seed": "0",
            "run": "runs/levers/pfadj/s0/search",
            "variant": "",
            "accuracy": {"tau": 1.0, "scores": [0.1, 0.2, 0.3, 0.4]},  # the old order
            "loss": {"tau": -1.0, "scores": [-0.4, -0.3, -0.2, -0.1]},
        }
    ]
    (tmp_path / "old.json").write_text(json.dumps(stored))
    out = tmp_path / "new.md"
    argv = ["shared_rank.py", "--regime", str(tmp_path), "--out", str(out), "--bootstrap", "20"]
    monkeypatch.setattr(sys, "argv", [*argv, "--scores", str(tmp_path / "old.json")])
    shared_rank.main()
    row = json.loads(out.with_suffix(".json").read_text())[0]
    assert row["accuracy"]["tau"] == pytest.approx(4 / 6)  # one pair of four now discordant
    assert row["archs"] == [0, 1, 2, 3]
    assert "4-seed means" in out.read_text() and "split-half ceiling" in out.read_text()
    # other cells than the regime's: refused, nothing written over
    stored[0]["archs"] = [0, 1, 2, 5]
    (tmp_path / "old.json").write_text(json.dumps(stored))
    with pytest.raises(SystemExit, match="same cells"):
        shared_rank.main()
    assert json.loads(out.with_suffix(".json").read_text())[0]["archs"] == [0, 1, 2, 3]


def test_shared_rank_runs_agreement_and_the_all_runs_row() -> None:
    """Runs that rank the cells alike agree (tau between them) whatever the truth; with more
    than one lever the summary adds a row over all runs."""
    import shared_rank

    a = {"lever": "wu30", "seed": "0", "accuracy": {"tau": 0.0, "regret": 0.0}}
    a["accuracy"]["scores"] = [0.1, 0.2, 0.3, 0.4]
    b = {"lever": "pfadj", "seed": "0", "accuracy": {"tau": 0.0, "regret": 0.0}}
    b["accuracy"]["scores"] = [0.1, 0.2, 0.4, 0.3]  # one pair of six swapped
    for r in (a, b):
        r["loss"] = {**r["accuracy"], "tau_ci95": [0, 0]}
        r["accuracy"]["tau_ci95"] = [0, 0]
    assert shared_rank.runs_agreement([a, b], "accuracy") == pytest.approx(4 / 6)
    regime = {
        "archs": 4,
        "seeds": [0, 1, 2],
        "per_arch": [{"arch": i, "mean": m} for i, m in enumerate([0.4, 0.3, 0.2, 0.1])],
        "ceiling_tau": 0.5,
        "ceiling_tau_ci95": [0.1, 0.9],
        "loo_tau": 0.6,
        "loo_tau_ci95": [0.2, 0.9],
    }
    text = shared_rank.markdown([a, b], regime, "")
    assert "one seed vs the other seeds' mean tau 0.600" in text
    row = next(line for line in text.splitlines() if line.startswith("| all runs | 2 |"))
    assert row.rstrip(" |").endswith("0.667 / 0.667")


def test_shared_rank_val_images_are_normalised_as_the_runs_data(tmp_path: Path) -> None:
    """``--val-images``: every image of a class-per-folder tree, scaled to [0, 1] and normalised
    with the run's training mean and std, labelled by its class folder in sorted order; a tree
    whose class folders are not the run's, with more classes than the run had, or a run of
    non-square images, is refused."""
    from types import SimpleNamespace

    import shared_rank

    for label, grey in enumerate((0, 51, 255)):
        (tmp_path / f"c{label}").mkdir()
        Image.new("L", (4, 4), grey).save(tmp_path / f"c{label}" / "a.png")
    splits = SimpleNamespace(image_shape=(1, 4, 4), num_classes=3, mean=(0.2,), std=(0.5,))
    run_data = tmp_path.parent / f"{tmp_path.name}_run"
    for name in ("c0", "c1", "c2"):
        (run_data / name).mkdir(parents=True)
    dataset = SimpleNamespace(name="image_folder", data_dir=str(run_data))
    module = SimpleNamespace(
        data=SimpleNamespace(splits=splits), cfg=SimpleNamespace(dataset=dataset)
    )
    x, y = shared_rank.normalised_images(module, tmp_path)
    assert x.shape == (3, 1, 4, 4) and x.dtype == torch.float32
    order = y.argsort()
    assert y[order].tolist() == [0, 1, 2]
    assert x[order][:, 0, 0, 0].tolist() == pytest.approx([-0.4, 0.0, 1.6])
    (run_data / "c2").rename(run_data / "c9")  # same count, another class: labels would lie
    with pytest.raises(SystemExit, match=r"class folders \['c0', 'c1', 'c2'\], but the run's"):
        shared_rank.normalised_images(module, tmp_path)
    dataset.name = "digits"
    splits.num_classes = 2
    with pytest.raises(SystemExit, match="more classes than the run's 2"):
        shared_rank.normalised_images(module, tmp_path)
    splits.num_classes, splits.image_shape = 3, (1, 4, 6)
    with pytest.raises(SystemExit, match="only square"):
        shared_rank.normalised_images(module, tmp_path)


def test_cross_regime_compares_two_truths_and_the_supernets_with_each(tmp_path: Path) -> None:
    """experiments/cross_regime.py on hand-made regimes of 4 cells: B's means swap one pair of
    A's; a supernet ranking as A does is 1 against A and 4/6 against B; other cells refused."""
    import cross_regime

    def regime(accs: list[list[float]], ids=(0, 1, 2, 3)) -> dict:
        return {"per_arch": [{"arch": i, "accs": a} for i, a in zip(ids, accs, strict=True)]}

    a = regime([[0.70, 0.72], [0.74, 0.76], [0.78, 0.80], [0.82, 0.84]])
    b = regime([[0.71, 0.71, 0.71], [0.79, 0.79, 0.79], [0.75, 0.75, 0.75], [0.83, 0.83, 0.83]])
    run = {"run": "r", "archs": [0, 1, 2, 3]}
    run["accuracy"] = run["loss"] = {"scores": [0.1, 0.2, 0.3, 0.4]}
    out = cross_regime.compare(a, b, [run, run], boot=20)
    assert out["means_tau"][0] == pytest.approx(4 / 6)
    assert out["one_a_vs_mean_b"] == pytest.approx(4 / 6)  # each of A's seeds has A's order
    assert out["accuracy"]["mean_tau_a"] == pytest.approx(1.0)
    assert out["accuracy"]["pooled_tau_b"][0] == pytest.approx(4 / 6)
    assert "| A's seed means vs B's seed means | 0.667" in cross_regime.markdown(out, ("a", "b"))
    with pytest.raises(SystemExit, match="other cells"):
        cross_regime.compare(a, regime([[0.7]] * 4, ids=(0, 1, 2, 5)), [], boot=20)


def test_cost_demo_table_on_a_hand_made_regime() -> None:
    """experiments/cost_demo.py: the budget is half the uniform cells' mean parameters; each
    pick meets it or not and lies below the retrained uniform front by the accuracy gap at its
    cost; a budgeted search without a pick is a row without numbers."""
    import cost_demo

    ref = {
        "per_arch": [
            {"arch": 0, "params": 1000, "mean": 0.70},
            {"arch": 1, "params": 3000, "mean": 0.80},
            {"arch": 2, "params": 2000, "mean": 0.65},  # dominated by arch 0
        ]
    }
    assert cost_demo.half_mean_params(ref) == 1000
    costs, accs = cost_demo.uniform_front(ref)
    rows = [
        {"kind": "accuracy", "seed": 0, "params": 2500, "pick_acc": 0.72, "pick_accs": "0.7200"},
        {"kind": "budgeted", "seed": 0, "params": 900, "pick_acc": 0.60, "pick_accs": "0.6000"},
        {"kind": "budgeted", "seed": 1, "params": 1000, "pick_acc": 0.75, "pick_accs": "0.7500"},
        {"kind": "budgeted", "seed": 2},  # no candidate within the budget
    ]
    judged = cost_demo.judge(rows, 1000, costs, accs)
    assert [r["meets_budget"] for r in judged] == [False, True, True, None]
    assert judged[0]["gap_to_front"] == pytest.approx(0.70 - 0.72)  # front at 2500: arch 0
    assert judged[1]["gap_to_front"] is None  # cheaper than every uniform cell
    assert judged[2]["gap_to_front"] == pytest.approx(-0.05)  # above the front
    md = cost_demo.markdown(judged, 1000, costs, accs)
    assert "| budgeted | 2 | - | no pick |" in md
    assert "| accuracy | 0 | 2500 | no | 0.7200 | 0.7200 | +-0.0200 |" not in md
    assert "| accuracy | 0 | 2500 | no | 0.7200 | 0.7200 | -0.0200 |" in md
    assert "1000 params -> 0.7000, 3000 params -> 0.8000" in md  # the front, by cost


def test_rederive_candidates_are_the_derivations_not_the_uniform_reference(tmp_path) -> None:
    import rederive

    (tmp_path / "arch_candidates.csv").write_text(
        "rank,source,arc,val_acc\n1,uniform,4 4,0.9\n2,controller,1 2,0.8\n3,greedy,0 0,0.7\n"
    )
    assert rederive.candidates(tmp_path) == ["1 2", "0 0"]


def test_rederive_picks_the_best_mean_rank_over_a_groups_supernets(monkeypatch) -> None:
    """experiments/rederive.py: one run picks its best score (the first on a tie); a group
    scores the union of its runs' candidates on every supernet and picks the best mean rank."""
    import rederive

    cands = {Path("a"): ["x", "y", "z"], Path("b"): ["z", "w"]}
    table = {  # per supernet, per candidate: the score
        Path("a"): {"x": 0.9, "y": 0.9, "z": 0.1, "w": 0.8},
        Path("b"): {"x": 0.2, "y": 0.6, "z": 0.7, "w": 0.5},
    }
    monkeypatch.setattr(rederive, "candidates", lambda run: cands[run])
    monkeypatch.setattr(
        rederive, "scores", lambda run, arcs, *_: ([table[run][a] for a in arcs], arcs)
    )
    assert rederive.pick([Path("a")], "accuracy")["arc"] == "x"  # tied with y, listed first
    assert rederive.pick([Path("b")], "accuracy")["arc"] == "z"
    # union x, y, z, w; ranks on a: 3.5 3.5 1 2, on b: 1 3 4 2 -> means 2.25 3.25 2.5 2
    both = rederive.pick([Path("a"), Path("b")], "accuracy")
    assert both["arc"] == "y" and both["candidates"] == 4


def test_rederive_can_rank_by_the_residual_of_the_parameter_free_line(monkeypatch) -> None:
    """``--param-free-adjust``: the pick is the candidate furthest above the least-squares line
    of score on parameter-free share, not the best score."""
    import rederive

    shares = {"pools": 1.0, "convs": 0.0, "half": 0.5, "above": 0.5}
    table = {"pools": 0.9, "convs": 0.5, "half": 0.7, "above": 0.75}
    monkeypatch.setattr(rederive, "candidates", lambda run: list(table))
    monkeypatch.setattr(rederive, "scores", lambda run, arcs, *_: ([table[a] for a in arcs], arcs))
    monkeypatch.setattr(rederive, "param_free_share", shares.get)
    assert rederive.pick([Path("a")], "accuracy")["arc"] == "pools"
    assert rederive.pick([Path("a")], "accuracy", adjust=True)["arc"] == "above"


def test_few_shot_sub_supernet_trains_only_children_with_its_choice(make_cfg, tmp_path) -> None:
    """experiments/few_shot.py: a sub-supernet's copy trains children whose split decision is
    its choice, so the split slot's other ops keep the shared weights; the supernet is
    untouched; the split sets exactly one decision."""
    import few_shot

    from tests.test_finetune import searched_module

    module, _ = searched_module(make_cfg(["search.child_batches=2"]), tmp_path)
    arch = module.uniform_archs(1, module.generator(3))[0]
    fixed = few_shot.with_op(arch, "normal", 0, 1, "avg_pool_3x3")
    assert few_shot.split_value(fixed, "normal", 0, 1) == "avg_pool_3x3"
    assert fixed.normal.nodes[1:] == arch.normal.nodes[1:] and fixed.reduce == arch.reduce
    assert fixed.normal.nodes[0].inputs == arch.normal.nodes[0].inputs
    assert fixed.normal.nodes[0].ops[0] == arch.normal.nodes[0].ops[0]

    before = {k: v.clone() for k, v in module.supernet.state_dict().items()}
    sub = few_shot.train_copy(module, 12, 0.05, "split-x", ("normal", 0, 0, "sep_conv_5x5"))
    after = module.supernet.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the supernet is untouched
    trained = sub.state_dict()
    assert any(not torch.equal(before[k], trained[k]) for k in before)
    index = module.supernet.cells[0].op_index

    def split_slot(op: str) -> list[str]:
        """The weights of ``op`` at the split (normal cells, node 0, op slot 1), every input's
        copy: ``cells.<cell>.ops.<node>.<slot>.<input copy>.<op index>.<...>``."""
        return [
            n
            for n in before
            if (f := n.split("."))[:5] == ["cells", f[1], "ops", "0", "0"]
            and int(f[1]) not in module.supernet.reductions
            and f[6] == str(index[op])
        ]

    other, chosen = split_slot("sep_conv_3x3"), split_slot("sep_conv_5x5")
    assert other and all(torch.equal(before[n], trained[n]) for n in other)
    assert any(not torch.equal(before[n], trained[n]) for n in chosen)


def test_prune_pairs_runs_by_their_paired_differences() -> None:
    """experiments/prune.py's paired differences: mean and interval, one run said as such (its
    two stages are the package's pruned derivation: tests/test_pruned_derivation.py)."""
    import prune

    assert prune.paired([0.01]) == "+0.0100 (one run)"
    assert prune.paired([0.01, 0.03]).startswith("+0.0200 (")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--keep", "0"], "--keep and --steps: positive integers, got 0 and 1000"),
        (["--retrain-seeds", "0,a"], "--retrain-seeds: a comma-separated list of integers"),
    ],
)
def test_prune_bad_settings_exit_2_with_one_line(
    args: list[str], message: str, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import prune

    monkeypatch.setattr(sys, "argv", ["prune.py", "--out", "o", "--run", "r", *args])
    with pytest.raises(SystemExit) as exit_info:
        prune.main()
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_prune_summary_pairs_with_own_picks_and_compares_with_uniform_cells() -> None:
    """experiments/prune.py's summary line: pruned minus own pick paired by run, and minus the
    uniform cells' mean by Welch's interval, on a hand-made table."""
    import prune

    rows = [
        {"mean": 0.82, "own_accs": [0.81, 0.81], "changed": True},
        {"mean": 0.80, "own_accs": [0.80, 0.80], "changed": False},
        {"mean": 0.84, "own_accs": [0.82, 0.82], "changed": True},
    ]
    for r, pf in zip(rows, (0.5, 0.75, 1.0), strict=True):
        r.update(param_free_share=pf, own_param_free_share=pf)
    uniform = [
        {"group": "uniform", "seed": i, "test_acc": v, "params": 0}
        for i, v in enumerate([0.79, 0.80, 0.81])
    ]
    line = prune.summary("wu30", rows, uniform)
    # differences 0.01, 0, 0.02: mean 0.01, t(2) half-width 4.303 * 0.01 / sqrt(3) = 0.0248
    assert "wu30: pruned picks 0.8200 over 3 runs, param-free share 0.750" in line
    assert "changed 2 of 3" in line
    assert "paired: +0.0100 (-0.0148 .. +0.0348)" in line
    # Welch: 0.82 - 0.80, both variances 0.0004/3 and 0.0001/3
    assert "minus the 3 uniform cells (mean 0.8000, Welch): +0.0200 (" in line
    assert "uniform" not in prune.summary("wu30", rows, [])


def test_greedy_margin_reads_the_last_controller_epoch(tmp_path: Path, capsys) -> None:
    """experiments/greedy_margin.py: the last controller epoch's mean op probabilities, their
    spread across decisions, the top-two margin, the sampled and greedy parameter-free shares."""
    import greedy_margin

    ops = ["sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3", "identity"]
    uniform = {"normal/node0/op1": [0.2] * 5, "normal/node0/op2": [0.2] * 5}
    last = {
        "normal/node0/op1": [0.10, 0.30, 0.31, 0.15, 0.14],
        "normal/node0/op2": [0.12, 0.30, 0.29, 0.15, 0.14],
    }
    history = [
        {"epoch": 0, "op_probs": None, "greedy_arch": None},
        {"epoch": 1, "op_probs": uniform, "greedy_arch": None},
        {"epoch": 2, "op_probs": last, "greedy_arch": {"ints": "0 2 1 2 0 1 1 4"}},
    ]
    row = greedy_margin.margin_row(history, ops)
    assert row is not None and row["epoch"] == 3
    assert row["mean"]["avg_pool_3x3"] == pytest.approx(0.30)
    assert row["spread"] == pytest.approx(0.02) and row["margin"] == pytest.approx(0.0)
    assert row["sampled_share"] == pytest.approx(0.30 + 0.15 + 0.14)
    assert row["greedy_share"] == 0.75  # avg_pool, avg_pool, sep_conv_5x5, identity
    assert greedy_margin.margin_row(history[:1], ops) is None
    run = tmp_path / "run" / "search"
    run.mkdir(parents=True)
    (run / "history.json").write_text(json.dumps(history))
    greedy_margin.main([str(tmp_path)])
    out = capsys.readouterr().out
    assert "| 3 | 0.110 / 0.300 / 0.300 / 0.150 / 0.140 | 0.020 | 0.000 | 0.590 | 0.75 |" in out


def test_controller_context_targets_and_a_short_run() -> None:
    """experiments/controller_context.py: each reward's target op per decision, and a few
    updates of the quickstart's controller on the by-cell reward move it towards its targets."""
    import controller_context as cc

    cfg = cc.quickstart_cfg([])
    ops = list(cfg.search_space.ops)
    by_cell = cc.targets("by cell", ops, 4)
    assert by_cell.shape == (2, 4, 2)
    assert (by_cell[0] == ops.index("sep_conv_3x3")).all()
    assert (by_cell[1] == ops.index("max_pool_3x3")).all()
    assert cc.targets("by node", ops, 4)[:, 3].tolist() == [[3, 3], [3, 3]]
    row = cc.run(cfg, "by cell", seed=0, updates=40, noise=0.0)
    assert row["after"] > row["before"] and 0 <= row["greedy_right"] <= 16


def test_reward_context_finds_an_op_that_pays_in_one_cell_only(tmp_path: Path, capsys) -> None:
    """experiments/reward_context.py: a reward that rises with avg_pool in the normal cell
    alone gives that effect in N, none in R and a large Wald statistic; a reward that treats
    both cells alike gives a small one."""
    import reward_context

    rng = np.random.default_rng(0)
    n, nodes = 2000, 4
    arcs = np.zeros((n, 2 * nodes * 4), dtype=int)
    arcs[:, 1::2] = rng.integers(0, 5, size=(n, 2 * nodes * 2))  # ops; inputs stay 0
    epoch = np.repeat(np.arange(4), n // 4)
    half = arcs.shape[1] // 2
    normal_avg = (arcs[:, :half][:, 1::2] == 2).sum(1)
    reduce_avg = (arcs[:, half:][:, 1::2] == 2).sum(1)
    noise = 0.01 * rng.standard_normal(n)
    one_cell = reward_context.fit(epoch, 0.1 * epoch + 0.02 * normal_avg + noise, arcs)
    assert one_cell["normal"][1] == pytest.approx(0.02, abs=0.002)  # avg_pool is op 2
    assert abs(one_cell["reduce"][1]) < 0.002 and one_cell["wald"] > 100
    alike = reward_context.fit(epoch, 0.02 * (normal_avg + reduce_avg) + noise, arcs)
    assert alike["wald"] < 18.47  # chi2(4) at 0.1%

    run = tmp_path / "run"
    run.mkdir()
    with (run / "sampled_archs.csv").open("w") as f:
        f.write("epoch,update,arc,reward\n")
        for e, a, r in zip(epoch, arcs, 0.02 * normal_avg + noise, strict=True):
            f.write(f"{e},0,{' '.join(map(str, a))},{r:.6f}\n")
    reward_context.main([str(tmp_path)])
    out = capsys.readouterr().out
    assert "| 2000 |" in out and out.count("\n") == 3


def test_controller_rank_splits_the_log_probability_into_wiring_and_ops() -> None:
    """experiments/controller_rank.py: under a uniform controller the wiring and op parts are
    the closed forms; moving only the op logits' bias changes the op part and not the wiring."""
    import math

    import controller_rank

    from enas_lightning.spaces.micro.controller import MicroController

    ops = ("sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3", "identity")
    nodes = 4
    sampler = MicroController(ops, num_nodes=nodes)
    archs = sampler.sample_archs(6, torch.Generator().manual_seed(0))
    uniform = controller_rank.log_probs(MicroController(ops, num_nodes=nodes, uniform=True), archs)
    wiring = -2 * 2 * sum(math.log(j + 2) for j in range(nodes))  # 2 cells x 2 inputs per node
    assert uniform["wiring"] == pytest.approx([wiring] * 6, abs=1e-4)
    assert uniform["ops"] == pytest.approx([-2 * 2 * nodes * math.log(len(ops))] * 6, abs=1e-4)

    before = controller_rank.log_probs(sampler, archs)
    assert np.allclose(np.add(before["wiring"], before["ops"]), before["whole"], atol=1e-5)
    with torch.no_grad():
        sampler.b_soft[0, ops.index("identity")] += 3.0  # only the op decisions' logits move
    after = controller_rank.log_probs(sampler, archs)
    assert after["wiring"] == pytest.approx(before["wiring"], abs=1e-5)
    assert not np.allclose(after["ops"], before["ops"], atol=1e-3)


def test_controller_rank_mean_difference_and_a_missing_arch_file(tmp_path: Path) -> None:
    """The mean over searches of tau(wiring) − tau(accuracy) on a hand-made table, with its
    bootstrap interval; a regime without the named arch files is one line and exit."""
    import controller_rank

    means = [0.80, 0.81, 0.82, 0.83, 0.84, 0.85]
    rising, falling = [1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1]
    rows = [{"wiring": rising, "accuracy": falling}, {"wiring": rising, "accuracy": rising}]
    est, low, high = controller_rank.mean_difference(rows, means, "wiring", "accuracy", boot=50)
    assert est == pytest.approx(1.0)  # (1 - (-1)) and (1 - 1), averaged
    assert low <= est <= high
    (tmp_path / "regime.json").write_text(json.dumps({"per_arch": [{"arch": 7, "mean": 0.8}]}))
    with pytest.raises(SystemExit, match=r"--arch-prefix uniform: no file .*uniform_7\.json"):
        controller_rank.main(["--regime", str(tmp_path), "--out", str(tmp_path / "o.md"), "x"])

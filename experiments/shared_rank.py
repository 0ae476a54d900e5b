"""Does a search's supernet rank retrained cells? Shared-weight scores of a fixed, retrained set.

``task=fidelity`` samples and retrains K architectures per search run: about half an hour per
run here, too much for every lever and seed of issue 20. This recipe reuses the cells that
``experiments/regime.py`` already retrained (uniform cells, every one with every seed): it loads
each finished search run's shared weights, scores those cells on the whole validation split the
way the derivation scores (accuracy and minus the cross-entropy), and correlates the scores with
the cells' retrained seed means. Beside each Kendall tau it prints the noise ceiling of the same
cells (the tau between two retrain seeds, from ``regime.json``): no ranking can be expected to do
better. Top-1 regret is the best retrained mean minus that of the cell with the best score.

    python experiments/shared_rank.py --regime runs/regime --out runs/shared_rank.md \\
        runs/levers/base/s0/search runs/levers/base/s1/search ...

Per lever (and over all runs), the summary also ranks the cells by their mean rank over the
runs (several supernets): how far averaging away the supernets' training noise would lift the
ranking; and the mean tau between the runs' own rankings: supernets that agree with each other
more than their mean rank agrees with retraining share a bias. The per-run scores are kept in
``<out>.json``.

A run's lever and seed are read from its path (``<lever>/s<seed>/search``). ``--set KEY=VALUE``
changes a setting of the loaded runs' configs before scoring (a derivation setting, e.g. the
per-candidate fine-tuning of issue 20), and names the table's variant.

``--scores <earlier out>.json`` (repeatable) takes the runs' stored scores instead of scoring
again, and correlates them with ``--regime``'s means as they are now: after more retrain seeds
were added to the same cells, the rankings are judged against the better truth in seconds.

    python experiments/shared_rank.py --regime runs/regime --out runs/shared_rank_4seeds.md \\
        --scores runs/shared_rank.json
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from retest import load_images

from enas_lightning.arch.io import load_arch
from enas_lightning.config import run_config
from enas_lightning.data.datasets import to_network_input
from enas_lightning.data.datasets.image_folder import class_folders
from enas_lightning.fidelity.search_run import find_search_run, load_search_module
from enas_lightning.fidelity.stats import average_ranks, bootstrap_rows, kendall_tau_b, top1_regret
from enas_lightning.rewards import get_reward
from enas_lightning.search.module import SearchModule

REWARDS = ("accuracy", "loss")


def lever_and_seed(search_dir: Path) -> tuple[str, str]:
    """``(lever, seed)`` from ``<lever>/s<seed>/search`` (the layout of experiments/levers.py)."""
    seed_dir = search_dir.parent
    return seed_dir.parent.name, seed_dir.name.removeprefix("s")


def load_run(
    search_dir: Path, sets: list[str] = (), val_images: Path | None = None
) -> SearchModule:
    """``search_dir``'s search module with its shared weights, set to score on the whole
    validation split (as task=fidelity scores), with ``sets`` (``KEY=VALUE``) applied.

    ``val_images`` (a class-per-folder tree) replaces the validation split by all its images,
    normalised with the run's training statistics: the same supernet scored on a larger sample.
    """
    found = find_search_run(str(search_dir))
    cfg = run_config(OmegaConf.load(found.config_file))
    cfg.search.derive_batches = 0
    module = load_search_module(cfg, found, torch.device("cpu"))
    for item in sets:  # after loading: a derivation setting is no reason to refuse the checkpoint
        key, _, value = item.partition("=")
        OmegaConf.update(module.cfg, key, OmegaConf.create({"v": value}).v, merge=False)
    if val_images is not None:
        module.data.val_x, module.data.val_y = normalised_images(module, val_images)
    return module


def normalised_images(module: SearchModule, folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image of ``folder`` as ``module``'s data set would feed it: float ``[N, C, H, W]``
    normalised by the run's training mean and std, labels ``[N]``. A label is a class folder's
    place in name order, so the folders must be the run's: an image_folder run's class names
    are compared (when its data directory is still there), any run's class count."""
    splits = module.data.splits
    c, h, w = splits.image_shape
    if h != w:
        raise SystemExit(f"--val-images: the run's images are {h}x{w}; only square ones load here")
    data = module.cfg.dataset
    if data.name == "image_folder" and Path(data.data_dir).is_dir():
        theirs, ours = class_folders(Path(data.data_dir)), class_folders(folder)
        if theirs != ours:
            raise SystemExit(
                f"--val-images {folder}: class folders {ours}, but the run's data_dir "
                f"{data.data_dir} has {theirs} (labels would not match)"
            )
    x, y = load_images(folder, c, h)
    if int(y.max()) + 1 > splits.num_classes:
        raise SystemExit(f"--val-images {folder}: more classes than the run's {splits.num_classes}")
    return to_network_input(x, splits.mean, splits.std), y


def score_run(
    search_dir: Path, arch_files: list[Path], sets: list[str], val_images: Path | None = None
) -> dict[str, list[float]]:
    """Each reward's shared-weight score of every arch on ``search_dir``'s supernet."""
    module = load_run(search_dir, sets, val_images)
    ss = module.cfg.search_space
    return score_module(module, [load_arch(f, ss.name, tuple(ss.ops)) for f in arch_files])


def score_module(module: SearchModule, archs: list) -> dict[str, list[float]]:
    """Each reward's shared-weight score of every arch on ``module``'s supernet."""
    return {name: module.score(archs, get_reward(name)).tolist() for name in REWARDS}


def rank_stats(scores: list[float], means: list[float], boot: int, seed: int) -> dict:
    """Kendall tau (with its 95% bootstrap interval over cells) and top-1 regret."""
    rows = np.column_stack([scores, means])
    interval = bootstrap_rows(
        lambda r: kendall_tau_b(r[:, 0], r[:, 1]), rows, samples=boot, confidence=0.95, seed=seed
    )
    return {
        "tau": kendall_tau_b(scores, means),
        "tau_ci95": [interval.low, interval.high],
        "regret": top1_regret(scores, means),
    }


def judge(row: dict, scores: dict[str, list[float]], means: list[float], boot: int) -> dict:
    """``row`` with each reward's :func:`rank_stats` against ``means`` and its ``scores``
    (freshly scored or stored by an earlier invocation: judged alike)."""
    for name in REWARDS:
        row[name] = {**rank_stats(scores[name], means, boot, seed=0), "scores": scores[name]}
    return row


def ensemble_tau(runs: list[dict], reward: str, means: list[float]) -> float:
    """Kendall tau of the cells' mean rank over ``runs`` (several supernets of one lever)
    against the retrained means: what averaging away the supernets' training noise buys."""
    ranks = np.mean([average_ranks(r[reward]["scores"]) for r in runs], axis=0)
    return kendall_tau_b(ranks, means)


def runs_agreement(runs: list[dict], reward: str) -> float:
    """Mean Kendall tau between every two runs' scores: how alike the supernets rank the cells.
    Beside :func:`ensemble_tau`: runs that agree with each other more than their mean rank
    agrees with the retrained cells share a bias that more supernets do not average away."""
    pairs = [
        kendall_tau_b(a[reward]["scores"], b[reward]["scores"])
        for i, a in enumerate(runs)
        for b in runs[i + 1 :]
    ]
    return statistics.mean(pairs) if pairs else float("nan")


def markdown(rows: list[dict], regime: dict, variant: str) -> str:
    ceiling = regime["ceiling_tau"]
    low, high = regime["ceiling_tau_ci95"]
    seeds = regime.get("seeds", [])
    half = ""
    if "split_half_tau" in regime:
        h_lo, h_hi = regime["split_half_tau_ci95"]
        half = (
            f"; split-half ceiling ({len(seeds) // 2}-seed mean vs {len(seeds) // 2}-seed mean) "
            f"tau {regime['split_half_tau']:.3f} [{h_lo:.3f}, {h_hi:.3f}]"
        )
    if "loo_tau" in regime:
        half += f"; one seed vs the other seeds' mean tau {regime['loo_tau']:.3f}"
    lines = [
        f"Shared-weight ranking of {regime['archs']} retrained uniform cells"
        + (f" ({variant})" if variant else "")
        + f" against their {len(seeds)}-seed means"
        + f"; noise ceiling (seed vs seed) tau {ceiling:.3f} [{low:.3f}, {high:.3f}]{half}",
        "",
        "| lever | seed | tau (accuracy) [95%] | regret (accuracy) | tau (loss) [95%] "
        "| regret (loss) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        a, lo = r["accuracy"], r["loss"]
        lines.append(
            f"| {r['lever']} | {r['seed']} | {a['tau']:.3f} [{a['tau_ci95'][0]:.2f}, "
            f"{a['tau_ci95'][1]:.2f}] | {a['regret']:.4f} | {lo['tau']:.3f} "
            f"[{lo['tau_ci95'][0]:.2f}, {lo['tau_ci95'][1]:.2f}] | {lo['regret']:.4f} |"
        )
    means = [c["mean"] for c in regime["per_arch"]]
    lines += [
        "",
        "| lever | seeds | mean tau (accuracy) | mean tau (loss) | mean regret (acc) "
        "| tau of the seeds' mean rank (accuracy / loss) | tau between runs (accuracy / loss) |",
        "|---|---|---|---|---|---|---|",
    ]
    levers = list(dict.fromkeys(r["lever"] for r in rows))
    groups = [(lever, [r for r in rows if r["lever"] == lever]) for lever in levers]
    if len(levers) > 1:
        groups.append(("all runs", rows))
    for lever, mine in groups:
        ensemble = agree = "-"
        if len(mine) > 1:
            ensemble = " / ".join(f"{ensemble_tau(mine, n, means):.3f}" for n in REWARDS)
            agree = " / ".join(f"{runs_agreement(mine, n):.3f}" for n in REWARDS)
        lines.append(
            f"| {lever} | {len(mine)} | "
            f"{statistics.mean(r['accuracy']['tau'] for r in mine):.3f} | "
            f"{statistics.mean(r['loss']['tau'] for r in mine):.3f} | "
            f"{statistics.mean(r['accuracy']['regret'] for r in mine):.4f} | {ensemble} | "
            f"{agree} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--regime", type=Path, required=True, help="experiments/regime.py's out")
    parser.add_argument("--out", type=Path, required=True, help="the Markdown table to write")
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE for the scoring")
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("runs", type=Path, nargs="*", help="finished search run directories")
    parser.add_argument(
        "--scores",
        type=Path,
        action="append",
        default=[],
        help="an earlier <out>.json: its runs' stored scores, not scored again",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: one core)")
    parser.add_argument(
        "--val-images",
        type=Path,
        help="score on every image of this class-per-folder tree instead of the validation split",
    )
    args = parser.parse_args()
    if not args.runs and not args.scores:
        parser.error("give search run directories, or --scores <earlier out>.json")
    torch.set_num_threads(args.threads)

    regime = json.loads((args.regime / "regime.json").read_text())
    cells = regime["per_arch"]
    arch_files = [args.regime / "archs" / f"uniform_{c['arch']}.json" for c in cells]
    means = [c["mean"] for c in cells]
    variant = " ".join(args.set + ([f"val-images={args.val_images}"] if args.val_images else []))
    row_archs = [c["arch"] for c in cells]
    rows = []
    for path in args.scores:
        for old in json.loads(path.read_text()):
            row = {k: old[k] for k in ("lever", "seed", "run", "variant")}
            if old.get("archs", row_archs) != row_archs:  # files before the ids were kept: count
                raise SystemExit(
                    f"--scores {path}: scored cells {old['archs']}, but --regime {args.regime} "
                    f"has cells {row_archs} (both must be the same cells)"
                )
            row["archs"] = row_archs
            scores = {name: old[name]["scores"] for name in REWARDS}
            for name in REWARDS:
                if len(scores[name]) != len(means):
                    raise SystemExit(
                        f"--scores {path}: {len(scores[name])} scores per run, but --regime "
                        f"{args.regime} has {len(means)} cells (both must be the same cells)"
                    )
            rows.append(judge(row, scores, means, args.bootstrap))
    variant = variant or " ".join(dict.fromkeys(r["variant"] for r in rows if r["variant"]))
    for run in args.runs:
        lever, seed = lever_and_seed(run)
        scores = score_run(run, arch_files, args.set, args.val_images)
        row = {"lever": lever, "seed": seed, "run": str(run), "variant": variant}
        row = judge({**row, "archs": row_archs}, scores, means, args.bootstrap)
        rows.append(row)
        print(
            f"{lever} s{seed}: tau acc {row['accuracy']['tau']:.3f}, loss {row['loss']['tau']:.3f}",
            flush=True,
        )
    text = markdown(rows, regime, variant)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    # every run's scores, so that other summaries need no second scoring
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    with args.out.with_suffix(".csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["lever", "seed", "variant", "reward", "tau", "tau_low", "tau_high", "regret"])
        for r in rows:
            for name in REWARDS:
                s = r[name]
                w.writerow(
                    [r["lever"], r["seed"], variant, name, s["tau"], *s["tau_ci95"], s["regret"]]
                )


if __name__ == "__main__":
    main()

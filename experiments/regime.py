"""Can retraining tell cells apart? Spread across cells against seed-to-seed spread.

No estimator can rank cells that retraining itself cannot tell apart (issue 20). This recipe
retrains ``--archs`` architectures sampled uniformly from the configured space (architecture
``i`` seeded with ``i``, as ``retrained_study.py`` samples them), each with every seed of
``--seeds``, with the quickstart's final training plus the overrides (the *regime*: data set,
width, depth, epochs). Each run is ``task=final`` in ``<out>/a<i>_s<seed>``; a run with a
``metrics.json`` is skipped, so a rerun resumes. It prints and writes ``<out>/regime.json`` and
``<out>/regime.md``:

- the test accuracy of every (architecture, seed) and each architecture's seed mean;
- the **cell spread**: the standard deviation across architectures of their seed means;
- the **seed spread**: the pooled within-architecture standard deviation across seeds;
- their ratio. Of the variance of one retrained accuracy, ``cell^2`` comes from the architecture
  and ``seed^2`` from the seed; the cell spread still holds ``seed^2 / S`` of seed noise, which
  is subtracted in ``cell_var_corrected``;
- the **noise ceiling**: Kendall's tau between two seeds' retrained accuracies over the
  architectures (the mean over seed pairs with more than two seeds), with a percentile
  bootstrap interval over architectures: no estimator can be expected to rank better;
- with 4 or more (an even number of) seeds, the **split-half ceiling**: tau between the mean of
  the first half of the seeds and that of the second (for a truth of half-as-many-seed means);
- with 3 or more seeds, the **leave-one-out ceiling**: tau between one seed and the mean of the
  others, averaged over seeds (what one retraining does against a seed mean, beside which a
  supernet's tau against the seed means is read);
- each architecture's parameter-free share (ops without weights: identity and the pools);
- for a cell space, each cell's loose-end count and depth and their Kendall tau against the seed
  means, with bootstrap intervals (``shape_vs_acc_tau``): the normal cell's shape ordered the
  retrained cells as well as the best supernet did (experiments/RESULTS.md, issue 20, sixteenth
  round).

``--normal-depth D`` retrains uniform cells conditioned on the normal cell's depth instead
(:func:`normal_depth_archs`): does a shape, e.g. the wide, shallow normal cell the ENAS
controller drifts to, retrain better than the uniform cells? (It did, by +0.0097 with a 95%
interval of +0.0054..+0.0140: experiments/RESULTS.md, issue 20, seventeenth round.)

    python experiments/regime.py --out runs/regime_a --archs 10 --seeds 0,1 \\
        dataset=image_folder dataset.data_dir=data/fmnist800 dataset.channels=1 \\
        dataset.image_size=14 dataset.test_size=5000 final.channels=8 final.layers=1
"""

from __future__ import annotations

import argparse
import json
import statistics
from functools import partial
from pathlib import Path

import numpy as np
import torch
from retrained_study import retrain_once, uniform_archs, uniform_sampler
from scipy import stats

from enas_lightning.arch.io import save_arch
from enas_lightning.fidelity.stats import (
    bootstrap_rows,
    kendall_tau_b,
    leave_one_out,
    seed_pairs_mean,
    split_half,
)
from enas_lightning.spaces import get_space


def param_free_share(arch) -> float:
    """Share of the architecture's op choices that carry no weights (the space's own count)."""
    return get_space(arch.space).param_free_share(arch)


def cell_shape(arch) -> dict[str, int]:
    """Each cell's loose-end count (the nodes its output concatenates) and depth (computed
    nodes on its longest path): ``normal_loose_ends``, ``normal_depth``, ``reduce_...``. Empty
    for a space without cells (macro)."""
    cells = getattr(arch, "cells", {})
    shape = {}
    for name, cell in cells.items():
        shape[f"{name}_loose_ends"] = len(cell.loose_ends)
        shape[f"{name}_depth"] = cell.depth
    return shape


def normal_depth_archs(
    ids: list[int], overrides: list[str], depth: int, max_draws: int = 100_000
) -> tuple[dict[int, object], tuple[str, ...]]:
    """Uniform cells conditioned on the normal cell's depth: architecture ``i`` is the first
    uniform draw of a generator seeded with ``i`` whose normal cell has ``depth`` (rejection
    sampling, so the reduction cell and the normal cell's ops stay uniform). Where that first
    draw already has the depth it is uniform architecture ``i``; use ids the uniform study does
    not, for cells of its own."""
    controller, ops = uniform_sampler(overrides)
    # the quickstart's micro space (what uniform_sampler composes): its cells' node count
    probe = controller.sample_archs(1, torch.Generator().manual_seed(0), uniform=True)[0]
    nodes = len(probe.cells["normal"].nodes)
    if not 1 <= depth <= nodes:
        raise SystemExit(f"--normal-depth {depth}: allowed: 1..{nodes} (the cell's nodes)")
    archs = {}
    for i in ids:
        gen = torch.Generator().manual_seed(i)
        for _ in range(max_draws):
            arch = controller.sample_archs(1, gen, uniform=True)[0]
            if arch.cells["normal"].depth == depth:
                archs[i] = arch
                break
        else:
            raise SystemExit(
                f"--normal-depth {depth}: no normal cell of that depth in {max_draws} uniform "
                f"draws for architecture {i}"
            )
    return archs, ops


def run_all(
    out: Path,
    n: int,
    seeds: list[int],
    overrides: list[str],
    only: set[int] | None = None,
    normal_depth: int | None = None,
) -> list[dict]:
    """Retrain architectures ``0..n-1`` (those in ``only``, when given) with every seed;
    with ``normal_depth``, the cells of :func:`normal_depth_archs` instead of uniform ones."""
    ids = [i for i in range(n) if only is None or i in only]
    if normal_depth is None:
        archs, ops = uniform_archs(n, overrides)
        prefix = "uniform"
    else:
        archs, ops = normal_depth_archs(ids, overrides, normal_depth)
        prefix = f"normal_depth{normal_depth}"
    (out / "archs").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in ids:
        arch = archs[i]
        arch_file = out / "archs" / f"{prefix}_{i}.json"
        if not arch_file.is_file():
            save_arch(arch, arch_file, ops)
        for s in seeds:
            m = retrain_once(arch_file, out / f"a{i}_s{s}", s, overrides)
            rows.append(
                {
                    "arch": i,
                    "seed": s,
                    "test_acc": m["test_acc"],
                    "params": m["params"],
                    "wall_s": m.get("wall_time_s"),
                    "param_free_share": param_free_share(arch),
                    "shape": cell_shape(arch),
                }
            )
    return rows


def summarize(rows: list[dict], seeds: list[int], n_test: int, boot: int = 2000) -> dict:
    archs = sorted({r["arch"] for r in rows})
    acc = {(r["arch"], r["seed"]): r["test_acc"] for r in rows}
    table = np.array([[acc[a, s] for s in seeds] for a in archs])  # [archs, seeds]
    means = table.mean(1)
    cell_sd = float(means.std(ddof=1))
    seed_var = float(table.var(axis=1, ddof=1).mean()) if len(seeds) > 1 else float("nan")
    seed_sd = seed_var**0.5
    first = {}  # each architecture's first row: what does not depend on the seed
    for r in rows:
        first.setdefault(r["arch"], r)
    out: dict = {
        "archs": len(archs),
        "seeds": seeds,
        "per_arch": [
            {
                "arch": a,
                "accs": table[k].tolist(),
                "mean": float(means[k]),
                "param_free_share": first[a]["param_free_share"],
                "params": first[a]["params"],
                **first[a].get("shape", {}),
            }
            for k, a in enumerate(archs)
        ],
        "mean_acc": float(means.mean()),
        "range_of_means": [float(means.min()), float(means.max())],
        "cell_sd": cell_sd,
        "seed_sd": seed_sd,
        "ratio_cell_to_seed_sd": cell_sd / seed_sd if seed_sd > 0 else float("inf"),
        # the spread of S-seed means still holds seed_var / S of seed noise
        "cell_var_corrected": cell_sd**2 - seed_var / len(seeds),
        "binomial_se_at_mean": float((means.mean() * (1 - means.mean()) / n_test) ** 0.5),
        "n_test": n_test,
    }
    if len(seeds) > 1:
        # the noise ceiling as task=fidelity computes it (mean over seed pairs), with its
        # bootstrap over architectures
        ceiling = bootstrap_rows(partial(seed_pairs_mean, kendall_tau_b), table, boot)
        out["ceiling_tau"] = ceiling.estimate
        out["ceiling_tau_ci95"] = [ceiling.low, ceiling.high]
        if len(seeds) >= 4 and len(seeds) % 2 == 0:
            # the ceiling for a truth of half-as-many-seed means: first half of the seeds'
            # mean against the second half's
            half = bootstrap_rows(partial(split_half, kendall_tau_b), table, boot)
            out["split_half_tau"] = half.estimate
            out["split_half_tau_ci95"] = [half.low, half.high]
        if len(seeds) >= 3:
            # one retraining against the other seeds' mean: the ceiling beside a supernet's
            # ranking against the seed means
            loo = bootstrap_rows(partial(leave_one_out, kendall_tau_b), table, boot)
            out["loo_tau"] = loo.estimate
            out["loo_tau_ci95"] = [loo.low, loo.high]
        out["pf_vs_acc_tau"] = float(
            stats.kendalltau([p["param_free_share"] for p in out["per_arch"]], means).statistic
        )
    # Does the cells' shape order their retrained accuracy? (The normal cell's did in the
    # sixteenth round of issue 20, mostly because 4-deep chains retrain worse.)
    if len(archs) >= 3:
        out["shape_vs_acc_tau"] = {}
        for key in first[archs[0]].get("shape", {}):
            if len({p[key] for p in out["per_arch"]}) < 2:
                continue  # one value (e.g. --normal-depth): nothing to rank, tau undefined
            pairs = np.array([[p[key], p["mean"]] for p in out["per_arch"]], dtype=float)
            iv = bootstrap_rows(lambda t: kendall_tau_b(t[:, 0], t[:, 1]), pairs, boot)
            out["shape_vs_acc_tau"][key] = [iv.estimate, iv.low, iv.high]
    walls = [r["wall_s"] for r in rows if r["wall_s"] is not None]
    if walls:
        out["median_wall_s"] = statistics.median(walls)
    return out


def markdown(s: dict, overrides: list[str]) -> str:
    depth = s.get("normal_depth")
    shaped = "" if depth is None else f" with a normal cell of depth {depth}"
    lines = [
        f"regime: {' '.join(overrides)}",
        f"{s['archs']} uniform architectures{shaped} x seeds {s['seeds']} "
        f"({s['n_test']} test images)",
        "",
        "| arch | param-free share | params | test acc per seed | mean |",
        "|---|---|---|---|---|",
    ]
    for p in s["per_arch"]:
        accs = " / ".join(f"{a:.4f}" for a in p["accs"])
        lines.append(
            f"| {p['arch']} | {p['param_free_share']:.2f} | {p['params']} | {accs} | "
            f"{p['mean']:.4f} |"
        )
    lines += [
        "",
        f"mean {s['mean_acc']:.4f}, range of means {s['range_of_means'][0]:.4f}.."
        f"{s['range_of_means'][1]:.4f}",
        f"cell spread (sd of seed means) {s['cell_sd']:.4f}; seed spread (pooled sd) "
        f"{s['seed_sd']:.4f}; ratio {s['ratio_cell_to_seed_sd']:.2f}; binomial SE "
        f"{s['binomial_se_at_mean']:.4f}",
    ]
    if "ceiling_tau" in s:
        lo, hi = s["ceiling_tau_ci95"]
        lines.append(
            f"noise ceiling (Kendall tau between seeds) {s['ceiling_tau']:+.3f} "
            f"({lo:+.3f}..{hi:+.3f}); tau(param-free share, mean acc) {s['pf_vs_acc_tau']:+.3f}"
        )
    if "split_half_tau" in s:
        lo, hi = s["split_half_tau_ci95"]
        k = len(s["seeds"]) // 2
        lines.append(
            f"split-half ceiling (Kendall tau between the means of seeds {s['seeds'][:k]} and "
            f"{s['seeds'][k:]}) {s['split_half_tau']:+.3f} ({lo:+.3f}..{hi:+.3f})"
        )
    if "loo_tau" in s:
        lo, hi = s["loo_tau_ci95"]
        lines.append(
            f"leave-one-out ceiling (Kendall tau between one seed and the mean of the other "
            f"{len(s['seeds']) - 1}, averaged over seeds) {s['loo_tau']:+.3f} ({lo:+.3f}..{hi:+.3f})"
        )
    for key, (tau, lo, hi) in s.get("shape_vs_acc_tau", {}).items():
        lines.append(f"tau({key.replace('_', ' ')}, mean acc) {tau:+.3f} ({lo:+.3f}..{hi:+.3f})")
    if "median_wall_s" in s:
        lines.append(f"median retrain wall time {s['median_wall_s']:.0f} s")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--archs", type=int, default=10, help="uniform architectures")
    # comma-separated: a list option would swallow the Hydra overrides after it
    parser.add_argument("--seeds", default="0,1", help="retrain seeds, e.g. 0,1")
    parser.add_argument(
        "--arch-ids", default="", help="only these of the --archs architectures, e.g. 0,10,12"
    )
    parser.add_argument("--n-test", type=int, default=5000, help="test images (for the SE)")
    parser.add_argument(
        "--normal-depth",
        type=int,
        default=None,
        help="uniform cells whose normal cell has this depth (rejection sampling), e.g. 1",
    )
    parser.add_argument("extra", nargs="*", help="Hydra overrides: the regime")
    args = parser.parse_args()
    out = args.out.resolve()
    seeds = [int(v) for v in args.seeds.split(",")]
    only = {int(v) for v in args.arch_ids.split(",")} if args.arch_ids else None
    rows = run_all(out, args.archs, seeds, args.extra, only, args.normal_depth)
    s = summarize(rows, seeds, args.n_test)
    s["overrides"] = args.extra
    s["normal_depth"] = args.normal_depth
    md = markdown(s, args.extra)
    (out / "regime.md").write_text(md + "\n")
    (out / "regime.json").write_text(json.dumps(s, indent=2) + "\n")
    print(md)


if __name__ == "__main__":
    main()

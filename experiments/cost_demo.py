"""Searching under a parameter budget, judged by retraining (issue 22).

For each search seed this recipe runs two ``task=search`` of ``experiment=quickstart`` with the
common overrides (data set, search budget) and the regime's final settings (``--final``: they
size the standalone network whose parameters are counted):

- ``accuracy``: the paper's reward, no budget;
- ``budgeted``: ``reward=cost_aware reward.cost=params reward.target=<T>`` and
  ``derive.max_params=<T>``, with ``T`` half the mean parameters of the uniform cells of a regime
  study (``--regime``: ``experiments/regime.py``'s ``regime.json``, retrained the same way), or
  ``--target``.

Both picks are retrained from scratch (``task=final``) for every retrain seed with the regime's
overrides. Every run has its own directory under ``<out>/s<seed>/<kind>/`` (the retrains under a
folder named by a hash of their overrides); a finished run is skipped, so a rerun resumes. A
budgeted search that finds no candidate within the budget is a row without a pick. It prints and
writes ``<out>/cost_demo.csv`` and ``<out>/cost_demo.md``: each pick's parameters and retrained
accuracy (seed mean), whether it meets the budget, and how far it lies below the retrained front
of the regime's uniform cells (the best retrained accuracy among the uniform cells costing at
most as much; 0 on the front, negative above it, empty where it is cheaper than every uniform
cell).

    python experiments/cost_demo.py --out runs/cost --seeds 0,1 --retrain-seeds 0,1 \\
        --regime runs/regime_a/regime.json --final "final.channels=8 final.layers=1" \\
        dataset=image_folder dataset.data_dir=data/fmnist800 ...
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import statistics
import subprocess
from pathlib import Path

from levers import regime_key, search
from retrained_study import retrain_once

from enas_lightning.search.front import gap_to_front, pareto_front

KINDS = ("accuracy", "budgeted")


def uniform_front(ref: dict) -> tuple[list[float], list[float]]:
    """The parameters and retrained seed means of a regime study's uniform cells
    (``regime.json``'s ``per_arch``; their ``params`` are the retrained networks' counts, which
    :meth:`Space.cost` gives for the same settings)."""
    cells = ref["per_arch"]
    return [float(p["params"]) for p in cells], [float(p["mean"]) for p in cells]


def half_mean_params(ref: dict) -> int:
    """The budget: half the mean parameters of the regime's uniform cells."""
    return int(statistics.mean(p["params"] for p in ref["per_arch"]) / 2)


def judge(rows: list[dict], target: float, costs: list[float], accs: list[float]) -> list[dict]:
    """Each row with ``meets_budget`` (its ``params`` within ``target``) and ``gap_to_front``
    (its retrained accuracy below the uniform cells' front at its cost)."""
    out = []
    for r in rows:
        r = dict(r)
        if r.get("params") is None:
            r["meets_budget"], r["gap_to_front"] = None, None
        else:
            r["meets_budget"] = r["params"] <= target
            r["gap_to_front"] = gap_to_front(costs, accs, r["params"], r["pick_acc"])
        out.append(r)
    return out


def markdown(rows: list[dict], target: float, costs: list[float], accs: list[float]) -> str:
    front = pareto_front(costs, accs)
    lines = [
        f"budget: {target:.0f} parameters (reward.target and derive.max_params)",
        "",
        "| search | seed | params | meets budget | retrained acc (seed mean) | per seed | "
        "below the uniform front |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.get("params") is None:
            lines.append(f"| {r['kind']} | {r['seed']} | - | no pick | - | - | - |")
            continue
        gap = "-" if r["gap_to_front"] is None else f"{r['gap_to_front']:+.4f}"
        lines.append(
            f"| {r['kind']} | {r['seed']} | {r['params']} | "
            f"{'yes' if r['meets_budget'] else 'no'} | {r['pick_acc']:.4f} | {r['pick_accs']} | "
            f"{gap} |"
        )
    lines += [
        "",
        f"uniform front ({len(costs)} retrained uniform cells, {len(front)} on the front): "
        + ", ".join(f"{costs[i]:.0f} params -> {accs[i]:.4f}" for i in front),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", default="0,1", help="search seeds, comma-separated")
    parser.add_argument("--retrain-seeds", default="0,1", help="retrain seeds, comma-separated")
    parser.add_argument("--final", default="", help="the regime's final-training overrides")
    parser.add_argument("--regime", type=Path, required=True, help="regime.py's regime.json")
    parser.add_argument("--target", type=int, help="the budget (default: half the uniform mean)")
    parser.add_argument("extra", nargs="*", help="common Hydra overrides (data set, budget)")
    args = parser.parse_args()
    out = args.out.resolve()
    seeds = [int(v) for v in args.seeds.split(",")]
    rseeds = [int(v) for v in args.retrain_seeds.split(",")]
    final = shlex.split(args.final)
    ref = json.loads(args.regime.read_text())
    target = args.target if args.target is not None else half_mean_params(ref)
    costs, accs = uniform_front(ref)
    budget = [
        "reward=cost_aware",
        "reward.cost=params",
        f"reward.target={target}",
        f"derive.max_params={target}",
    ]
    regime = regime_key(args.extra, final)
    rows = []
    for s in seeds:
        for kind in KINDS:
            sdir = out / f"s{s}" / kind
            overrides = [*args.extra, *final, *(budget if kind == "budgeted" else [])]
            row: dict = {"kind": kind, "seed": s, "target": target}
            try:
                best = search(sdir / "search", s, overrides)
            except subprocess.CalledProcessError:  # e.g. no candidate within the budget
                print(f"{kind} search, seed {s}: no pick (see {sdir / 'search'})", flush=True)
                rows.append(row)
                continue
            info = json.loads(best.read_text())
            row["ints"] = info.get("ints")
            row["shared_score"] = info.get("val_acc_cost", info.get("val_acc"))
            metrics = [
                retrain_once(best, sdir / regime / f"pick_r{r}", r, [*args.extra, *final])
                for r in rseeds
            ]
            # the retrained network's count: the same network as the uniform cells' counts
            # (best_arch.json's is the search's final.*, which a search made without --final,
            # e.g. an accuracy-only one reused from experiments/levers.py, sized otherwise)
            row["params"] = int(metrics[0]["params"])
            pick = [float(m["test_acc"]) for m in metrics]
            row["pick_acc"] = statistics.mean(pick)
            row["pick_accs"] = " ".join(f"{a:.4f}" for a in pick)
            rows.append(row)
    rows = judge(rows, target, costs, accs)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with (out / "cost_demo.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    md = markdown(rows, target, costs, accs)
    (out / "cost_demo.md").write_text(md + "\n")
    print(md)


if __name__ == "__main__":
    main()

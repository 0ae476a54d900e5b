"""ENAS's pick against random search's pick and uniform cells, retrained alike, with intervals.

Issue 20's study with power. It reads what the other recipes already trained, in one regime:

- ENAS's and random search's picks, one per search seed: the rows of ``experiments/levers.py``'s
  ``levers.csv`` for two levers (``--enas``, default ``base``; ``--random``, default ``random``:
  ``controller=random``, the best of N uniform architectures on a uniformly trained supernet),
  each pick's retrained accuracy being its mean over the retrain seeds;
- the uniform cells of ``experiments/regime.py``'s ``regime.json``, each its retrain-seed mean.

It prints (and writes ``--out``.md/.json) each group's mean with a 95% t-interval, ENAS minus
the uniform mean (Welch: independent groups) and ENAS minus random search (paired by search
seed, as both searches of a seed see the same data order), plus the picks' parameter-free share.

    python experiments/powered_study.py --levers runs/levers/levers.csv \\
        --regime runs/regime/regime.json --out runs/powered_study
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from pathlib import Path

from retrained_study import compare, markdown


def pick_rows(levers_csv: Path, lever: str, group: str, regime: str | None) -> list[dict]:
    """One row per search seed of ``lever``: its pick's retrained seed mean and pf share."""
    with levers_csv.open() as f:
        rows = [r for r in csv.DictReader(f) if r["lever"] == lever]
    if regime is not None:
        rows = [r for r in rows if r["regime"] == regime]
    by_seed = {int(r["seed"]): r for r in rows}  # a later row of a seed replaces an earlier one
    return [
        {
            "group": group,
            "seed": seed,
            "test_acc": float(r["pick_acc"]),
            "params": pick_params(levers_csv.parent / lever / f"s{seed}" / r["regime"]),
            "param_free_share": float(r["pick_pf"]),
        }
        for seed, r in sorted(by_seed.items())
    ]


def pick_params(final_dir: Path) -> int:
    """The retrained pick's parameter count (its first retrain's ``metrics.json``; 0 if none)."""
    metrics = final_dir / "pick_r0" / "metrics.json"
    return int(json.loads(metrics.read_text())["params"]) if metrics.is_file() else 0


def uniform_rows(regime_json: Path) -> list[dict]:
    """One row per uniform cell: its retrain-seed mean (``seed`` is the cell's index)."""
    regime = json.loads(regime_json.read_text())
    return [
        {
            "group": "uniform",
            "seed": c["arch"],
            "test_acc": c["mean"],
            "params": c.get("params", 0),
            "param_free_share": c["param_free_share"],
        }
        for c in regime["per_arch"]
    ]


def pf_lines(rows: list[dict]) -> list[str]:
    lines = ["", "| group | mean parameter-free share | per seed |", "|---|---|---|"]
    for group in ("enas", "random search", "uniform"):
        mine = [r for r in rows if r["group"] == group]
        if mine:
            per = ", ".join(f"{r['param_free_share']:.2f}" for r in mine)
            mean = statistics.mean(r["param_free_share"] for r in mine)
            lines.append(f"| {group} | {mean:.3f} | {per} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levers", type=Path, required=True, help="levers.py's levers.csv")
    parser.add_argument("--regime", type=Path, required=True, help="regime.py's regime.json")
    parser.add_argument("--out", type=Path, required=True, help="<out>.md and <out>.json")
    parser.add_argument("--enas", default="base", help="the lever holding ENAS's searches")
    parser.add_argument("--random", default="random", help="the lever holding random search's")
    parser.add_argument("--regime-key", help="levers.csv's regime column to keep (default: all)")
    args = parser.parse_args()

    rows = (
        pick_rows(args.levers, args.enas, "enas", args.regime_key)
        + pick_rows(args.levers, args.random, "random search", args.regime_key)
        + uniform_rows(args.regime)
    )
    result = compare(rows)
    result["param_free_share"] = {
        g: [r["param_free_share"] for r in rows if r["group"] == g]
        for g in ("enas", "random search", "uniform")
    }
    text = markdown(result) + "\n" + "\n".join(pf_lines(rows)) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

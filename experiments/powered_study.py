"""ENAS's pick against random search's pick and uniform cells, retrained alike, with intervals.

Issue 20's study with power. It reads what the other recipes already trained, in one regime:

- ENAS's and random search's picks, one per search seed: the rows of ``experiments/levers.py``'s
  ``levers.csv`` for two levers (``--enas``, default ``base``; ``--random``, default ``random``:
  ``controller=random``, the best of N uniform architectures on a uniformly trained supernet),
  each pick's retrained accuracy being its mean over the retrain seeds;
- the uniform cells of ``experiments/regime.py``'s ``regime.json``, each its retrain-seed mean
  (``--uniform-seeds``: over those seeds only, e.g. the picks' own); ``--regime`` repeated pools
  the cells of several studies of the same recipe (cells added later for power).

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


def uniform_rows(regime_jsons: list[Path], seeds: list[int] | None = None) -> list[dict]:
    """One row per uniform cell of the regime studies: its mean over ``seeds`` (default: all
    the study's retrain seeds); ``seed`` is the cell's index.

    Several studies pool their cells, so cells added later for power count beside the first
    ones; they must be retrained alike (the same overrides) and hold different cells (a cell's
    index is its sampling seed, so one index in two studies is the same cell counted twice).

    Raises:
        SystemExit: the studies' recipes differ, they share a cell, or a study lacks a seed.
    """
    rows: list[dict] = []
    recipe = None
    for path in regime_jsons:
        regime = json.loads(path.read_text())
        overrides = regime.get("overrides")
        if recipe is not None and overrides != recipe:
            raise SystemExit(
                f"--regime {path}: retrained with {overrides}, not {recipe} as the first study"
            )
        recipe = overrides
        have = regime.get("seeds", [])
        missing = [s for s in seeds or [] if s not in have]
        if missing:
            raise SystemExit(f"--uniform-seeds: {path} has retrain seeds {have}, not {missing}")
        known = {r["seed"] for r in rows}
        for c in regime["per_arch"]:
            if c["arch"] in known:
                raise SystemExit(f"--regime {path}: cell {c['arch']} is in an earlier study too")
            accs = [c["accs"][have.index(s)] for s in seeds] if seeds else None
            rows.append(
                {
                    "group": "uniform",
                    "seed": c["arch"],
                    "test_acc": statistics.mean(accs) if accs else c["mean"],
                    "params": c.get("params", 0),
                    "param_free_share": c["param_free_share"],
                }
            )
    return rows


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
    parser.add_argument(
        "--regime",
        type=Path,
        action="append",
        required=True,
        help="regime.py's regime.json; repeat it to pool the cells of several studies",
    )
    parser.add_argument(
        "--uniform-seeds",
        help="comma-separated retrain seeds each uniform cell is averaged over (default: all)",
    )
    parser.add_argument("--out", type=Path, required=True, help="<out>.md and <out>.json")
    parser.add_argument("--enas", default="base", help="the lever holding ENAS's searches")
    parser.add_argument("--random", default="random", help="the lever holding random search's")
    parser.add_argument("--regime-key", help="levers.csv's regime column to keep (default: all)")
    args = parser.parse_args()
    try:
        seeds = [int(x) for x in args.uniform_seeds.split(",")] if args.uniform_seeds else None
    except ValueError:
        parser.error(f"--uniform-seeds {args.uniform_seeds}: comma-separated integers, e.g. 0,1")

    rows = (
        pick_rows(args.levers, args.enas, "enas", args.regime_key)
        + pick_rows(args.levers, args.random, "random search", args.regime_key)
        + uniform_rows(args.regime, seeds)
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

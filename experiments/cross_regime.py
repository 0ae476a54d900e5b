"""Do two retraining regimes rank the same cells alike? And does a supernet rank them as either?

``experiments/regime.py`` retrains the same uniform cells (architecture ``i`` seeded with ``i``)
in whatever regime its overrides make. Given two such ``regime.json`` files over the same cells
(e.g. 8 and 16 channels), this prints, with percentile bootstrap intervals over cells:

- tau between the two regimes' seed means (how alike the two truths rank the cells: a lower
  bound on how reproducible a seed mean is, regime and seeds both changed);
- tau between one retraining in regime A and regime B's seed mean, averaged over A's seeds (a
  cheap per-cell estimator: one short retraining), and the reverse;
- with ``--scores`` (``experiments/shared_rank.py``'s ``<out>.json``), each supernet's mean tau
  against either truth and that of the mean rank over all the stored runs: whether the shared
  weights rank the cells as a narrower or a wider retraining does.

    python experiments/cross_regime.py runs/regime_c8/regime.json runs/regime_c16/regime.json \\
        --scores runs/shared_rank.json --out runs/cross_regime.md
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np

from enas_lightning.fidelity.stats import (
    average_ranks,
    bootstrap_rows,
    kendall_tau_b,
    single_seed_mean,
)


def seed_table(regime: dict) -> tuple[list[int], np.ndarray]:
    """``(cell ids, [n, S] retrained accuracies)`` of a ``regime.json``."""
    cells = regime["per_arch"]
    return [c["arch"] for c in cells], np.array([c["accs"] for c in cells], dtype=float)


def interval(x: np.ndarray, y: np.ndarray, boot: int) -> tuple[float, float, float]:
    """Kendall tau of ``x`` and ``y`` with its 95% bootstrap interval over cells."""
    i = bootstrap_rows(lambda r: kendall_tau_b(r[:, 0], r[:, 1]), np.c_[x, y], samples=boot)
    return kendall_tau_b(x, y), i.low, i.high


def one_seed_vs_mean(single: np.ndarray, truth: np.ndarray) -> float:
    """Mean over ``single``'s seeds (columns) of tau against ``truth`` ``[n]``: the truth in
    the score's column of :func:`~enas_lightning.fidelity.stats.single_seed_mean`."""
    return single_seed_mean(kendall_tau_b, np.c_[truth, single])


def compare(a: dict, b: dict, runs: list[dict], boot: int) -> dict:
    """Every figure of the module docstring, for regimes ``a`` and ``b`` (same cells)."""
    ids_a, acc_a = seed_table(a)
    ids_b, acc_b = seed_table(b)
    if ids_a != ids_b:
        raise SystemExit(f"the two regimes hold other cells: {ids_a} against {ids_b}")
    mean_a, mean_b = acc_a.mean(1), acc_b.mean(1)
    out = {
        "cells": len(ids_a),
        "seeds": [acc_a.shape[1], acc_b.shape[1]],
        "means_tau": interval(mean_a, mean_b, boot),
        "one_a_vs_mean_b": one_seed_vs_mean(acc_a, mean_b),
        "one_b_vs_mean_a": one_seed_vs_mean(acc_b, mean_a),
    }
    for name in ("accuracy", "loss") if runs else ():
        for r in runs:
            if r.get("archs", ids_a) != ids_a or len(r[name]["scores"]) != len(ids_a):
                raise SystemExit(f"--scores run {r['run']} scored other cells than the regimes")
        scores = [r[name]["scores"] for r in runs]
        pooled = np.mean([average_ranks(s) for s in scores], axis=0)
        out[name] = {
            "runs": len(runs),
            "mean_tau_a": statistics.mean(kendall_tau_b(s, mean_a) for s in scores),
            "mean_tau_b": statistics.mean(kendall_tau_b(s, mean_b) for s in scores),
            "pooled_tau_a": interval(pooled, mean_a, boot),
            "pooled_tau_b": interval(pooled, mean_b, boot),
        }
    return out


def markdown(out: dict, names: tuple[str, str]) -> str:
    a, b = names
    t, lo, hi = out["means_tau"]
    sa, sb = out["seeds"]
    lines = [
        f"{out['cells']} cells retrained in two regimes: A = {a} ({sa} seeds), "
        f"B = {b} ({sb} seeds)",
        "",
        "| comparison | Kendall tau [95%] |",
        "|---|---|",
        f"| A's seed means vs B's seed means | {t:.3f} [{lo:.2f}, {hi:.2f}] |",
        f"| one retraining in A vs B's seed means (mean over A's seeds) | "
        f"{out['one_a_vs_mean_b']:.3f} |",
        f"| one retraining in B vs A's seed means (mean over B's seeds) | "
        f"{out['one_b_vs_mean_a']:.3f} |",
    ]
    for name in ("accuracy", "loss"):
        if name in out:
            s = out[name]
            for key, regime in (("a", "A"), ("b", "B")):
                t, lo, hi = s[f"pooled_tau_{key}"]
                lines.append(
                    f"| shared {name}: one supernet vs {regime}'s seed means (mean of "
                    f"{s['runs']}) | {s[f'mean_tau_{key}']:.3f} |"
                )
                lines.append(
                    f"| shared {name}: mean rank of the {s['runs']} supernets vs {regime}'s "
                    f"seed means | {t:.3f} [{lo:.2f}, {hi:.2f}] |"
                )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("a", type=Path, help="regime.json of regime A")
    parser.add_argument("b", type=Path, help="regime.json of regime B (the same cells)")
    parser.add_argument("--scores", type=Path, action="append", default=[])
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--out", type=Path, help="Markdown table to write (and .json beside)")
    args = parser.parse_args()
    runs = [r for path in args.scores for r in json.loads(path.read_text())]
    out = compare(
        json.loads(args.a.read_text()), json.loads(args.b.read_text()), runs, args.bootstrap
    )
    text = markdown(out, (str(args.a), str(args.b)))
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

"""Does a search's controller rank retrained cells better than its supernet? (issue 20)

The controller's REINFORCE updates average thousands of shared-weight rewards, so the
probability it gives a cell might rank cells where one shared-weight score of one cell is too
noisy to. This teacher-forces each retrained cell of ``experiments/regime.py`` through every
finished search's final controller (:meth:`Controller.forward` with ``arcs``) and splits the
cell's log-probability into its input decisions (the wiring, ``W``) and its op decisions. Beside
them it scores the same cells on the search's supernet as ``experiments/shared_rank.py`` does
(accuracy and minus the loss on the whole validation split). For each estimator it prints
Kendall's tau against the cells' retrained seed means per search, the mean over the searches
and the tau of the searches' mean rank, and the mean over the searches of tau(W) − tau(shared
accuracy) with a percentile bootstrap interval over cells (every search resampled alike).

    python experiments/controller_rank.py --regime runs/s19/new_a --out runs/ctrl_rank.md \\
        runs/levers/pfadj/s21/search runs/levers/pfadj/s22/search ...

Micro-space searches only (the wiring/op split reads its ``[n, 2, B, 4]`` decisions).
``--arch-prefix`` names the regime's arch files (``uniform`` for ``archs/uniform_<id>.json``,
``normal_depth1`` for the cells of ``regime.py --normal-depth 1``). The scores are kept in
``<out>.json``. The twenty-first round of issue 20 (experiments/RESULTS.md) is this recipe.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np
import torch
from shared_rank import lever_and_seed, load_run, score_module

from enas_lightning.arch.io import load_arch
from enas_lightning.controller import Controller
from enas_lightning.fidelity.stats import average_ranks, bootstrap_rows, kendall_tau_b

ESTIMATORS = ("wiring", "whole", "ops", "accuracy", "loss")


def log_probs(controller: Controller, archs: list) -> dict[str, list[float]]:
    """Each micro architecture's log-probability under ``controller``: ``whole``, its op
    decisions (``ops``) and its input decisions (``wiring`` = whole − ops)."""
    controller = controller.eval()
    with torch.no_grad():
        arcs = controller.from_archs(archs)  # [n, 2, B, 4]: in1 op1 in2 op2 per node
        sample = controller(len(archs), arcs=arcs)
    # op_probs [n, D, K] holds the op decisions in (cell, node, slot) order
    ops = arcs[:, :, :, 1::2].reshape(len(archs), -1)
    op_lp = sample.op_probs.gather(-1, ops.unsqueeze(-1)).squeeze(-1).log().sum(1)
    whole = sample.log_prob
    return {"wiring": (whole - op_lp).tolist(), "whole": whole.tolist(), "ops": op_lp.tolist()}


def search_scores(run: Path, arch_files: list[Path]) -> dict[str, list[float]]:
    """Every :data:`ESTIMATORS` score of the cells of ``arch_files`` for one search run."""
    module = load_run(run)
    ss = module.cfg.search_space
    if ss.name != "micro":
        raise SystemExit(f"{run}: search_space {ss.name}; this recipe reads micro searches only")
    archs = [load_arch(f, ss.name, tuple(ss.ops)) for f in arch_files]
    return {**log_probs(module.controller, archs), **score_module(module, archs)}


def taus(rows: list[dict], means: list[float], estimator: str) -> list[float]:
    """Kendall tau of ``estimator``'s scores against ``means``, one per search row."""
    return [kendall_tau_b(r[estimator], means) for r in rows]


def mean_difference(
    rows: list[dict], means: list[float], a: str, b: str, boot: int, seed: int = 0
) -> tuple[float, float, float]:
    """Mean over the searches of tau(a) − tau(b): estimate and 95% bootstrap interval, the cells
    resampled (the same resample for every search, since they score the same cells)."""
    cols = [np.asarray(means)]
    for r in rows:
        cols += [np.asarray(r[a]), np.asarray(r[b])]
    table = np.column_stack(cols)

    def stat(t: np.ndarray) -> float:
        return float(
            np.mean(
                [
                    kendall_tau_b(t[:, 1 + 2 * j], t[:, 0])
                    - kendall_tau_b(t[:, 2 + 2 * j], t[:, 0])
                    for j in range(len(rows))
                ]
            )
        )

    iv = bootstrap_rows(stat, table, samples=boot, seed=seed)
    return iv.estimate, iv.low, iv.high


def markdown(rows: list[dict], means: list[float], boot: int) -> str:
    lines = [
        f"Kendall tau against the retrained means of {len(means)} cells",
        "",
        "| lever | seed | " + " | ".join(ESTIMATORS) + " |",
        "|---|---|" + "---|" * len(ESTIMATORS),
    ]
    for r in rows:
        cells = " | ".join(f"{kendall_tau_b(r[e], means):+.3f}" for e in ESTIMATORS)
        lines.append(f"| {r['lever']} | {r['seed']} | {cells} |")
    levers = list(dict.fromkeys(r["lever"] for r in rows))
    groups = [(lever, [r for r in rows if r["lever"] == lever]) for lever in levers]
    if len(levers) > 1:
        groups.append(("all runs", rows))
    lines += [
        "",
        "| lever | searches | estimator | mean tau | tau of the mean rank |",
        "|---|---|---|---|---|",
    ]
    for lever, mine in groups:
        for e in ESTIMATORS:
            rank = np.mean([average_ranks(r[e]) for r in mine], axis=0)
            lines.append(
                f"| {lever} | {len(mine)} | {e} | {statistics.mean(taus(mine, means, e)):+.3f} "
                f"| {kendall_tau_b(rank, means):+.3f} |"
            )
    est, low, high = mean_difference(rows, means, "wiring", "accuracy", boot)
    lines += [
        "",
        f"Mean over {len(rows)} searches of tau(wiring) − tau(shared accuracy): {est:+.3f} "
        f"(95% bootstrap over cells {low:+.3f} .. {high:+.3f})",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--regime", type=Path, required=True, help="experiments/regime.py's out")
    parser.add_argument("--out", type=Path, required=True, help="the Markdown table to write")
    parser.add_argument("--arch-prefix", default="uniform", help="archs/<prefix>_<id>.json")
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: one core)")
    parser.add_argument("runs", type=Path, nargs="+", help="finished search run directories")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    regime = json.loads((args.regime / "regime.json").read_text())
    cells = regime["per_arch"]
    means = [c["mean"] for c in cells]
    files = [args.regime / "archs" / f"{args.arch_prefix}_{c['arch']}.json" for c in cells]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise SystemExit(f"--arch-prefix {args.arch_prefix}: no file {missing[0]}")
    rows = []
    for run in args.runs:
        lever, seed = lever_and_seed(run)
        rows.append({"lever": lever, "seed": seed, "run": str(run), **search_scores(run, files)})
        print(f"{lever} s{seed} done", flush=True)
    text = markdown(rows, means, args.bootstrap)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    args.out.with_suffix(".json").write_text(
        json.dumps({"archs": [c["arch"] for c in cells], "means": means, "rows": rows}, indent=1)
    )


if __name__ == "__main__":
    main()

"""ENAS against random search with weight sharing, on the quickstart data, several seeds.

Random search with weight sharing is known to be competitive with ENAS (Li and Talwalkar,
2019). This recipe runs the quickstart pipeline (search, derivation, final training) with the
ENAS controller and with ``controller=random`` (same supernet training, same derivation) for
each seed, then reports the mean and spread of the derivation's accuracies with the shared
weights (the derived architecture's, the greedy one's, the mean of the controller's samples and
the mean of as many uniformly sampled architectures, the random reference) and of the final test
accuracy. Shared-weight accuracies favour the architectures the supernet was trained on; the
final test accuracy is the measure of quality:

    python experiments/random_vs_enas.py --seeds 0 1 2 [--out multirun/random_vs_enas] [-- extra overrides]

It prints a Markdown table and writes ``results.csv`` and ``results.md`` into the sweep dir.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

# pipeline.json's derivation accuracies besides search_val_acc (tasks/pipeline.py)
DERIVATION_COLUMNS = (
    "search_greedy_val_acc",
    "search_controller_mean_val_acc",
    "search_uniform_mean_val_acc",
)


def run_sweep(out: Path, seeds: list[int], extra: list[str], controllers: list[str]) -> float:
    cmd = [
        sys.executable,
        "-m",
        "enas_lightning",
        "-m",
        "experiment=quickstart",
        "controller=" + ",".join(controllers),
        "seed=" + ",".join(map(str, seeds)),
        f"hydra.sweep.dir={out}",
        "trainer.enable_progress_bar=false",
        *extra,
    ]
    print(" ".join(cmd), flush=True)
    start = time.time()
    subprocess.run(cmd, check=True)
    return time.time() - start


def collect(out: Path) -> list[dict]:
    rows = []
    for job in sorted(out.iterdir(), key=lambda p: (len(p.name), p.name)):
        summary = job / "pipeline.json"
        overrides = job / ".hydra" / "overrides.yaml"
        if not summary.is_file() or not overrides.is_file():
            continue
        over = dict(
            line.strip().lstrip("- ").split("=", 1)
            for line in overrides.read_text().splitlines()
            if "=" in line
        )
        s = json.loads(summary.read_text())
        rows.append(
            {
                "job": job.name,
                "controller": over.get("controller", "enas"),
                "seed": int(over.get("seed", 0)),
                "search_val_acc": s["search_val_acc"],
                **{k: s.get(k) for k in DERIVATION_COLUMNS},
                "test_acc": s["test_acc"],
                "params": s["params"],
                "wall_time_s": round(s["wall_time_s"], 1),
            }
        )
    return rows


def mean_sd(values: list) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {sd:.4f}"


def table(rows: list[dict]) -> str:
    # the shared-weight columns (mean ± sd over seeds): best = the derived architecture (best of
    # the controller's candidates), greedy, the mean of the controller's samples, the mean of
    # as many uniformly sampled architectures
    lines = [
        "| controller | seeds | best (derived) | greedy | controller mean | uniform mean "
        "| final test acc | final test acc per seed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in ("enas", "random"):
        group = [r for r in rows if r["controller"] == name]
        if not group:
            continue
        shared = [mean_sd([r[k] for r in group]) for k in ("search_val_acc", *DERIVATION_COLUMNS)]
        per = ", ".join(
            f"{r['seed']}: {r['test_acc']:.4f}" for r in sorted(group, key=lambda r: r["seed"])
        )
        lines.append(
            f"| {name} | {len(group)} | {' | '.join(shared)} | "
            f"{mean_sd([r['test_acc'] for r in group])} | {per} |"
        )
    lines.append(
        "\nbest, greedy, controller mean, uniform mean: validation accuracies with the shared "
        "weights (mean ± sd over seeds); they favour the architectures the supernet was trained "
        "on. The final test accuracy is of the derived architecture retrained from scratch."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("multirun/random_vs_enas"))
    parser.add_argument("--collect-only", action="store_true")
    parser.add_argument(
        "--controllers",
        nargs="+",
        default=["enas", "random"],
        choices=["enas", "random"],
        help="which searches to run (e.g. only enas after an ENAS-only change: random search "
        "never trains a controller, so settings such as search.warmup_epochs leave it as it was)",
    )
    parser.add_argument(
        "--also",
        type=Path,
        nargs="*",
        default=[],
        help="more sweep dirs to collect (e.g. seeds run in parallel by a second invocation)",
    )
    parser.add_argument("extra", nargs="*", help="extra Hydra overrides")
    args = parser.parse_args()
    out = args.out.resolve()
    wall = None
    if not args.collect_only:
        wall = run_sweep(out, args.seeds, args.extra, args.controllers)
    rows = [r for d in (out, *(p.resolve() for p in args.also)) for r in collect(d)]
    if not rows:
        sys.exit(f"no finished jobs under {out}")
    with (out / "results.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    md = table(rows)
    if wall is not None:
        md += f"\n\nwall time of the whole sweep: {wall:.0f} s"
    (out / "results.md").write_text(md + "\n")
    print(md)


if __name__ == "__main__":
    main()

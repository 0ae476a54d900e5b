"""ENAS against random search with weight sharing, on the quickstart data, several seeds.

Random search with weight sharing is known to be competitive with ENAS (Li and Talwalkar,
2019). This recipe runs the quickstart pipeline (search, derivation, final training) with the
ENAS controller and with ``controller=random`` (same supernet training, same derivation) for
each seed, then reports the mean and spread of the final test accuracy:

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


def run_sweep(out: Path, seeds: list[int], extra: list[str]) -> float:
    cmd = [
        sys.executable,
        "-m",
        "enas_lightning",
        "-m",
        "experiment=quickstart",
        "controller=enas,random",
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
                "test_acc": s["test_acc"],
                "params": s["params"],
                "wall_time_s": round(s["wall_time_s"], 1),
            }
        )
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| controller | seeds | search val acc (mean ± sd) | final test acc (mean ± sd) | per seed |",
        "|---|---|---|---|---|",
    ]
    for name in ("enas", "random"):
        group = [r for r in rows if r["controller"] == name]
        if not group:
            continue
        val = [r["search_val_acc"] for r in group]
        test = [r["test_acc"] for r in group]
        sd = statistics.stdev if len(group) > 1 else (lambda _: 0.0)
        per = ", ".join(
            f"{r['seed']}: {r['test_acc']:.4f}" for r in sorted(group, key=lambda r: r["seed"])
        )
        lines.append(
            f"| {name} | {len(group)} | {statistics.mean(val):.4f} ± {sd(val):.4f} | "
            f"{statistics.mean(test):.4f} ± {sd(test):.4f} | {per} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("multirun/random_vs_enas"))
    parser.add_argument("--collect-only", action="store_true")
    parser.add_argument("extra", nargs="*", help="extra Hydra overrides")
    args = parser.parse_args()
    out = args.out.resolve()
    wall = None
    if not args.collect_only:
        wall = run_sweep(out, args.seeds, args.extra)
    rows = collect(out)
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

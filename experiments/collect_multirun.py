"""Turn a Hydra multirun directory into a results table and a plot.

    python experiments/collect_multirun.py multirun/search/2026-01-01_12-00-00 [--out DIR]

Every job directory (``<multirun_dir>/<job number>``, or any directory below that holds
``.hydra/overrides.yaml``) becomes one row: the job's overrides (from ``.hydra/overrides.yaml``),
the derivation's validation accuracies with the shared weights from ``best_arch.json`` (empty
when the job did not finish): ``val_acc`` (the derived, best candidate), ``greedy_val_acc``,
``controller_mean_val_acc`` (the mean of the controller's samples) and ``uniform_mean_val_acc``
(the mean of as many uniformly sampled architectures: the random reference), and its wall
time in seconds (from the modification times of ``.hydra/config.yaml``, written when the job
starts, and ``best_arch.json``, written when it ends). Writes into ``--out`` (default: the
multirun directory):

- ``results.csv`` and ``results.md``: one row per job;
- ``results.png``: the accuracies per job, and the best accuracy against each override that
  varies between jobs.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

import yaml

METRICS = ("val_acc", "greedy_val_acc", "controller_mean_val_acc", "uniform_mean_val_acc")


def job_dirs(root: Path) -> list[Path]:
    dirs = [p.parent.parent for p in root.rglob(".hydra/overrides.yaml")]
    # the multirun root itself holds no overrides.yaml (only multirun.yaml), so every hit is a job

    def key(p: Path) -> tuple[int, str]:
        rel = p.relative_to(root).as_posix()
        return (int(rel), "") if rel.isdigit() else (10**9, rel)

    return sorted(set(dirs), key=key)


def parse_overrides(job: Path) -> dict[str, str]:
    items = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text()) or []
    out: dict[str, str] = {}
    for item in items:
        k, _, v = str(item).partition("=")
        out[k] = v
    return out


def collect(root: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows (one per job) and the override keys whose values differ between jobs."""
    rows: list[dict[str, Any]] = []
    for job in job_dirs(root):
        overrides = parse_overrides(job)
        row: dict[str, Any] = {
            "job": job.relative_to(root).as_posix(),
            "overrides": " ".join(f"{k}={v}" for k, v in overrides.items()),
            "_overrides": overrides,
        }
        best = job / "best_arch.json"
        data = json.loads(best.read_text()) if best.exists() else {}
        for m in METRICS:
            row[m] = data.get(m)
        start = job / ".hydra" / "config.yaml"
        row["wall_s"] = (
            round(best.stat().st_mtime - start.stat().st_mtime, 1)
            if best.exists() and start.exists()
            else None
        )
        rows.append(row)
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r["_overrides"] if k not in keys]
    varying = [k for k in keys if len({r["_overrides"].get(k) for r in rows}) > 1]
    for r in rows:
        for k in varying:
            r[k] = r["_overrides"].get(k, "")
    return rows, varying


def columns(varying: list[str]) -> list[str]:
    return ["job", *varying, *METRICS, "wall_s", "overrides"]


def fmt(v: Any, column: str = "") -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.1f}" if column == "wall_s" else f"{v:.4f}"
    return str(v)


def write_csv(rows: list[dict[str, Any]], varying: list[str], path: Path) -> None:
    cols = columns(varying)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for r in rows:
            w.writerow([fmt(r.get(c), c) for c in cols])


def write_markdown(rows: list[dict[str, Any]], varying: list[str], path: Path) -> None:
    cols = columns(varying)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [fmt(r.get(c), c).replace("|", "\\|") for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    path.write_text("\n".join(lines) + "\n")


def plot(rows: list[dict[str, Any]], varying: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = varying[:3]
    fig, axes = plt.subplots(
        1, 1 + len(shown), figsize=(5 + 4 * len(shown), 4), squeeze=False, constrained_layout=True
    )
    ax = axes[0][0]
    labels = [
        "\n".join(f"{k}={r['_overrides'].get(k, '')}" for k in shown) or r["job"] for r in rows
    ]
    width = 0.8 / len(METRICS)
    for j, m in enumerate(METRICS):
        xs = [i + (j - (len(METRICS) - 1) / 2) * width for i in range(len(rows))]
        ys = [r[m] if r[m] is not None else 0.0 for r in rows]
        ax.bar(xs, ys, width=width, label=m)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel("validation accuracy")
    ax.set_title("per job")
    ax.legend(fontsize=7)
    for a, k in zip(axes[0][1:], shown, strict=False):
        values = sorted({r["_overrides"].get(k, "") for r in rows}, key=_sort_key)
        pos = {v: i for i, v in enumerate(values)}
        pts = [(pos[r["_overrides"].get(k, "")], r["val_acc"]) for r in rows if r["val_acc"]]
        if pts:
            a.scatter(*zip(*pts, strict=True))
        a.set_xticks(range(len(values)))
        a.set_xticklabels(values, fontsize=7)
        a.set_xlabel(k)
        a.set_ylabel("val_acc (best derived)")
        a.set_title(f"val_acc vs {k}")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _sort_key(v: str) -> tuple[int, float, str]:
    try:
        return (0, float(v), v)
    except ValueError:
        return (1, 0.0, v)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("multirun_dir", type=Path)
    p.add_argument("--out", type=Path, default=None, help="output folder (default: multirun_dir)")
    args = p.parse_args(argv)
    root: Path = args.multirun_dir
    if not root.is_dir():
        print(f"error: {root} is not a directory", file=sys.stderr)
        return 2
    rows, varying = collect(root)
    if not rows:
        print(f"error: no job directories (.hydra/overrides.yaml) under {root}", file=sys.stderr)
        return 2
    out = args.out or root
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, varying, out / "results.csv")
    write_markdown(rows, varying, out / "results.md")
    plot(rows, varying, out / "results.png")
    print((out / "results.md").read_text(), end="")
    print(f"wrote {out / 'results.csv'}, {out / 'results.md'}, {out / 'results.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

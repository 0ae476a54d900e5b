"""ENAS's pick against uniformly sampled architectures and random search's pick, all retrained.

Shared-weight accuracies favour the architectures the supernet was trained on (issue 16), so
this recipe compares architectures only after retraining them the same way: the final training
of ``experiment=quickstart`` (plus any overrides, e.g. another data set). It

1. samples ``--uniform`` architectures uniformly from the configured space (architecture ``i``
   from a generator seeded with ``i``, the space's own uniform sampler, ``controller=random``),
   writes them to ``<out>/archs/uniform_<i>.json`` and retrains each with ``task=final seed=<i>``
   in ``<out>/uniform_<i>`` (skipped where ``metrics.json`` already exists: a rerun resumes);
2. reads the final test accuracies of ENAS's and random search's derived architectures from the
   sweeps of ``experiments/random_vs_enas.py`` (``--rve``: their ``results.csv``);
3. prints (and writes ``<out>/study.md`` and ``<out>/study.json``) each group's mean with a 95%
   t-interval, ENAS minus uniform (Welch) and ENAS minus random search (paired by seed).

    python experiments/retrained_study.py --out runs/study_digits --rve runs/rve/results.csv \\
        [--uniform 5] [extra overrides, e.g. dataset=image_folder dataset.data_dir=...]
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
from pathlib import Path

import torch
from hydra import compose, initialize_config_module
from scipy import stats

from enas_lightning.arch.io import save_arch
from enas_lightning.build import build_controller
from enas_lightning.config import register_configs


def uniform_sampler(overrides: list[str]):
    """The configured space's uniform sampler (``controller=random``) and its op names."""
    register_configs()
    with initialize_config_module("enas_lightning.conf", version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=["experiment=quickstart", "controller=random", *overrides],
        )
    return build_controller(cfg), tuple(cfg.search_space.ops)


def uniform_archs(n: int, overrides: list[str]) -> tuple[list, tuple[str, ...]]:
    """``n`` architectures of the configured space, number ``i`` seeded with ``i``."""
    controller, ops = uniform_sampler(overrides)
    return [
        controller.sample_archs(1, torch.Generator().manual_seed(i), uniform=True)[0]
        for i in range(n)
    ], ops


def retrain_once(arch_file: Path, run: Path, seed: int, overrides: list[str]) -> dict:
    """Retrain ``arch_file`` with the quickstart's final training (plus ``overrides``) and
    ``seed`` in ``run``; skipped where ``run/metrics.json`` exists (a rerun resumes). Returns
    the metrics."""
    metrics = run / "metrics.json"
    if not metrics.is_file():
        cmd = [
            sys.executable,
            "-m",
            "enas_lightning",
            "experiment=quickstart",
            "task=final",
            f"arch={arch_file}",
            f"seed={seed}",
            f"hydra.run.dir={run}",
            "trainer.enable_progress_bar=false",
            *overrides,
        ]
        print(" ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    return json.loads(metrics.read_text())


def retrain(out: Path, n: int, overrides: list[str]) -> list[dict]:
    archs, ops = uniform_archs(n, overrides)
    (out / "archs").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, arch in enumerate(archs):
        arch_file = out / "archs" / f"uniform_{i}.json"
        save_arch(arch, arch_file, ops)
        run = out / f"uniform_{i}"
        m = retrain_once(arch_file, run, i, overrides)
        rows.append(
            {"group": "uniform", "seed": i, "test_acc": m["test_acc"], "params": m["params"]}
        )
    return rows


def searched(paths: list[Path]) -> list[dict]:
    rows = []
    for path in paths:
        with path.open() as f:
            for r in csv.DictReader(f):
                group = "enas" if r["controller"] == "enas" else "random search"
                rows.append(
                    {
                        "group": group,
                        "seed": int(r["seed"]),
                        "test_acc": float(r["test_acc"]),
                        "params": int(r["params"]),
                    }
                )
    return rows


def t_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and the t-interval of the mean (a single value: the interval is that value)."""
    m = statistics.mean(values)
    if len(values) < 2:
        return m, m, m
    half = stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * stats.sem(values)
    return m, m - half, m + half


def compare(rows: list[dict]) -> dict:
    groups = {
        g: sorted((r for r in rows if r["group"] == g), key=lambda r: r["seed"])
        for g in ("enas", "random search", "uniform")
    }
    out: dict = {"groups": {}, "differences": {}}
    for g, rs in groups.items():
        if rs:
            m, lo, hi = t_interval([r["test_acc"] for r in rs])
            out["groups"][g] = {
                "n": len(rs),
                "mean": m,
                "ci95": [lo, hi],
                "per_seed": {r["seed"]: r["test_acc"] for r in rs},
                "mean_params": statistics.mean(r["params"] for r in rs),
            }
    enas = out["groups"].get("enas")
    uni = out["groups"].get("uniform")
    rnd = out["groups"].get("random search")
    if enas and uni and enas["n"] > 1 and uni["n"] > 1:
        a, b = list(enas["per_seed"].values()), list(uni["per_seed"].values())
        diff = statistics.mean(a) - statistics.mean(b)
        # Welch's interval: the two groups are independent samples with their own spread
        va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
        dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)) if va + vb else 1
        half = stats.t.ppf(0.975, dof) * (va + vb) ** 0.5
        out["differences"]["enas - uniform (Welch)"] = {
            "mean": diff,
            "ci95": [diff - half, diff + half],
        }
    if enas and rnd:
        seeds = sorted(set(enas["per_seed"]) & set(rnd["per_seed"]))
        d = [enas["per_seed"][s] - rnd["per_seed"][s] for s in seeds]
        if len(d) > 1:
            m, lo, hi = t_interval(d)
            out["differences"]["enas - random search (paired by seed)"] = {
                "mean": m,
                "ci95": [lo, hi],
                "per_seed": dict(zip(seeds, d, strict=True)),
            }
    return out


def markdown(result: dict) -> str:
    lines = [
        "| retrained architecture | n | mean final test acc | 95% t-interval | per seed | mean params |",
        "|---|---|---|---|---|---|",
    ]
    names = {
        "enas": "ENAS's pick",
        "random search": "random search's pick",
        "uniform": "uniform sample",
    }
    for g, d in result["groups"].items():
        per = ", ".join(f"{s}: {v:.4f}" for s, v in d["per_seed"].items())
        lines.append(
            f"| {names[g]} | {d['n']} | {d['mean']:.4f} | {d['ci95'][0]:.4f} .. {d['ci95'][1]:.4f} "
            f"| {per} | {d['mean_params']:.0f} |"
        )
    for name, d in result["differences"].items():
        lines.append(
            f"\n{name}: {d['mean']:+.4f} (95% interval {d['ci95'][0]:+.4f} .. {d['ci95'][1]:+.4f})"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--uniform", type=int, default=5, help="uniform architectures to retrain")
    # one path per --rve (repeat it): a list option would swallow the Hydra overrides after it
    parser.add_argument(
        "--rve", type=Path, action="append", default=[], help="random_vs_enas results.csv"
    )
    parser.add_argument("extra", nargs="*", help="extra Hydra overrides (data set, ...)")
    args = parser.parse_args()
    out = args.out.resolve()
    rows = retrain(out, args.uniform, args.extra) + searched(args.rve)
    result = compare(rows)
    result["overrides"] = args.extra
    md = markdown(result)
    (out / "study.md").write_text(md + "\n")
    (out / "study.json").write_text(json.dumps(result, indent=2) + "\n")
    print(md)


if __name__ == "__main__":
    main()

"""Levers against the collapse to parameter-free cells, judged by retraining (issue 20).

For each lever (a name and its Hydra overrides) and each search seed, this recipe runs a
``task=search`` of ``experiment=quickstart`` with the common overrides (the data set, the
search budget) plus the lever's, then retrains the derived architecture (and the controller's
greedy one) from scratch with ``task=final`` for every retrain seed, with the regime's
overrides (``--final``: width, depth, epochs). Every run has its own directory under
``<out>/<lever>/s<seed>/`` (the retrains under a folder named by a hash of their overrides); a finished run (``best_arch.json`` or ``metrics.json``) is skipped,
so a rerun resumes. It prints and writes ``<out>/levers.csv`` and ``<out>/levers.md``: per lever,
the derived and greedy cells' parameter-free shares and retrained accuracies (seed means), against
the mean retrained accuracy of the uniform cells of a regime study (``--uniform-ref``:
``experiments/regime.py``'s ``regime.json``, retrained the same way).

Shared-weight accuracies are reported too, but they favour parameter-free cells and decide
nothing here. A lever that only changes the derivation, such as ``--lever ft10
"search.derive_finetune_steps=10"`` (every candidate fine-tuned before it is scored), trains the
same supernet and controller as ``base`` (recomputed in its own directory); its shared-weight
columns are fine-tuned scores, which ``levers.csv`` marks (``shared_finetune_steps``).

    python experiments/levers.py --out runs/levers --seeds 0,1 --retrain-seeds 0,1 \\
        --uniform-ref runs/regime/regime.json --final "final.channels=8" \\
        --lever base "" --lever pfdrop "search.param_free_dropout=0.5" \\
        dataset=image_folder dataset.data_dir=data/fmnist800 ...
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

from regime import param_free_share
from retrained_study import retrain_once

from enas_lightning.arch.io import arch_from_dict, load_arch


def run(cmd: list[str]) -> None:
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def search(out: Path, seed: int, overrides: list[str]) -> Path:
    best = out / "best_arch.json"
    if not best.is_file():
        resume = ["resume=true"] if (out / "checkpoints" / "last.ckpt").is_file() else []
        run(
            [
                sys.executable,
                "-m",
                "enas_lightning",
                "experiment=quickstart",
                "task=search",
                f"seed={seed}",
                f"hydra.run.dir={out}",
                "trainer.enable_progress_bar=false",
                "logger.log_pictures=false",
                *resume,
                *overrides,
            ]
        )
    return best


def regime_key(extra: list[str], final: list[str]) -> str:
    """The folder name of a regime's retrains (a hash of the common and final overrides): a
    rerun never mixes two regimes, and experiments/cost_demo.py finds these retrains by it."""
    return "final_" + hashlib.sha1(" ".join([*extra, *final]).encode()).hexdigest()[:8]


def retrain(arch_file: Path, out: Path, seed: int, overrides: list[str]) -> float:
    return float(retrain_once(arch_file, out, seed, overrides)["test_acc"])


def greedy_file(search_dir: Path, space: str, ops: tuple[str, ...]) -> Path | None:
    """The greedy architecture of ``arch_candidates.csv`` as a JSON file (``None`` if none)."""
    path = search_dir / "greedy_arch.json"
    if path.is_file():
        return path
    with (search_dir / "arch_candidates.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["source"] == "greedy"]
    if not rows:
        return None
    arch = load_arch(rows[0]["arc"], space, ops)
    d = arch.to_dict(ops)
    path.write_text(json.dumps(d, indent=2) + "\n")
    return path


NUMBERS = (
    "shared_val_acc",
    "shared_uniform_mean",
    "pick_pf",
    "pick_acc",
    "greedy_pf",
    "greedy_acc",
)


def earlier_rows(path: Path, rows: list[dict], regime: str) -> list[dict]:
    """The rows of earlier invocations in ``levers.csv`` (other levers or seeds, the same
    regime), so that the table covers every run in ``--out``; this invocation's replace theirs."""
    if not path.is_file():
        return []
    new = {(r["lever"], r["seed"]) for r in rows}
    out = []
    with path.open(newline="") as f:
        for r in csv.DictReader(f):
            r["seed"] = int(r["seed"])
            if r.get("regime") != regime or (r["lever"], r["seed"]) in new:
                continue
            for k in NUMBERS:
                r[k] = float(r[k]) if r.get(k) not in (None, "") else None
            out.append(r)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", default="0,1", help="search seeds, comma-separated")
    parser.add_argument("--retrain-seeds", default="0,1", help="retrain seeds, comma-separated")
    parser.add_argument(
        "--lever",
        nargs=2,
        action="append",
        metavar=("NAME", "OVERRIDES"),
        required=True,
        help='a lever: its name and its overrides in one string ("" for none); repeat it',
    )
    parser.add_argument("--final", default="", help="the regime's final-training overrides")
    parser.add_argument("--uniform-ref", type=Path, help="regime.py's regime.json")
    parser.add_argument(
        "--no-greedy-retrain",
        action="store_true",
        help="keep the greedy cell's parameter-free share but do not retrain it (saves time)",
    )
    parser.add_argument("extra", nargs="*", help="common Hydra overrides (data set, budget)")
    args = parser.parse_args()
    out = args.out.resolve()
    seeds = [int(v) for v in args.seeds.split(",")]
    rseeds = [int(v) for v in args.retrain_seeds.split(",")]
    final = shlex.split(args.final)
    regime = regime_key(args.extra, final)
    rows = []
    for name, lever in args.lever:
        for s in seeds:
            sdir = out / name / f"s{s}"
            best = search(sdir / "search", s, [*args.extra, *shlex.split(lever)])
            info = json.loads(best.read_text())
            space, ops = info["space"], tuple(info["ops"])
            row = {"lever": name, "seed": s, "regime": regime, "overrides": lever}
            row["ints"] = info.get("ints")
            row["shared_val_acc"] = info.get("val_acc")
            row["shared_uniform_mean"] = info.get("uniform_mean_val_acc")
            # fine-tuned shared-weight scores (search.derive_finetune_steps) are not plain ones
            row["shared_finetune_steps"] = info.get("derive_finetune_steps", 0)
            row["pick_pf"] = param_free_share(arch_from_dict(info, space))
            accs = [
                retrain(best, sdir / regime / f"pick_r{r}", r, [*args.extra, *final])
                for r in rseeds
            ]
            row["pick_acc"] = statistics.mean(accs)
            row["pick_accs"] = " ".join(f"{a:.4f}" for a in accs)
            g = greedy_file(sdir / "search", space, ops)
            if g is not None:
                garch = arch_from_dict(json.loads(g.read_text()), space)
                row["greedy_pf"] = param_free_share(garch)
                if not args.no_greedy_retrain:
                    gaccs = [
                        retrain(g, sdir / regime / f"greedy_r{r}", r, [*args.extra, *final])
                        for r in rseeds
                    ]
                    row["greedy_acc"] = statistics.mean(gaccs)
            rows.append(row)
    ref = json.loads(args.uniform_ref.read_text()) if args.uniform_ref else None
    rows = earlier_rows(out / "levers.csv", rows, regime) + rows
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with (out / "levers.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    lines = [
        "| lever | search seeds | pick retrained (mean over seeds) | per seed | pick param-free "
        "share | greedy retrained | greedy param-free share |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in dict.fromkeys(r["lever"] for r in rows):  # in order of first appearance
        group = sorted((r for r in rows if r["lever"] == name), key=lambda r: r["seed"])

        def fmt(key: str, group=group) -> str:
            vals = [r[key] for r in group if r.get(key) is not None]
            return f"{statistics.mean(vals):.4f}" if vals else "-"

        per = ", ".join(f"{r['seed']}: {r['pick_acc']:.4f}" for r in group)
        lines.append(
            f"| {name} | {len(group)} | {fmt('pick_acc')} | {per} | {fmt('pick_pf')} | "
            f"{fmt('greedy_acc')} | {fmt('greedy_pf')} |"
        )
    if ref is not None:
        lines.append(
            f"\nuniform cells ({ref['archs']} archs x seeds {ref['seeds']}, the same retraining): "
            f"mean {ref['mean_acc']:.4f}, cell sd {ref['cell_sd']:.4f}, mean param-free share "
            f"{statistics.mean(p['param_free_share'] for p in ref['per_arch']):.2f}"
        )
    md = "\n".join(lines)
    (out / "levers.md").write_text(md + "\n")
    print(md)


if __name__ == "__main__":
    main()

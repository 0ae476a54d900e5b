"""Derive again from finished searches with another score, then retrain the picks (issue 20).

A search's derivation scores its candidates on its shared weights by the search's reward and
keeps the best. The candidates are in ``arch_candidates.csv`` (the controller's samples and its
greedy architecture; not its uniform reference rows), so ``--reward accuracy`` with one run per
group picks what the search derived (up to ties). This recipe asks three questions of searches
that already ran, without training a supernet again:

* ``--reward loss``: would ranking the same candidates by the validation loss instead of the
  accuracy (Ning et al. 2021) pick better, or less parameter-free, cells?
* ``--set search.derive_finetune_steps=10``: would a few steps of per-candidate fine-tuning
  before scoring (Zhang et al. 2020) pick cells with more weights?
* ``--param-free-adjust``: would ranking by the residual of the candidates' line in
  parameter-free share (the derivation of ``search.param_free_adjust``) pick better cells?
* ``--group N``: would an ensemble of N supernets pick better? The runs are taken N at a time,
  in the order given; each group's candidates (the union of its runs') are scored on every
  supernet of the group, ranked per supernet, and the pick is the best mean rank. This costs N
  searches; experiments/shared_rank.py measures what it does to the ranking of fixed cells.

Each pick is retrained with ``task=final`` for every retrain seed with the common overrides and
the regime's (``--final``), as experiments/levers.py retrains. Every pick and retrain has its own
directory under ``--out``; a finished retrain is skipped, so a rerun resumes. Prints and writes
``<out>/rederive.md`` and ``rederive.json``.

    python experiments/rederive.py --out runs/rederive/loss --reward loss \\
        --final "final.channels=16 final.layers=3 final.epochs=10" \\
        --run runs/levers/warmup30/s0/search --run runs/levers/warmup30/s1/search ... \\
        dataset=image_folder dataset.data_dir=data/fmnist800 ...
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import statistics
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from regime import param_free_share
from retrained_study import retrain_once
from shared_rank import load_run

from enas_lightning.arch.io import load_arch, save_arch
from enas_lightning.config import run_config
from enas_lightning.fidelity.search_run import find_search_run
from enas_lightning.fidelity.stats import average_ranks
from enas_lightning.rewards import get_reward
from enas_lightning.search.derivation import least_squares_line
from enas_lightning.spaces import ArchRecord


def candidates(search_dir: Path) -> list[str]:
    """The candidates of a search's derivation (``arch_candidates.csv``: the controller's
    samples and its greedy architecture), as the authors' integer strings, in the file's
    order."""
    with (search_dir / "arch_candidates.csv").open(newline="") as f:
        # the file's "uniform" rows are the derivation's reference sample, never derived
        return [r["arc"] for r in csv.DictReader(f) if r["source"] in ("controller", "greedy")]


def scores(
    search_dir: Path, arcs: list[str], reward: str, sets: list[str] = ()
) -> tuple[list[float], list[ArchRecord]]:
    """Each candidate's shared-weight score on ``search_dir``'s supernet by ``reward`` (higher
    is better), on the whole validation split as the derivation scores, with ``sets`` (e.g.
    ``search.derive_finetune_steps=10``) applied."""
    module = load_run(search_dir, sets)
    ss = module.cfg.search_space
    archs = [load_arch(a, ss.name, tuple(ss.ops)) for a in arcs]
    return module.score(archs, get_reward(reward)).tolist(), archs


def adjusted(values: list[float], archs: list) -> list[float]:
    """``search.param_free_adjust``'s ranking, as the derivation takes it: each score minus the
    least-squares line of score on parameter-free share fitted over all of them."""
    shares = [param_free_share(a) for a in archs]
    intercept, slope = least_squares_line(shares, values)
    return [v - (intercept + slope * x) for v, x in zip(values, shares, strict=True)]


def pick(group: list[Path], reward: str, sets: list[str] = (), adjust: bool = False) -> dict:
    """The group's pick: the best mean rank over its supernets of the union of its candidates
    (for one run: its best score). Ties go to the candidate listed first. ``adjust``: each
    supernet's scores are ranked after removing their line in parameter-free share."""
    arcs = list(dict.fromkeys(a for run in group for a in candidates(run)))
    ranks, archs = [], []
    for run in group:
        s, archs = scores(run, arcs, reward, sets)
        ranks.append(average_ranks(adjusted(s, archs) if adjust else s))
    mean_rank = np.mean(ranks, axis=0)
    best = int(np.argmax(mean_rank))
    return {"arc": arcs[best], "arch": archs[best], "candidates": len(arcs)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--run", type=Path, action="append", required=True, help="a search run")
    p.add_argument("--reward", default="accuracy", choices=("accuracy", "loss"))
    p.add_argument("--group", type=int, default=1, help="supernets per pick (an ensemble)")
    p.add_argument("--retrain-seeds", default="0,1")
    p.add_argument("--final", default="", help="the regime's final-training overrides")
    p.add_argument("--set", action="append", default=[], help="KEY=VALUE for the scoring")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--param-free-adjust",
        action="store_true",
        help="rank by the residual of the candidates' line in parameter-free share",
    )
    p.add_argument("extra", nargs="*", help="common Hydra overrides (data set), as levers.py")
    a = p.parse_args()
    if a.group < 1 or len(a.run) % a.group:
        p.error(f"--group: a divisor of the number of runs ({len(a.run)}), got {a.group}")
    torch.set_num_threads(a.threads)
    overrides = [*a.extra, *shlex.split(a.final)]
    seeds = [int(s) for s in a.retrain_seeds.split(",")]

    rows = []
    for g in range(len(a.run) // a.group):
        group = a.run[g * a.group : (g + 1) * a.group]
        gdir = a.out / f"g{g}"
        chosen = pick(group, a.reward, a.set, a.param_free_adjust)
        arch = chosen["arch"]
        cfg = run_config(OmegaConf.load(find_search_run(str(group[0])).config_file))
        save_arch(arch, gdir / "pick.json", tuple(cfg.search_space.ops))
        accs = [
            float(retrain_once(gdir / "pick.json", gdir / f"pick_r{r}", r, overrides)["test_acc"])
            for r in seeds
        ]
        row = {
            "runs": [str(r) for r in group],
            "arc": chosen["arc"],
            "candidates": chosen["candidates"],
            "param_free_share": param_free_share(arch),
            "accs": accs,
            "mean": statistics.mean(accs),
        }
        rows.append(row)
        print(
            f"group {g}: pf {row['param_free_share']:.2f}, retrained {row['mean']:.4f}", flush=True
        )

    lines = [
        f"Picks derived again by {a.reward}, {a.group} supernet(s) each"
        + (
            ", ranked by the residual of the line in parameter-free share"
            if a.param_free_adjust
            else ""
        )
        + (f", scored with {' '.join(a.set)}" if a.set else "")
        + f"; retrained with {' '.join(overrides)}",
        "",
        "| group | runs | candidates | param-free share | retrained per seed | mean |",
        "|---|---|---|---|---|---|",
    ]
    for g, r in enumerate(rows):
        runs = ", ".join(Path(x).parent.name for x in r["runs"])
        per = " / ".join(f"{x:.4f}" for x in r["accs"])
        lines.append(
            f"| {g} | {runs} | {r['candidates']} | {r['param_free_share']:.2f} | {per} "
            f"| {r['mean']:.4f} |"
        )
    lines += [
        "",
        f"mean retrained {statistics.mean(r['mean'] for r in rows):.4f}, mean param-free share "
        f"{statistics.mean(r['param_free_share'] for r in rows):.3f} over {len(rows)} picks",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "rederive.md").write_text(text)
    (a.out / "rederive.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

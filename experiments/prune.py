"""Prune to the best candidates, keep training on them, pick again (issue 20's last anchor).

Ning et al. 2021 ("Evaluating Efficient Performance Estimators of Neural Architectures") report
that pruning the candidates to the top k% by their shared-weight score and then training the
supernet on those alone ranks the best architectures better. Before such a setting is built into
the search, this recipe measures it on finished searches:

1. the search's derivation candidates (``arch_candidates.csv``: the controller's samples and its
   greedy cell; for ``controller=random`` the 50 uniform samples) are scored on the finished
   supernet by ``--reward``, as the derivation scores them (their best is the search's own pick,
   up to ties);
2. the ``--keep`` best stay; a copy of the supernet trains ``--steps`` SGD steps, each on one of
   them drawn uniformly (the package's ``search/finetune.py`` ``train_steps``: the search's
   momentum, Nesterov, weight decay and clipping, learning rates on a half cosine from ``--lr``
   to ``search.optim.lr_min``); the supernet itself is untouched;
3. the kept candidates are scored again on that copy and the best is the pruned pick, retrained
   with ``task=final`` for every retrain seed as experiments/levers.py retrains.

Each run has its own directory under ``--out`` (``<lever>_s<seed>``: ``prune.json`` with both
stages' scores, ``pick.json``, one retrain directory per seed); a finished stage or retrain is
skipped, so a rerun resumes. Prints and writes ``<out>/prune.md`` and ``prune.json``; with
``--levers`` (experiments/levers.py's csv) the table sets each pruned pick beside the search's
own pick retrained, paired by run.

    python experiments/prune.py --out runs/prune --keep 10 --steps 1000 \\
        --final "final.channels=16 final.layers=3 final.epochs=10" \\
        --levers runs/levers_fix/levers.csv \\
        --run runs/levers_fix/random/s0/search ... dataset=image_folder ...

Written before the setting existed, to measure it on finished searches; both stages are now the
package's (``search.derive_prune_keep``, ``_steps``, ``_lr``: :meth:`SearchModule.prune`), so a
search run with the setting derives what this recipe picks from its candidates.
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
from powered_study import uniform_rows
from rederive import candidates
from regime import param_free_share
from retrained_study import compare, retrain_once, t_interval
from shared_rank import lever_and_seed, load_run

from enas_lightning.arch.io import load_arch, save_arch
from enas_lightning.config import run_config
from enas_lightning.fidelity.search_run import find_search_run
from enas_lightning.rewards import get_reward
from enas_lightning.search.derivation import Derivation
from enas_lightning.search.module import SearchModule


def prune_pick(
    module: SearchModule, arcs: list[str], keep: int, steps: int, lr: float, reward: str
) -> dict:
    """Both stages on one finished search (see the module docstring), by the package's pruned
    derivation (``search.derive_prune_keep``, :meth:`SearchModule.prune`) with ``reward`` for
    both scorings. Returns a dict with the first stage's scores, the kept indices (best first),
    the second stage's scores of the kept ones (in that order) and the pick's index into
    ``arcs``."""
    ss = module.cfg.search_space
    archs = [load_arch(a, ss.name, tuple(ss.ops)) for a in arcs]
    module.reward = get_reward(reward)
    s = module.cfg.search
    s.derive_prune_keep, s.derive_prune_steps, s.derive_prune_lr = keep, steps, lr
    first = module.score(archs).tolist()
    pruned = module.prune(Derivation(archs, first, None))
    return {
        "first": first,
        "kept": pruned.pruned,
        "second": pruned.pruned_scores,
        "pick": pruned.best_index,
    }


def own_picks(levers_csv: Path | None) -> dict[tuple[str, str], list[float]]:
    """``(lever, seed)`` → the search's own pick's retrained accuracies, from levers.py's csv."""
    if levers_csv is None:
        return {}
    with levers_csv.open(newline="") as f:
        return {
            (r["lever"], r["seed"]): [float(x) for x in r["pick_accs"].split()]
            for r in csv.DictReader(f)
            if r["pick_accs"]
        }


def paired(diffs: list[float]) -> str:
    """Mean difference and its 95% t-interval (none under two runs)."""
    if not diffs:
        return "n/a"
    m, lo, hi = t_interval(diffs)
    return f"{m:+.4f} ({lo:+.4f} .. {hi:+.4f})" if len(diffs) > 1 else f"{m:+.4f} (one run)"


def summary(name: str, rows: list[dict], uniform: list[dict]) -> str:
    """One line on a group of runs: their pruned picks' mean and share, how many changed, the
    paired difference from the searches' own picks and, given ``uniform`` cells
    (powered_study.uniform_rows), Welch's difference from their mean."""
    diffs = [r["mean"] - statistics.mean(r["own_accs"]) for r in rows if r["own_accs"]]
    line = (
        f"{name}: pruned picks {np.mean([r['mean'] for r in rows]):.4f} over {len(rows)} "
        f"runs, param-free share {np.mean([r['param_free_share'] for r in rows]):.3f} "
        f"(own picks {np.mean([r['own_param_free_share'] for r in rows]):.3f}); "
        f"changed {sum(r['changed'] for r in rows)} of {len(rows)}; pruned minus own, "
        f"paired: {paired(diffs)}"
    )
    if uniform:
        picks = [
            {"group": "enas", "seed": i, "test_acc": r["mean"], "params": 0}
            for i, r in enumerate(rows)
        ]
        welch = compare(picks + uniform)["differences"].get("enas - uniform (Welch)")
        if welch:
            lo, hi = welch["ci95"]
            line += (
                f"; minus the {len(uniform)} uniform cells (mean "
                f"{statistics.mean(u['test_acc'] for u in uniform):.4f}, Welch): "
                f"{welch['mean']:+.4f} ({lo:+.4f} .. {hi:+.4f})"
            )
    return line


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--run", type=Path, action="append", required=True, help="a search run")
    p.add_argument("--keep", type=int, default=10, help="candidates kept after the first scoring")
    p.add_argument("--steps", type=int, default=1000, help="training steps on the kept ones")
    p.add_argument("--lr", type=float, default=0.01, help="the copy's first learning rate")
    p.add_argument("--reward", default="accuracy", choices=("accuracy", "loss"))
    p.add_argument("--retrain-seeds", default="0,1")
    p.add_argument("--final", default="", help="the regime's final-training overrides")
    p.add_argument("--levers", type=Path, help="levers.py's csv: the searches' own picks")
    p.add_argument(
        "--regime", type=Path, action="append", default=[], help="regime.json of uniform cells"
    )
    p.add_argument("--uniform-seeds", help="average each uniform cell over these retrain seeds")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("extra", nargs="*", help="common Hydra overrides (data set), as levers.py")
    a = p.parse_args()
    if a.keep < 1 or a.steps < 1:
        p.error(f"--keep and --steps: positive integers, got {a.keep} and {a.steps}")
    try:
        seeds = [int(s) for s in a.retrain_seeds.split(",")]
    except ValueError:
        p.error(f"--retrain-seeds: a comma-separated list of integers, got {a.retrain_seeds!r}")
    if a.uniform_seeds is not None:
        try:
            a.uniform_seeds = [int(x) for x in a.uniform_seeds.split(",")]
        except ValueError:
            p.error(f"--uniform-seeds {a.uniform_seeds}: comma-separated integers")
    torch.set_num_threads(a.threads)
    overrides = [*a.extra, *shlex.split(a.final)]
    own = own_picks(a.levers)

    rows = []
    for run in a.run:
        lever, seed = lever_and_seed(run)
        rdir = a.out / f"{lever}_s{seed}"
        state = rdir / "prune.json"
        arcs = candidates(run)
        if a.keep > len(arcs):
            raise SystemExit(f"--keep {a.keep}: {run} has only {len(arcs)} candidates")
        if state.is_file():
            got = json.loads(state.read_text())
            same = (got["keep"], got["steps"], got["lr"], got["reward"])
            if same != (a.keep, a.steps, a.lr, a.reward):
                raise SystemExit(
                    f"--out {a.out}: {state} was made with keep/steps/lr/reward {same}; "
                    "use another --out"
                )
        else:
            module = load_run(run)
            got = prune_pick(module, arcs, a.keep, a.steps, a.lr, a.reward)
            got.update(keep=a.keep, steps=a.steps, lr=a.lr, reward=a.reward, arcs=arcs)
            rdir.mkdir(parents=True, exist_ok=True)
            state.write_text(json.dumps(got, indent=1))
        cfg = run_config(OmegaConf.load(find_search_run(str(run)).config_file))
        ops = tuple(cfg.search_space.ops)
        pick = load_arch(arcs[got["pick"]], cfg.search_space.name, ops)
        save_arch(pick, rdir / "pick.json", ops)
        accs = [
            float(retrain_once(rdir / "pick.json", rdir / f"pick_r{r}", r, overrides)["test_acc"])
            for r in seeds
        ]
        first_best = got["kept"][0]
        row = {
            "run": str(run),
            "lever": lever,
            "seed": seed,
            "changed": got["pick"] != first_best,
            "pick_rank_first": got["kept"].index(got["pick"]) + 1,
            "arc": arcs[got["pick"]],
            "param_free_share": param_free_share(pick),
            "own_param_free_share": param_free_share(
                load_arch(arcs[first_best], cfg.search_space.name, ops)
            ),
            "accs": accs,
            "mean": statistics.mean(accs),
            "own_accs": own.get((lever, seed)),
        }
        rows.append(row)
        print(f"{lever} s{seed}: pf {row['param_free_share']:.2f}, {row['mean']:.4f}", flush=True)

    lines = [
        f"Pruned to the {a.keep} best candidates by {a.reward}, {a.steps} more steps on them "
        f"(lr {a.lr} on a half cosine), picked again; retrained with {' '.join(overrides)}",
        "",
        "| run | pick changed (its first-stage rank) | pruned pick retrained per seed | mean "
        "| its param-free share | own pick retrained | its share |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        per = " / ".join(f"{x:.4f}" for x in r["accs"])
        own_mean = f"{statistics.mean(r['own_accs']):.4f}" if r["own_accs"] else "-"
        lines.append(
            f"| {r['lever']} s{r['seed']} | {'yes' if r['changed'] else 'no'} "
            f"({r['pick_rank_first']}) | {per} | {r['mean']:.4f} | {r['param_free_share']:.2f} "
            f"| {own_mean} | {r['own_param_free_share']:.2f} |"
        )
    uniform = uniform_rows(a.regime, a.uniform_seeds) if a.regime else []
    groups = {r["lever"]: [x for x in rows if x["lever"] == r["lever"]] for r in rows}
    if len(groups) > 1:
        groups["all runs"] = rows
    for name, mine in groups.items():
        lines += ["", summary(name, mine, uniform)]
    text = "\n".join(lines) + "\n"
    print(text)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "prune.md").write_text(text)
    (a.out / "prune.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

"""Few-shot sub-supernets: does splitting a supernet on one decision rank retrained cells better?

Issue 20's last optional lever. Zhao et al. 2021 ("Few-shot Neural Architecture Search") split
the one-shot supernet on one decision into one sub-supernet per choice, each initialised from
the supernet's weights and trained on the children with that choice only; Zhang et al. 2020
("Deeper Insights into Weight Sharing") report sub-supernets lifting the rank correlation with
retrained accuracy. Before such a setting is built into the search, this recipe measures it on
finished searches, against the same retrained uniform cells as ``shared_rank.py``:

- ``base``: the search's supernet as it finished;
- ``continued``: a copy trained ``V * T`` more steps on uniformly sampled children, V the
  decision's choices (the split's whole compute spent on one supernet: separates what the split
  buys from what more training buys);
- ``split``: one copy per choice v, trained ``T`` steps on uniform children whose split decision
  is set to v (exactly uniform sampling conditioned on it: under uniform sampling the decisions
  are independent). Each retrained cell is scored on the copy of its own choice.

Beside tau against the retrained means it prints tau between the shared scores and the cells'
parameter-free share: the weight-sharing bias of issue 20 (> 0: the cells without weights score
higher).

    python experiments/few_shot.py --regime runs/regime_c16 --out runs/few_shot/base.md \\
        runs/levers/base/s0/search runs/levers/base/s1/search ...

The continued training is plain SGD with the search's momentum, Nesterov, weight decay and
gradient clipping, on cosine learning rates from ``--lr`` to ``search.optim.lr_min``; each copy's
minibatches and children come from generators seeded by the run's seed and the copy's name.
Hand-written rather than a Lightning fit of a constrained strategy: it is a probe of finished
searches, and a setting is built only if it helps.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import statistics
import zlib
from pathlib import Path

import torch
from shared_rank import lever_and_seed, load_run, rank_stats
from torch import nn

from enas_lightning.arch.io import load_arch
from enas_lightning.fidelity.stats import kendall_tau_b
from enas_lightning.optim import clip_gradients_, optimizer_grads
from enas_lightning.rewards import get_reward
from enas_lightning.search.module import SearchModule
from enas_lightning.spaces.micro.arch import MicroArch, MicroCell, MicroNode

REWARDS = ("accuracy", "loss")


def with_op(arch: MicroArch, cell: str, node: int, slot: int, op: str) -> MicroArch:
    """``arch`` with op ``slot`` (0 or 1) of computed node ``node`` of ``cell`` set to ``op``."""
    c: MicroCell = arch.cells[cell]
    n = c.nodes[node]
    ops = tuple(op if i == slot else o for i, o in enumerate(n.ops))
    nodes = c.nodes[:node] + (MicroNode(n.inputs, ops),) + c.nodes[node + 1 :]
    return dataclasses.replace(arch, **{cell: MicroCell(nodes)})


def split_value(arch: MicroArch, cell: str, node: int, slot: int) -> str:
    """The op ``arch`` chose at the split decision."""
    return arch.cells[cell].nodes[node].ops[slot]


def train_copy(
    module: SearchModule, steps: int, lr: float, name: str, fix: tuple | None
) -> nn.Module:
    """A copy of ``module``'s supernet after ``steps`` SGD steps of uniform children (with the
    split decision ``fix = (cell, node, slot, op)`` set, if given). The supernet is untouched."""
    net = copy.deepcopy(module.supernet)
    o = module.cfg.search.optim
    sgd = torch.optim.SGD(
        net.parameters(), lr=lr, momentum=o.momentum, nesterov=o.nesterov,
        weight_decay=2.0 * o.l2_reg,
    )  # fmt: skip
    key = zlib.crc32(name.encode())
    gen = module.generator(7_000_001, key)
    torch.manual_seed(module.seed * 1_000_003 + key)  # dropout's draws
    archs = module.uniform_archs(steps, gen)
    if fix is not None:
        archs = [with_op(a, *fix) for a in archs]
    n = len(module.data.train_y)
    b = min(module.cfg.search.batch_size, n)
    net.train()
    with torch.enable_grad():
        for step, arch in enumerate(archs):
            # cosine from lr to lr_min over the copy's steps
            t = step / max(steps - 1, 1)
            for g in sgd.param_groups:
                g["lr"] = o.lr_min + 0.5 * (lr - o.lr_min) * (1 + math.cos(math.pi * t))
            pick = torch.randperm(n, generator=gen)[:b]
            x, y = module.data.train_batch(pick, gen)
            loss, _ = module.child_loss(net, x, y, arch)
            sgd.zero_grad(set_to_none=True)
            loss.backward()
            norm = clip_gradients_(optimizer_grads(sgd), o.grad_clip, o.grad_clip_mode)
            if bool(torch.isfinite(norm)):
                sgd.step()
    return net


def scores_on(module: SearchModule, net: nn.Module, archs: list) -> dict[str, list[float]]:
    """Each reward's derivation score of ``archs`` on ``net`` (the supernet or a copy)."""
    return {r: module.score(archs, get_reward(r), source=net).tolist() for r in REWARDS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--regime", type=Path, required=True, help="experiments/regime.py's out")
    parser.add_argument("--out", type=Path, required=True, help="the Markdown table to write")
    parser.add_argument("--cell", default="normal", choices=("normal", "reduce"))
    parser.add_argument("--node", type=int, default=0, help="the split's computed node")
    parser.add_argument("--slot", type=int, default=0, choices=(0, 1), help="its op slot")
    parser.add_argument("--steps", type=int, default=400, help="T: steps per sub-supernet")
    parser.add_argument("--lr", type=float, default=0.01, help="the copies' first lr")
    parser.add_argument(
        "--no-split", action="store_true", help="only base and continued (a dose of training)"
    )
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: one core)")
    parser.add_argument("runs", type=Path, nargs="+", help="finished micro search runs")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    regime = json.loads((args.regime / "regime.json").read_text())
    cells = regime["per_arch"]
    means = [c["mean"] for c in cells]
    out_json = args.out.with_suffix(".json")
    done = json.loads(out_json.read_text()) if out_json.exists() else {}  # resumable per run
    for run in args.runs:
        if str(run) in done:
            continue
        module = load_run(run)
        ss = module.cfg.search_space
        if ss.name != "micro":
            raise SystemExit(f"{run}: search_space.name={ss.name}; this recipe splits micro cells")
        archs = [
            load_arch(args.regime / "archs" / f"uniform_{c['arch']}.json", ss.name, tuple(ss.ops))
            for c in cells
        ]
        where = (args.cell, args.node, args.slot)
        values = list(ss.ops)
        total = args.steps * len(values)
        row: dict = {"scores": {"base": scores_on(module, module.supernet, archs)}}
        cont = train_copy(module, total, args.lr, "continued", None)
        row["scores"]["continued"] = scores_on(module, cont, archs)
        split = {r: [float("nan")] * len(archs) for r in REWARDS}
        for v in [] if args.no_split else values:
            mine = [i for i, a in enumerate(archs) if split_value(a, *where) == v]
            if not mine:
                continue
            sub = train_copy(module, args.steps, args.lr, f"split-{v}", (*where, v))
            got = scores_on(module, sub, [archs[i] for i in mine])
            for r in REWARDS:
                for i, s in zip(mine, got[r], strict=True):
                    split[r][i] = s
        if not args.no_split:
            row["scores"]["split"] = split
        lever, seed = lever_and_seed(run)
        row.update(
            lever=lever, seed=seed, steps=args.steps, continued_steps=total, split=list(where)
        )
        done[str(run)] = row
        args.out.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps(done, indent=1))
        print(f"{run}: done", flush=True)

    pf = [c["param_free_share"] for c in cells]
    variants = ("base", "continued") if args.no_split else ("base", "continued", "split")
    lines = [
        f"Few-shot split on {args.cell} node {args.node} op {args.slot + 1} "
        f"(T = {args.steps} steps per sub-supernet); {len(cells)} retrained cells, noise "
        f"ceiling {regime['ceiling_tau']:.3f}",
        "",
        "| run | " + " | ".join(f"tau acc / loss: {v}" for v in variants)
        + " | " + " | ".join(f"tau(score, pf share): {v}" for v in variants) + " |",
        "|---|" + "---|" * (2 * len(variants)),
    ]  # fmt: skip
    summary: dict[str, list] = {v: [] for v in variants}
    for run in args.runs:
        row = done[str(run)]
        taus, bias = [], []
        for v in variants:
            s = row["scores"][v]
            a = rank_stats(s["accuracy"], means, args.bootstrap, 0)["tau"]
            lo = rank_stats(s["loss"], means, args.bootstrap, 0)["tau"]
            b = kendall_tau_b(s["accuracy"], pf)
            summary[v].append((a, lo, b))
            taus.append(f"{a:.3f} / {lo:.3f}")
            bias.append(f"{b:+.3f}")
        lines.append(f"| {row['lever']} s{row['seed']} | " + " | ".join(taus + bias) + " |")
    cols = [
        f"{statistics.mean(x[0] for x in summary[v]):.3f} / "
        f"{statistics.mean(x[1] for x in summary[v]):.3f}"
        for v in variants
    ] + [f"{statistics.mean(x[2] for x in summary[v]):+.3f}" for v in variants]
    lines.append(f"| mean of {len(args.runs)} | " + " | ".join(cols) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.write_text(text)


if __name__ == "__main__":
    main()

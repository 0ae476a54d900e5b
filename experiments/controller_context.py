"""Can the quickstart's controller learn a different op for different decisions in its budget?

The searches of issue 20 end with one op distribution for all 16 op decisions (no op's
probability differs by more than 0.024 between decisions; ``experiments/greedy_margin.py``).
That is either all the controller can learn in the quickstart's 300 updates (30 controller
epochs of ``controller.train_steps=10`` updates of ``controller.num_aggregate=10`` children,
logits bounded by ``tanh_constant / op_tanh_reduce``), or all the shared-weight reward asks
for. This trains the quickstart's controller (built from ``experiment=quickstart``, Adam with
its lr, betas and eps, the search's sequential moving-average baseline and entropy bonus) on
synthetic rewards whose answer is known, with noise of a 32-image minibatch's accuracy:

- ``context-free``: the fraction of op decisions that pick ``max_pool_3x3``;
- ``by cell``: the normal cell's decisions should pick ``sep_conv_3x3``, the reduction cell's
  ``max_pool_3x3`` (the fraction of decisions that pick their cell's op);
- ``by node``: node k of both cells should pick op k mod 5 (a different op per node).

For each it reports the mean probability of each decision's target op before and after, the
largest spread of one op's probability across the decisions, and how many of the 16 decisions
the greedy architecture gets right. No supernet is involved.

    python experiments/controller_context.py [OVERRIDE ...] [--updates 300] [--seeds 0 1 2]
        [--noise 0.085]   (overrides first, e.g. controller.op_tanh_reduce=1.0)
"""

from __future__ import annotations

import argparse

import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

from enas_lightning.build import build_controller
from enas_lightning.config import register_configs
from enas_lightning.search.baseline import sequential_baseline


def quickstart_cfg(overrides: list[str]):
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_module("enas_lightning.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=["experiment=quickstart", *overrides])
    GlobalHydra.instance().clear()
    return cfg


def targets(kind: str, ops: list[str], nodes: int) -> torch.Tensor:
    """The target op index of each op decision ``[2 cells, nodes, 2 ops]``."""
    t = torch.empty(2, nodes, 2, dtype=torch.long)
    if kind == "context-free":
        t[:] = ops.index("max_pool_3x3")
    elif kind == "by cell":
        t[0], t[1] = ops.index("sep_conv_3x3"), ops.index("max_pool_3x3")
    else:  # by node
        for k in range(nodes):
            t[:, k] = k % len(ops)
    return t


def run(cfg, kind: str, seed: int, updates: int, noise: float) -> dict[str, float]:
    torch.manual_seed(seed)
    ctrl = build_controller(cfg)
    c = cfg.controller
    opt = torch.optim.Adam(ctrl.parameters(), lr=c.lr, betas=tuple(c.betas), eps=c.eps)
    g = torch.Generator().manual_seed(seed)
    ops = list(cfg.search_space.ops)
    nodes = cfg.search_space.num_nodes
    want = targets(kind, ops, nodes)  # [2, nodes, 2]

    def target_prob() -> tuple[float, float, int]:
        with torch.no_grad():
            s = ctrl(500, generator=g)
            probs = s.op_probs.mean(0)  # [decisions, ops]: normal cell's first, node by node
            hit = probs.gather(1, want.reshape(-1, 1)).mean()
            spread = (probs.max(0).values - probs.min(0).values).max()
            greedy = ctrl(1, generator=g, greedy=True).arcs[0][..., 1::2]
        return float(hit), float(spread), int((greedy == want).sum())

    before = target_prob()
    baseline = torch.zeros(())
    for _ in range(updates):
        s = ctrl(c.num_aggregate, generator=g)
        picked = s.arcs[..., 1::2]  # [n, 2, nodes, 2]
        reward = (picked == want).float().mean((1, 2, 3))
        reward = reward + noise * torch.randn(len(reward), generator=g)
        reward = reward + c.entropy_weight * s.entropy.detach()
        b = sequential_baseline(reward, baseline, c.baseline_decay)
        baseline = b[-1]
        loss = (-s.log_prob * (reward - b)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = target_prob()
    return {
        "before": before[0],
        "after": after[0],
        "spread": after[1],
        "greedy_right": after[2],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--updates", type=int, default=300)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--noise", type=float, default=0.085)
    p.add_argument("overrides", nargs="*", help="extra config overrides (controller.*, ...)")
    a = p.parse_args()
    torch.set_num_threads(1)
    cfg = quickstart_cfg(a.overrides)
    print(
        f"quickstart controller{' ' + ' '.join(a.overrides) if a.overrides else ''}: "
        f"{a.updates} updates of {cfg.controller.num_aggregate} archs, reward = fraction of "
        f"decisions picking their target + N(0, {a.noise}^2); seeds {a.seeds}\n"
    )
    print(
        "| reward | p(target) before | after (per seed) | spread across decisions "
        "| greedy decisions right, of 16 |"
    )
    print("|---|---|---|---|---|")
    for kind in ("context-free", "by cell", "by node"):
        rows = [run(cfg, kind, s, a.updates, a.noise) for s in a.seeds]
        after = ", ".join(f"{r['after']:.3f}" for r in rows)
        spread = ", ".join(f"{r['spread']:.3f}" for r in rows)
        right = ", ".join(str(r["greedy_right"]) for r in rows)
        before = sum(r["before"] for r in rows) / len(rows)
        print(f"| {kind} | {before:.3f} | {after} | {spread} | {right} |", flush=True)


if __name__ == "__main__":
    main()

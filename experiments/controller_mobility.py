"""How far can the micro controller move in a given number of updates? A diagnostic for issue 15.

The controller is trained with the search's own REINFORCE update (sequential moving-average
baseline, Adam with the configured betas and eps) on a *synthetic* reward that is known to be
learnable: the fraction of a sampled architecture's op decisions that pick ``--target`` op, plus
Gaussian noise of the size of a 32-image validation minibatch's accuracy noise. No supernet is
involved, so this isolates the controller's own settings (op bias, ``op_tanh_reduce``, lr) from
how well the shared weights are trained.

    python experiments/controller_mobility.py --updates 250 --seeds 0 1 2

Prints, per setting, the target op's probability (mean over op decisions and seeds) before and
after the updates, and the largest change of any op's probability.
"""

from __future__ import annotations

import argparse

import torch

from enas_lightning.search.baseline import sequential_baseline
from enas_lightning.spaces.micro.arch import AUTHORS_MICRO_OPS
from enas_lightning.spaces.micro.controller import MicroController

SETTINGS = {
    # name: (op_bias, op_tanh_reduce, lr)
    "authors (op bias, reduce 2.5, lr 3.5e-3)": (True, 2.5, 3.5e-3),
    "no op bias, reduce 2.5, lr 3.5e-3": (False, 2.5, 3.5e-3),
    "no op bias, reduce 1.0, lr 3.5e-3": (False, 1.0, 3.5e-3),
    "no op bias, reduce 2.5, lr 0.02": (False, 2.5, 0.02),
    "no op bias, reduce 1.0, lr 0.02": (False, 1.0, 0.02),
    "op bias, reduce 1.0, lr 0.02": (True, 1.0, 0.02),
}


def run(
    op_bias: bool,
    reduce: float,
    lr: float,
    seed: int,
    updates: int,
    target: int,
    nodes: int,
    per_update: int,
    noise: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    ctrl = MicroController(
        tuple(AUTHORS_MICRO_OPS), num_nodes=nodes, op_bias=op_bias, op_tanh_reduce=reduce
    )
    opt = torch.optim.Adam(ctrl.parameters(), lr=lr, betas=(0.0, 0.999), eps=1e-3)
    g = torch.Generator().manual_seed(seed)
    baseline = torch.zeros(())
    with torch.no_grad():
        before = ctrl(500, generator=g).op_probs.mean((0, 1))
    for _ in range(updates):
        s = ctrl(per_update, generator=g)
        ops = s.arcs[..., 1::2]  # [n, 2, B, 2] op decisions
        reward = (ops == target).float().mean((1, 2, 3))
        reward = reward + noise * torch.randn(per_update, generator=g)
        reward = reward + 1e-4 * s.entropy.detach()
        b = sequential_baseline(reward, baseline, 0.99)
        baseline = b[-1]
        loss = (-s.log_prob * (reward - b)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = ctrl(500, generator=g).op_probs.mean((0, 1))
    return before, after


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--updates", type=int, default=250)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--target", default="max_pool_3x3", choices=AUTHORS_MICRO_OPS)
    p.add_argument("--nodes", type=int, default=4)
    p.add_argument("--per-update", type=int, default=10)
    p.add_argument("--noise", type=float, default=0.08)
    a = p.parse_args()
    torch.set_num_threads(1)
    target = AUTHORS_MICRO_OPS.index(a.target)
    print(
        f"{a.updates} updates of {a.per_update} archs, reward = fraction of op decisions "
        f"choosing {a.target} + N(0, {a.noise}^2); seeds {a.seeds}\n"
    )
    print(f"| setting | p({a.target}) before | after | largest change of any op's p |")
    print("|---|---|---|---|")
    for name, (bias, reduce, lr) in SETTINGS.items():
        bs, afs = [], []
        for seed in a.seeds:
            b, af = run(bias, reduce, lr, seed, a.updates, target, a.nodes, a.per_update, a.noise)
            bs.append(b)
            afs.append(af)
        b, af = torch.stack(bs).mean(0), torch.stack(afs).mean(0)
        print(
            f"| {name} | {b[target]:.3f} | {af[target]:.3f} | {(af - b).abs().max():.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()

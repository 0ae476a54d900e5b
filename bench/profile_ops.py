"""Operator-level profile (``torch.profiler``) of one micro child step and one controller update.

The child step is ``child_throughput.make_step`` on the supernet (fwd + CE + aux + bwd + clip +
SGD); the controller update is the REINFORCE update of ``controller.py`` plus 10 reward forwards
of the supernet in eval mode (as ``SearchModule.controller_step``). Prints (and appends) the top
operators by self CPU time.

    PYTHONPATH=. python bench/profile_ops.py [--rows 12]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_average, report, table  # noqa: E402
from child_throughput import build, make_step  # noqa: E402


def top(prof, rows: int) -> list[list]:
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events) or 1
    return [
        [e.key, e.count, e.self_cpu_time_total / 1e3, 100 * e.self_cpu_time_total / total]
        for e in events[:rows]
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=12)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-append", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net, ctrl = build("micro", 6, 20, True)
    g = torch.Generator().manual_seed(1)
    archs = ctrl.sample_archs(args.steps + 1, g)
    x = torch.rand(args.batch, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (args.batch,), generator=g)
    steps = [make_step(net, a) for a in archs]
    steps[0](x, y)  # warm-up
    before = load_average()
    with profile(activities=[ProfilerActivity.CPU]) as child_prof:
        for s in steps[1:]:
            s(x, y)
    opt = torch.optim.Adam(ctrl.parameters(), lr=3.5e-3, betas=(0.0, 0.999), eps=1e-3, foreach=True)

    def ctrl_update():
        sample = ctrl(10, generator=g)
        with torch.no_grad():
            net.eval()
            reward = torch.stack(
                [(net(x, a).argmax(1) == y).float().mean() for a in ctrl.to_archs(sample.arcs)]
            )
            net.train()
        loss = (-sample.log_prob * (reward - reward.mean())).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    ctrl_update()
    with profile(activities=[ProfilerActivity.CPU]) as ctrl_prof:
        for _ in range(2):
            ctrl_update()
    header = ["operator", "calls", "self CPU (ms)", "% of self CPU"]
    body = (
        f"Child step ({args.steps} steps, batch {args.batch}):\n\n"
        + table(header, top(child_prof, args.rows))
        + "\n\nController update (2 updates, 10 rewards each):\n\n"
        + table(header, top(ctrl_prof, args.rows))
    )
    report(
        "Profile: child step and controller update (torch.profiler, CPU)",
        {
            "space": "micro",
            "layers": 6,
            "channels": 20,
            "batch": args.batch,
            "threads": args.threads,
        },
        body,
        notes=[],
        append=not args.no_append,
        load_before=before,
    )


if __name__ == "__main__":
    main()

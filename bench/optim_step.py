"""Optimizer step cost: foreach vs fused SGD (supernet, one child's gradients) and Adam
(controller), on the CPU (and CUDA when present).

    PYTHONPATH=. python bench/optim_step.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_average, median_time, report, table  # noqa: E402
from child_throughput import build  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-append", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    before = load_average()
    rows = []
    for dev in devices:
        torch.manual_seed(0)
        net, ctrl = build("micro", 6, 20, True)
        net.to(dev)
        ctrl.to(dev)
        arch = ctrl.sample_archs(1, torch.Generator(device=dev).manual_seed(0))[0]
        x = torch.rand(8, 3, 32, 32, device=dev)
        logits, aux = net(x, arch)
        (logits.sum() + aux.sum()).backward()  # grads on one child's parameters
        sample = ctrl(10)
        (sample.log_prob.mean()).backward()
        F.relu(torch.zeros(1))
        for name, params, make in (
            ("SGD supernet", list(net.parameters()), lambda ps, **k: torch.optim.SGD(
                ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4, **k)),
            ("Adam controller", list(ctrl.parameters()), lambda ps, **k: torch.optim.Adam(
                ps, lr=3.5e-3, betas=(0.0, 0.999), eps=1e-3, **k)),
        ):  # fmt: skip
            res = {}
            for mode in ("foreach", "fused"):
                try:
                    opt = make(params, **{mode: True})
                    res[mode] = 1e3 * median_time(opt.step, args.repeats, 2, dev)
                except (RuntimeError, ValueError) as e:
                    res[mode] = f"unsupported ({str(e)[:60]})"
            ratio = res["foreach"] / res["fused"] if isinstance(res["fused"], float) else ""
            with_grad = sum(p.grad is not None for p in params)
            rows.append(
                [dev, name, f"{with_grad}/{len(params)}", res["foreach"], res["fused"], ratio]
            )
            print(rows[-1], flush=True)
    report(
        "Optimizer step: foreach vs fused",
        {
            "supernet": "micro 6 layers 20 channels (grads of one child)",
            "controller": "micro, lstm 64",
            "repeats (median)": args.repeats,
        },  # fmt: skip
        table(
            ["device", "optimizer", "params with grad", "foreach (ms)", "fused (ms)", "speed-up"],
            rows,
        ),
        notes=[],
        append=not args.no_append,
        load_before=before,
    )


if __name__ == "__main__":
    main()

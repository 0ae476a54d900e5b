"""Intra-op threads on a small CPU: the micro child step with 1 vs 2 (vs more) torch threads.

The supernet's convolutions at search size are tiny; with several intra-op threads each op pays
thread hand-off, and on a loaded machine a thread that is descheduled stalls every op. Rounds are
interleaved (1, 2, 1, 2, ...) so that load changes hit both settings alike.

    PYTHONPATH=. python bench/threads.py [--threads 1 2] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_average, random_batches, report, table  # noqa: E402
from child_throughput import build, make_step  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--controller-too", action="store_true")
    p.add_argument("--no-append", action="store_true")
    args = p.parse_args()
    torch.manual_seed(0)
    net, ctrl = build("micro", 6, 20, True)
    archs = ctrl.sample_archs(args.steps, torch.Generator().manual_seed(1))
    batches = random_batches(args.steps, args.batch)
    g = torch.Generator().manual_seed(3)  # for the controller's samples
    step = make_step(net)
    step_arch = [make_step(net, a) for a in archs]  # same optimizer state shape; fine for timing
    del step
    before = load_average()
    times: dict[int, list[float]] = {n: [] for n in args.threads}
    ctrl_times: dict[int, list[float]] = {n: [] for n in args.threads}
    for n in args.threads:  # warm-up
        torch.set_num_threads(n)
        step_arch[0](*batches[0])
    for _ in range(args.rounds):
        for n in args.threads:
            torch.set_num_threads(n)
            t = time.perf_counter()
            for s, (x, y) in zip(step_arch, batches, strict=True):
                s(x, y)
            times[n].append((time.perf_counter() - t) / args.steps)
            t = time.perf_counter()
            ctrl.sample_archs(10, g)
            ctrl_times[n].append(time.perf_counter() - t)
    base = statistics.median(times[args.threads[0]])
    rows = [
        [
            n,
            1e3 * statistics.median(times[n]),
            args.batch / statistics.median(times[n]),
            base / statistics.median(times[n]),
            1e3 * statistics.median(ctrl_times[n]),
        ]
        for n in args.threads
    ]
    report(
        "Torch intra-op threads (micro child step, CPU)",
        {
            "layers": 6,
            "channels": 20,
            "batch": args.batch,
            "rounds (interleaved, median)": args.rounds,
            "steps per round": args.steps,
            "os.cpu_count()": __import__("os").cpu_count(),
        },  # fmt: skip
        table(
            [
                "threads",
                "ms per child step",
                "img/s",
                f"speed vs {args.threads[0]}",
                "sample 10 archs (ms)",
            ],
            rows,
        ),  # fmt: skip
        notes=[],
        append=not args.no_append,
        load_before=before,
    )


if __name__ == "__main__":
    main()

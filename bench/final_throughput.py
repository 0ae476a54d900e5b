"""Final training throughput of the micro_final network, eager and ``torch.compile``d.

One training step as ``FinalModule``: forward with drop path, cross-entropy + 0.4 aux, backward,
gradient-norm clip, SGD-Nesterov step. The architecture is sampled from a seeded controller.
CPU default: a reduced network (``--layers/--channels/--batch``); ``--full``: 15 layers, 36
channels, batch 144 (the micro_final preset). Compilation is timed once (the first compiled
step) and skipped with a note when it does not finish within ``--compile-timeout`` seconds.

    PYTHONPATH=. python bench/final_throughput.py [--full] [--no-compile] [--channels-last]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_average, random_batches, report, sync, table  # noqa: E402

from enas_lightning.spaces.micro.arch import AUTHORS_MICRO_OPS  # noqa: E402
from enas_lightning.spaces.micro.controller import MicroController  # noqa: E402
from enas_lightning.spaces.micro.network import MicroNetwork  # noqa: E402


def network(layers: int, channels: int, device: torch.device, channels_last: bool):
    ctrl = MicroController(tuple(AUTHORS_MICRO_OPS), num_nodes=5)
    arch = ctrl.sample_archs(1, torch.Generator().manual_seed(0))[0]
    torch.manual_seed(0)
    net = MicroNetwork(arch, 10, 3, layers, channels, 0.8, 0.6, aux_head=True, image_size=32)
    net = net.to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    return net


def make_step(net, forward, device, bf16: bool):
    opt = torch.optim.SGD(
        net.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=2e-4, foreach=True
    )
    net.train()

    def step(x, y):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits, aux = forward(x)
            loss = F.cross_entropy(logits, y) + 0.4 * F.cross_entropy(aux, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0, foreach=True)
        opt.step()

    return step


def rate(step, batches, repeats: int, device) -> float:
    n = sum(len(y) for _, y in batches)
    rates = []
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        for x, y in batches:
            step(x, y)
        sync(device)
        rates.append(n / (time.perf_counter() - t))
    return statistics.median(rates)


def measure(args, device: torch.device, bf16: bool = False) -> tuple[list[list], list[str]]:
    """Rows ``[mode, images/s, note]`` for eager and (unless disabled) compiled."""
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    batches = random_batches(args.steps, args.batch, 1, device, fmt)
    rows, notes = [], []
    net = network(args.layers, args.channels, device, args.channels_last)
    eager = make_step(net, net, device, bf16)
    eager(*batches[0])
    r = rate(eager, batches, args.repeats, device)
    rows.append(["eager", r, ""])
    print(rows[-1], flush=True)
    if args.no_compile:
        notes.append("compiled: not measured (--no-compile)")
        return rows, notes
    net_c = network(args.layers, args.channels, device, args.channels_last)
    compiled = torch.compile(net_c, backend=args.backend)
    step_c = make_step(net_c, compiled, device, bf16)
    done: dict[str, float | BaseException] = {}

    def first():
        try:
            t = time.perf_counter()
            step_c(*batches[0])
            step_c(*batches[0])  # the backward graph and the optimizer are ready too
            sync(device)
            done["s"] = time.perf_counter() - t
        except BaseException as e:  # noqa: BLE001 - reported, not raised
            done["e"] = e

    worker = threading.Thread(target=first, daemon=True)
    worker.start()
    worker.join(args.compile_timeout)
    if "s" in done:
        rc = rate(step_c, batches, args.repeats, device)
        rows.append(
            [f"compiled ({args.backend})", rc, f"compile (first 2 steps) {done['s']:.1f} s"]
        )
        rows.append(["compiled / eager", rc / r, ""])
    elif "e" in done:
        rows.append([f"compiled ({args.backend})", "failed", repr(done["e"])[:200]])
    else:
        rows.append(
            [f"compiled ({args.backend})", "timeout", f"compile > {args.compile_timeout:.0f} s"]
        )
    print(rows[-1], flush=True)
    return rows, notes


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--full", action="store_true", help="15 layers, 36 channels, batch 144")
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--channels", type=int, default=20)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=3, help="steps per timed round")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--backend", default="inductor")
    p.add_argument("--compile-timeout", type=float, default=600.0)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--bf16", action="store_true", help="autocast to bfloat16")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--no-append", action="store_true")
    args = p.parse_args()
    if args.full:
        args.layers, args.channels, args.batch = 15, 36, 144
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    before = load_average()
    rows, notes = measure(args, device, args.bf16)
    report(
        f"Final training throughput (micro_final network, {device.type})",
        {
            "layers": args.layers,
            "channels": args.channels,
            "batch": args.batch,
            "aux": True,
            "drop_path_keep": 0.6,
            "channels_last": args.channels_last,
            "bf16 autocast": args.bf16,
            "steps x rounds": f"{args.steps} x {args.repeats}",
        },  # fmt: skip
        table(["mode", "images/s", "note"], rows),
        notes=notes,
        append=not args.no_append,
        load_before=before,
    )
    # a compile still running in its thread must not keep the process alive
    sys.stdout.flush()
    import os

    os._exit(0)


if __name__ == "__main__":
    main()

"""Child training throughput: supernet running a sampled child vs standalone networks.

For several sampled architectures, one training step (forward, cross-entropy (+ aux), backward,
gradient-norm clip, SGD-Nesterov step, as ``SearchModule.child_step``) on the same batches for:

* ``supernet``: the shared-weight supernet with the architecture passed to ``forward``;
* ``child``: the exact same computation extracted as a plain module (``bench/extract.py``):
  the cost of weight sharing is ``supernet / child``;
* ``final-mode``: the standalone ``MicroNetwork`` / ``MacroNetwork`` of the same architecture and
  size (what final training trains: stride-2 reduction ops, no 1x1 conv after the concat, so a
  different amount of work; shown for reference).

    PYTHONPATH=. python bench/child_throughput.py [--space micro|macro|both] [--threads 1]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_average, random_batches, report, table  # noqa: E402
from extract import extract  # noqa: E402

from enas_lightning.spaces.macro.arch import AUTHORS_MACRO_OPS  # noqa: E402
from enas_lightning.spaces.macro.controller import MacroController  # noqa: E402
from enas_lightning.spaces.macro.network import MacroNetwork  # noqa: E402
from enas_lightning.spaces.macro.supernet import MacroSupernet  # noqa: E402
from enas_lightning.spaces.micro.arch import AUTHORS_MICRO_OPS  # noqa: E402
from enas_lightning.spaces.micro.controller import MicroController  # noqa: E402
from enas_lightning.spaces.micro.network import MicroNetwork  # noqa: E402
from enas_lightning.spaces.micro.supernet import MicroSupernet  # noqa: E402

MACRO_OPS = tuple(AUTHORS_MACRO_OPS)


def build(space: str, layers: int, channels: int, aux: bool):
    if space == "micro":
        ops = tuple(AUTHORS_MICRO_OPS)
        net = MicroSupernet(10, 3, layers, channels, 5, ops, 0.9, aux_head=aux, image_size=32)
        ctrl = MicroController(ops, num_nodes=5)
    else:
        net = MacroSupernet(10, 3, layers, channels, MACRO_OPS, 0.9)
        ctrl = MacroController(MACRO_OPS, num_layers=layers)
    return net, ctrl


def standalone(space: str, arch, layers: int, channels: int, aux: bool) -> torch.nn.Module:
    if space == "micro":
        return MicroNetwork(arch, 10, 3, layers, channels, 0.9, 1.0, aux_head=aux, image_size=32)
    return MacroNetwork(arch, 10, 3, channels=channels, dropout_keep=0.9)


def make_step(model, arch=None, aux_weight: float = 0.4):
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(
        params, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4, foreach=True
    )
    model.train()

    def step(x, y):
        out = model(x, arch) if arch is not None else model(x)
        logits, aux = out if isinstance(out, tuple) else (out, None)
        loss = F.cross_entropy(logits, y)
        if aux is not None:
            loss = loss + aux_weight * F.cross_entropy(aux, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], 5.0, foreach=True)
        opt.step()

    return step


def measure(steps, batches, repeats: int) -> list[float]:
    """Images/s per model (median over ``repeats`` rounds, models interleaved in each round)."""
    for step in steps:  # warm-up
        step(*batches[0])
    rates: list[list[float]] = [[] for _ in steps]
    n = sum(len(y) for _, y in batches)
    for _ in range(repeats):
        for k, step in enumerate(steps):
            t = time.perf_counter()
            for x, y in batches:
                step(x, y)
            rates[k].append(n / (time.perf_counter() - t))
    return [statistics.median(r) for r in rates]


def run_space(args, space: str) -> None:
    layers = args.layers if args.layers else (6 if space == "micro" else 12)
    channels = args.channels if args.channels else (20 if space == "micro" else 16)
    aux = space == "micro"
    torch.manual_seed(0)
    supernet, ctrl = build(space, layers, channels, aux)
    archs = ctrl.sample_archs(args.archs, torch.Generator().manual_seed(1))
    batches = random_batches(args.steps, args.batch)
    before = load_average()
    rows = []
    for a, arch in enumerate(archs):
        # each model trains its own copy of the weights
        sup = copy.deepcopy(supernet)
        child = extract(copy.deepcopy(supernet), arch)
        final = standalone(space, arch, layers, channels, aux)
        n_sup = sum(p.numel() for p in sup.parameters())
        n_child = sum(p.numel() for p in child.parameters())
        n_final = sum(p.numel() for p in final.parameters())
        steps = [make_step(sup, arch), make_step(child), make_step(final)]
        r_sup, r_child, r_final = measure(steps, batches, args.repeats)
        rows.append(
            [a, n_sup, n_child, n_final, r_sup, r_child, r_final, r_sup / r_child, r_sup / r_final]
        )
        print(rows[-1], flush=True)
    med = [statistics.median(r[k] for r in rows) for k in range(4, 9)]
    rows.append(["median", "", "", "", *med])
    header = [
        "arch", "supernet params", "child params", "final-mode params",
        "supernet img/s", "child img/s", "final-mode img/s",
        "supernet/child", "supernet/final-mode",
    ]  # fmt: skip
    report(
        f"Child throughput ({space}, CPU)"
        if not torch.cuda.is_available()
        else f"Child throughput ({space})",
        {
            "space": space,
            "layers": layers,
            "channels": channels,
            "batch": args.batch,
            "images": "32x32x3 random",
            "archs": args.archs,
            "steps per round": args.steps,
            "rounds (median)": args.repeats,
            "aux head": aux,
            "step": "fwd+CE(+0.4 aux)+bwd+clip 5+SGD nesterov foreach",
        },  # fmt: skip
        table(header, rows),
        notes=[
            "`child` is the "
            "supernet's child extracted as a plain module (same computation, only its ops); "
            "`final-mode` is the standalone network final training trains (different work)."
        ],
        append=not args.no_append,
        load_before=before,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--space", choices=("micro", "macro", "both"), default="both")
    p.add_argument("--layers", type=int, default=0, help="0: micro 6, macro 12")
    p.add_argument("--channels", type=int, default=0, help="0: micro 20, macro 16")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--archs", type=int, default=5)
    p.add_argument("--steps", type=int, default=2, help="steps per timed round")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds (median)")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--no-append", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    for space in ("micro", "macro") if args.space == "both" else (args.space,):
        run_space(args, space)


if __name__ == "__main__":
    main()

"""Pooling kernels on a CPU: the separable passes of ``SamePool`` against PyTorch's pools.

``spaces/ops.SamePool`` (stride 1, every pool of both search spaces) can compute a 3x3 pool as
shifted maxima or sums (``_separable``) or with PyTorch's ``max_pool2d``/``avg_pool2d``
(``torch_pool``); ``forward`` picks per case. This times both for forward only (no gradient:
rewards, derivation, evaluation) and forward plus backward (child and final training), on NCHW
and channels-last maps of the quickstart's and CIFAR sizes, one thread, median of ``--repeats``.

    PYTHONPATH=. python bench/pool_kernels.py [--repeats 20] [--no-append]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_average, median_time, report, table  # noqa: E402

from enas_lightning.spaces.ops import SamePool  # noqa: E402

SHAPES = {  # [B, C, H, W]: what the pools see
    "quickstart search (digits 8x8, 8 channels)": (32, 8, 8, 8),
    "quickstart reward batch": (300, 8, 8, 8),
    "Fashion-MNIST 14x14, 16 channels": (64, 16, 14, 14),
    "CIFAR micro search (20 channels)": (32, 20, 32, 32),
    "CIFAR macro (36 channels)": (32, 36, 32, 32),
}


def seconds(fn, x: torch.Tensor, grad: bool, repeats: int) -> float:
    def call() -> None:
        with torch.set_grad_enabled(grad):
            y = fn(x)
            if grad:
                y.sum().backward()

    return median_time(call, repeats, warmup=2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-append", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    before = load_average()
    rows = []
    for name, shape in SHAPES.items():
        for layout in ("NCHW", "channels_last"):
            x = torch.randn(*shape)
            if layout == "channels_last":
                x = x.contiguous(memory_format=torch.channels_last)
            x.requires_grad_(True)
            for kind in ("max", "avg"):
                pool = SamePool(kind, 3, 1)
                for grad in (False, True):
                    sep = seconds(pool._separable, x, grad, a.repeats)
                    ref = seconds(pool.torch_pool, x, grad, a.repeats)
                    x.grad = None
                    with torch.set_grad_enabled(grad):
                        chosen = "torch" if pool._max_with_grad(x) else "separable"
                    rows.append(
                        [
                            name,
                            list(shape),
                            layout,
                            kind,
                            "fwd+bwd" if grad else "fwd",
                            sep * 1e3,
                            ref * 1e3,
                            ref / sep,
                            chosen,
                        ]
                    )
    header = [
        "maps",
        "shape",
        "layout",
        "pool",
        "pass",
        "separable ms",
        "torch ms",
        "torch / separable",
        "SamePool runs",
    ]
    report(
        "Pooling kernels (CPU)",
        {"kernel": 3, "stride": 1, "repeats": a.repeats, "threads": a.threads},
        table(header, rows),
        [
            "torch / separable > 1: the separable passes are faster. SamePool runs: the kernel "
            "`spaces/ops.SamePool.forward` picks for that case."
        ],
        append=not a.no_append,
        load_before=before,
    )


if __name__ == "__main__":
    main()

"""Child-training throughput against Microsoft NNI's ENAS micro (cell) search space.

Measures images/s of one child training step (forward, cross-entropy, backward, gradient-norm
clip 5, SGD-Nesterov step; ``child_throughput.make_step``) of:

* ``nni``: NNI 3.x's ``nni.nas.hub.pytorch.ENAS`` model space turned into its one-shot supernet by
  the ENAS strategy (``nni.nas.strategy.ENAS().mutate_model``: ``PathSamplingCell`` and
  ``Mixed*`` ops), a child selected the way ``EnasLightningModule.resample`` does it
  (``module.resample(memo=sample)`` on every supernet module);
* ``enas_lightning``: our ``MicroSupernet`` with the architecture passed to ``forward``.

Both sides run the *same* sampled architectures (ours from ``MicroController.sample_archs``,
translated to NNI's sample labels) on the same seeded random CIFAR-shaped batches, in the same
process, alternating per round (and alternating which side goes first), so machine load hits
both equally. It needs NNI, which the project's venv does not have:

    python3 -m venv /work/nni-venv
    /work/nni-venv/bin/pip install torch==2.13.0 nni -e .  # pin torch: a CPU build
    /work/nni-venv/bin/python bench/compare_nni.py [--archs 5] [--steps 3] [--repeats 3]
"""

from __future__ import annotations

import os

# one intra-op thread, set before torch is imported so OpenMP picks it up too
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
from torch import Tensor, nn  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_average, report, table  # noqa: E402
from child_throughput import build, make_step  # noqa: E402

from enas_lightning.arch.micro import MicroArch, MicroCell  # noqa: E402

# NNI 3.0 predates torch 2.13: while tracing it warns that ``torch.nn.parameter.Buffer`` and
# ``LinearCrossEntropyOptions`` are "not a nn.Module" (it only affects its tracing of those
# classes, which this space does not use); silence that so the output stays readable
warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module.*")
import nni  # noqa: E402
from nni.nas.hub.pytorch import ENAS as NniEnasSpace  # noqa: E402
from nni.nas.oneshot.pytorch.supermodule.base import BaseSuperNetModule  # noqa: E402
from nni.nas.strategy import ENAS as NniEnasStrategy  # noqa: E402

Step = Callable[[Tensor, Tensor], None]

# our op names -> NNI's (same ops; NNI calls identity "skip_connect")
NNI_OP = {
    "sep_conv_3x3": "sep_conv_3x3",
    "sep_conv_5x5": "sep_conv_5x5",
    "avg_pool_3x3": "avg_pool_3x3",
    "max_pool_3x3": "max_pool_3x3",
    "identity": "skip_connect",
}


def build_nni(layers: int, channels: int) -> nn.Module:
    """NNI's ENAS space as the one-shot supernet its ENAS strategy trains.

    NNI splits ``num_cells`` over 3 stages and makes the first cell of stages 2 and 3 a reduction
    cell, so ``num_cells = layers + 2`` gives our layout: ``layers`` normal cells and 2 reduction
    cells at the same positions (for layers=6: cells 2 and 5 of 8).
    """
    space = NniEnasSpace(width=channels, num_cells=layers + 2, dataset="cifar")
    return NniEnasStrategy().mutate_model(space)


def nni_sample(arch: MicroArch) -> dict[str, Any]:
    """Our architecture as NNI's sample dict (labels ``{cell}/op_{node}_{slot}`` and
    ``{cell}/input_{node}_{slot}``; NNI numbers computed nodes from 2 like we number inputs)."""
    sample: dict[str, Any] = {}
    cells: dict[str, MicroCell] = {"normal": arch.normal, "reduce": arch.reduce}
    for label, cell in cells.items():
        for j, node in enumerate(cell.nodes):
            for slot, (i, op) in enumerate(zip(node.inputs, node.ops, strict=True)):
                sample[f"{label}/op_{j + 2}_{slot}"] = NNI_OP[op]
                # an input choice with n_chosen=1: NNI's cell reads ``[0]`` of a list
                sample[f"{label}/input_{j + 2}_{slot}"] = [i]
    return sample


def select_nni(supernet: nn.Module, sample: dict[str, Any]) -> None:
    """Fix NNI's supernet to ``sample`` as ``EnasLightningModule.resample`` does."""
    for module in supernet.modules():
        if isinstance(module, BaseSuperNetModule):
            module.resample(memo=sample)
    # every choice must come from ``sample``: a missing label would be drawn at random
    expected = set(supernet.simplify())
    if expected != set(sample):
        raise RuntimeError(f"sample labels differ from NNI's: {sorted(expected ^ set(sample))}")


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def n_trained(model: nn.Module) -> int:
    """Parameters that received a gradient in the last step: the child's share of the supernet
    (``make_step`` zeroes grads with ``set_to_none``, so unused ones stay ``None``)."""
    return sum(p.numel() for p in model.parameters() if p.grad is not None)


def run_steps(step: Step, batches: list[tuple[Tensor, Tensor]]) -> float:
    """Images/s of ``step`` over ``batches``."""
    t = time.perf_counter()
    for x, y in batches:
        step(x, y)
    return sum(len(y) for _, y in batches) / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--layers", type=int, default=6, help="normal cells (+2 reduction cells)")
    p.add_argument("--channels", type=int, default=20)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--archs", type=int, default=5, help="sampled architectures")
    p.add_argument("--steps", type=int, default=3, help="steps per timed round")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds per architecture")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--no-append", action="store_true", help="print only, do not touch RESULTS.md")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    # no aux head on our side: NNI's ENAS space refuses one in search (one-shot) mode
    ours, ctrl = build("micro", args.layers, args.channels, aux=False)
    torch.manual_seed(0)
    theirs = build_nni(args.layers, args.channels)
    archs = ctrl.sample_archs(args.archs, torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(2)
    batches = [
        (
            torch.rand(args.batch, 3, 32, 32, generator=g),
            torch.randint(0, 10, (args.batch,), generator=g),
        )
        for _ in range(args.steps)
    ]

    names = ("enas_lightning", "nni")
    before = load_average()
    # per side: one median rate per architecture, and the child's trained-parameter counts
    rates: dict[str, list[float]] = {n: [] for n in names}
    trained: dict[str, list[int]] = {n: [] for n in names}
    detail = []
    for a, arch in enumerate(archs):
        select_nni(theirs, nni_sample(arch))
        models = {"enas_lightning": ours, "nni": theirs}
        # a fresh optimizer per architecture, as child_throughput does; the weights carry over
        steps: dict[str, Step] = {"enas_lightning": make_step(ours, arch), "nni": make_step(theirs)}
        for n in names:  # warm-up (allocator, first-call overheads), then count the child
            steps[n](*batches[0])
            trained[n].append(n_trained(models[n]))
        per_round: dict[str, list[float]] = {n: [] for n in names}
        for r in range(args.repeats):
            # alternate which side goes first so neither always runs on a warmer cache
            for n in names if r % 2 == 0 else names[::-1]:
                per_round[n].append(run_steps(steps[n], batches))
        med = {n: statistics.median(per_round[n]) for n in names}
        for n in names:
            rates[n].append(med[n])
        row = [a, *(trained[n][-1] for n in names), *(med[n] for n in names)]
        detail.append([*row, med["enas_lightning"] / med["nni"]])
        print(detail[-1], flush=True)

    base = statistics.median(rates["nni"])
    rows = []
    for n, model in (("enas_lightning", ours), ("nni", theirs)):
        rate = statistics.median(rates[n])
        rows.append([n, n_params(model), int(statistics.median(trained[n])), rate, rate / base])
    body = table(
        ["implementation", "supernet params", "child params (median)", "images/s (median)",
         "ratio to nni"],
        rows,
    )  # fmt: skip
    # the pairs ran interleaved, so the per-architecture ratio is the load-robust figure
    paired = statistics.median(r[-1] for r in detail)
    body += f"\n\nMedian of the per-architecture ours/nni ratios: {paired:.3f}"
    body += "\n\nPer architecture (images/s = median over rounds):\n\n" + table(
        ["arch", "ours child params", "nni child params", "ours img/s", "nni img/s",
         "ours/nni"],
        detail,
    )  # fmt: skip
    report(
        "Child throughput vs NNI ENAS micro (CPU)",
        {
            "nni": nni.__version__,
            "layers": f"{args.layers} normal + 2 reduction",
            "channels": args.channels,
            "nodes": 5,
            "ops": "sep3,sep5,avg3,max3,identity",
            "batch": args.batch,
            "images": "32x32x3 random",
            "archs": args.archs,
            "steps per round": args.steps,
            "rounds per arch": args.repeats,
            "step": "fwd+CE+bwd+clip 5+SGD nesterov foreach",
        },
        body,
        notes=[
            "Same architectures and batches on both sides, interleaved in one process. "
            "Not the same network: NNI's cell concatenates all 5 nodes (its one-shot cell "
            "ignores loose ends) and the next cell maps that back with a 1x1 conv; its "
            "reduction cells apply stride-2 ops to the cell inputs; it shares an op's weights "
            "between a node's two slots; its convs and BNs are NNI `Mixed*` modules; it has no "
            "dropout (ours: keep 0.9) and no aux head (ours disabled here for that reason).",
        ],
        append=not args.no_append,
        load_before=before,
    )


if __name__ == "__main__":
    main()

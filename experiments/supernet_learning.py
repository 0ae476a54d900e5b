"""How fast do the shared weights learn? A diagnostic for issue 15.

Trains the project's micro supernet on digits at the quickstart's sizes with a fresh child per
step (the child phase alone: no controller updates) and measures, every ``--eval-every`` steps,
the shared-weight validation accuracy of a fixed set of uniformly sampled architectures (the
same set for every variant and seed): their mean, spread and best. One *variant* changes one
thing (the sampling distribution, a supernet knob, the learning rate, ...), so a table of
variants against the same seeds says which change makes the shared weights learn.

    python experiments/supernet_learning.py --variants base controller_init --seeds 0 1 2

Prints one row per (variant, seed, step) and appends a Markdown table of the means to
``--out`` (default ``experiments/supernet_learning.md``). Runs on one CPU thread.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_module
from torch.nn import functional as F

from enas_lightning.build import build_controller, build_supernet
from enas_lightning.config import Config, register_configs
from enas_lightning.data.datasets import load_splits
from enas_lightning.data.device import DeviceSplits
from enas_lightning.optim import clip_gradients_, sgd_with_sgdr


@dataclass(frozen=True)
class Variant:
    """One change against the quickstart's search settings."""

    name: str
    overrides: tuple[str, ...] = ()  # Hydra overrides on top of experiment=quickstart
    sampler: str = "uniform"  # uniform | controller (the untrained controller's distribution)
    doc: str = ""


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in [
        Variant("base", doc="quickstart supernet, uniform children"),
        Variant(
            "controller_init",
            sampler="controller",
            doc="children from the untrained "
            "controller (op bias [10, 10, 0, ...]: sep convs favoured)",
        ),
        Variant(
            "controller_no_op_bias",
            ("controller.op_bias=false",),
            sampler="controller",
            doc="untrained controller without the op-bias init",
        ),
        Variant("lr_0.1", ("search.optim.lr_max=0.1",), doc="lr_max 0.1"),
        Variant("lr_0.02", ("search.optim.lr_max=0.02",), doc="lr_max 0.02"),
        Variant("lr_const", ("search.optim.t0=100000",), doc="no SGDR annealing (lr 0.05)"),
        Variant(
            "lr_0.1_const",
            ("search.optim.lr_max=0.1", "search.optim.t0=100000"),
            doc="lr 0.1, no annealing",
        ),
        Variant("no_clip", ("search.optim.grad_clip=0",), doc="no gradient clipping"),
        Variant("no_dropout", ("search_space.dropout_keep=1.0",), doc="dropout off"),
        Variant("no_wd", ("search.optim.l2_reg=0",), doc="weight decay 0"),
        Variant("channels_16", ("search_space.channels=16",), doc="16 channels"),
        Variant("nodes_2", ("search_space.num_nodes=2",), doc="2 nodes per cell"),
        Variant("batch_64", ("search.batch_size=64",), doc="batch 64"),
    ]
}


# The child settings of the quickstart before issue 15 (commit 894839e), which the variants
# change one at a time: SGDR restarting every 2, 4, 8 epochs from lr 0.05, global-norm clipping,
# torch weight decay 1e-4 (l2_reg 5e-5 in the authors' convention). Issue 12 since removed the
# factorized reductions' own ReLU, so a rerun on a later tree differs in that one respect.
BASE = (
    "search.optim.lr_max=0.05",
    "search.optim.t0=2",
    "search.optim.grad_clip_mode=global",
    "search.optim.l2_reg=5e-5",
)


def _config(overrides: tuple[str, ...], seed: int) -> Config:
    register_configs()
    with initialize_config_module("enas_lightning.conf", version_base=None):
        cfg = compose(
            "config",
            overrides=[
                "experiment=quickstart",
                f"seed={seed}",
                "output_dir=unused",
                *BASE,
                *overrides,
            ],
        )
    from omegaconf import OmegaConf

    return OmegaConf.to_object(cfg)  # type: ignore[return-value]


@dataclass
class Knobs:
    """Supernet changes the config cannot express yet, applied after building."""

    share_inputs: bool = False  # one op weight per (node, slot, op), not per input index
    bn_affine: bool = True


def apply_knobs(net: torch.nn.Module, k: Knobs) -> None:
    if k.share_inputs:
        for cell in net.cells:
            for node in cell.ops:
                for slot in node:
                    for i in range(1, len(slot)):
                        slot[i] = slot[0]
    if not k.bn_affine:
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight = None
                m.bias = None
                m.affine = False


@torch.no_grad()
def evaluate(net: torch.nn.Module, data: DeviceSplits, archs: list) -> np.ndarray:
    """Whole-validation-split accuracy of each arch on the shared weights (eval mode)."""
    net.eval()
    x, y = data.val_x, data.val_y
    accs = [float((net(x, a).argmax(1) == y).float().mean()) for a in archs]
    net.train()
    return np.array(accs)


def run(
    variant: Variant, knobs: Knobs, seed: int, steps: int, eval_every: int, eval_archs: int
) -> list[dict]:
    torch.manual_seed(seed)
    cfg = _config(variant.overrides, seed)
    splits = load_splits(cfg.dataset, holdout=True)
    d = cfg.dataset
    data = DeviceSplits(splits, pad=d.pad, flip=d.flip, cutout=d.cutout)
    net = build_supernet(cfg, splits)
    apply_knobs(net, knobs)
    ctrl = build_controller(cfg)
    uniform = build_controller(replace(cfg, controller=replace(cfg.controller, name="random")))
    # the evaluation set: the same uniformly sampled archs for every variant and seed
    g_eval = torch.Generator().manual_seed(12345)
    eval_set = uniform.sample_archs(eval_archs, g_eval)
    sampler = ctrl if variant.sampler == "controller" else uniform
    sgd, sgdr = sgd_with_sgdr(net.parameters(), cfg.search.optim, foreach=True)
    n_train = len(splits.train_y)
    bs = cfg.search.batch_size
    per_epoch = n_train // bs
    g = torch.Generator().manual_seed(seed)
    rows = []
    t0 = time.time()
    archs = sampler.sample_archs(steps, g)
    perm = torch.randperm(n_train, generator=g)
    for step in range(1, steps + 1):
        e, b = divmod(step - 1, per_epoch)
        if b == 0:
            perm = torch.randperm(n_train, generator=g)
            if e > 0:
                sgdr.step()
        x, y = data.train_batch(perm[b * bs : (b + 1) * bs], g)
        out = net(x, archs[step - 1])
        logits = out[0] if isinstance(out, tuple) else out
        loss = F.cross_entropy(logits, y)
        sgd.zero_grad(set_to_none=True)
        loss.backward()
        # the search's own clipping, in the configured mode (BASE pins the old global mode)
        o = cfg.search.optim
        clip_gradients_(
            [p.grad for p in net.parameters() if p.grad is not None], o.grad_clip, o.grad_clip_mode
        )
        sgd.step()
        if step % eval_every == 0:
            accs = evaluate(net, data, eval_set)
            row = {
                "variant": variant.name,
                "seed": seed,
                "step": step,
                "mean": float(accs.mean()),
                "sd": float(accs.std()),
                "best": float(accs.max()),
                "seconds": round(time.time() - t0, 1),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


KNOB_VARIANTS = {"share_inputs": Knobs(share_inputs=True), "bn_no_affine": Knobs(bn_affine=False)}


def resolve(name: str) -> tuple[Variant, Knobs]:
    """A variant by name; ``a+b`` combines the changes of ``a`` and ``b``."""
    overrides: list[str] = []
    sampler = "uniform"
    knobs = Knobs()
    for part in name.split("+"):
        if part not in VARIANTS and part not in KNOB_VARIANTS:
            raise SystemExit(
                f"--variants: unknown {part!r}; known: {', '.join([*VARIANTS, *KNOB_VARIANTS])}"
            )
        v = VARIANTS.get(part, Variant(part))
        overrides += v.overrides
        sampler = v.sampler if v.sampler != "uniform" else sampler
        k = KNOB_VARIANTS.get(part)
        if k is not None:
            knobs = Knobs(knobs.share_inputs or k.share_inputs, knobs.bn_affine and k.bn_affine)
    return Variant(name, tuple(overrides), sampler), knobs


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--variants",
        nargs="+",
        default=["base"],
        help=f"of {', '.join([*VARIANTS, *KNOB_VARIANTS])}",
    )
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--eval-every", type=int, default=300)
    p.add_argument("--eval-archs", type=int, default=16)
    p.add_argument("--out", type=Path, default=Path(__file__).with_name("supernet_learning.md"))
    p.add_argument("--jsonl", type=Path, default=None, help="also append raw rows here")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    all_rows: list[dict] = []
    for name in a.variants:
        variant, knobs = resolve(name)
        for seed in a.seeds:
            rows = run(variant, knobs, seed, a.steps, a.eval_every, a.eval_archs)
            all_rows += rows
            if a.jsonl:
                with a.jsonl.open("a") as f:
                    f.writelines(json.dumps(r) + "\n" for r in rows)
    steps = sorted({r["step"] for r in all_rows})
    lines = [
        f"\n### {time.strftime('%Y-%m-%d %H:%M')} `python experiments/supernet_learning.py "
        f"--variants {' '.join(a.variants)} --seeds {' '.join(map(str, a.seeds))} "
        f"--steps {a.steps}` ({platform.processor() or platform.machine()}, 1 thread)\n",
        "Mean over seeds of the mean (± sd over seeds) shared-weight val accuracy of "
        f"{a.eval_archs} fixed uniform archs:\n",
        "| variant | " + " | ".join(f"step {s}" for s in steps) + " | best arch at end | s |",
        "|---|" + "---|" * (len(steps) + 2),
    ]
    for name in a.variants:
        cells = []
        for s in steps:
            m = [r["mean"] for r in all_rows if r["variant"] == name and r["step"] == s]
            cells.append(f"{np.mean(m):.3f} ± {np.std(m):.3f}")
        end = [r for r in all_rows if r["variant"] == name and r["step"] == steps[-1]]
        best = np.mean([r["best"] for r in end])
        secs = np.mean([r["seconds"] for r in end])
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {best:.3f} | {secs:.0f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    with a.out.open("a") as f:
        f.write(text)


if __name__ == "__main__":
    main()

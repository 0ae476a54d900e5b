"""One search epoch through ``SearchModule`` and a ``pl.Trainer``, split into its phases.

Child phase (all child steps; of which ``train_batch``: gathering and augmenting the batch on the
device), controller phase (``train_steps`` REINFORCE updates with their rewards), derivation
(``derive``: ``derive_samples`` candidates + the greedy one scored on the validation split), and
the rest of the epoch (Lightning's loop, logging, the epoch summary).

CPU default: the micro and macro search presets with CIFAR-shaped fake data of a few hundred
images and fewer controller steps and candidates (see the printed config). ``--full``: the
presets as they are (micro: 30 x 10 controller, batch 160, 100 candidates) on 45k/5k synthetic
32x32x3 images (for a GPU).

    PYTHONPATH=. python bench/search_epoch.py [--space micro|macro|both] [--full]
        [--set key=value ...]   (extra config overrides, e.g. trainer.precision=bf16-mixed)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_average, report, sync, table  # noqa: E402

from enas_lightning.build import (  # noqa: E402
    build_controller,
    build_supernet,
    build_trainer,
    validate,
    validate_data,
)
from enas_lightning.config import register_configs  # noqa: E402
from enas_lightning.data.datasets import load_splits  # noqa: E402
from enas_lightning.data.device import DeviceSplits  # noqa: E402
from enas_lightning.search.module import SearchModule  # noqa: E402

DATA_FULL = ["dataset.train_size=50000", "dataset.val_size=5000"]
CPU_SMALL = {
    "micro": [
        "dataset.train_size=384",
        "dataset.val_size=128",
        "search.batch_size=32",
        "search.eval_batch_size=128",
        "controller.train_steps=5",
        "search.derive_samples=10",
    ],
    "macro": [
        "dataset.train_size=384",
        "dataset.val_size=128",
        "search.batch_size=32",
        "search.eval_batch_size=128",
        "search_space.channels=16",
        "controller.train_steps=5",
        "search.derive_samples=10",
    ],
}


def compose_cfg(space: str, overrides: list[str], out: str):
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_module("enas_lightning.conf", version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=[
                f"search_space={space}",
                "dataset=fake",
                "dataset.image_size=32",
                "dataset.channels=3",
                "dataset.num_classes=10",
                "dataset.pad=4",
                "logger=none",
                "trainer.enable_progress_bar=false",
                f"output_dir={out}",
                *overrides,
            ],
        )
    GlobalHydra.instance().clear()
    return cfg


class PhaseTimer:
    """Wraps a bound method: total seconds (device work included) and call count."""

    def __init__(self, fn, device_of) -> None:
        self.fn, self.device_of = fn, device_of
        self.seconds, self.calls = 0.0, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        dev = self.device_of()
        sync(dev)
        t = time.perf_counter()
        out = self.fn(*args, **kwargs)
        sync(dev)
        self.seconds += time.perf_counter() - t
        self.calls += 1
        return out


def one_epoch(cfg, channels_last: bool = False, finite_check: bool = True) -> dict[str, Any]:
    """Fit one epoch and derive; seconds per phase. ``channels_last``: supernet and data in
    channels-last memory format (the search module has no setting for it; done here).
    ``finite_check=False`` replaces the per-step non-finite check (one host sync per child step)
    by ``True``, to measure what that sync costs (benchmark only)."""
    validate(cfg)
    torch.manual_seed(cfg.seed)
    splits = load_splits(cfg.dataset, holdout=True)
    validate_data(cfg, splits, "search")
    d = cfg.dataset
    data = DeviceSplits(splits, pad=d.pad, flip=d.flip, cutout=d.cutout)
    module = SearchModule(build_supernet(cfg, splits), build_controller(cfg), data, cfg)
    if channels_last:
        target = (
            torch.device("cuda", 0)
            if cfg.trainer.accelerator != "cpu" and torch.cuda.is_available()
            else torch.device("cpu")
        )
        data.device = torch.device("meta")  # force the copy; on_fit_start then finds it there
        data.to(target, channels_last=True)
        module.supernet.to(target, memory_format=torch.channels_last)
    if not finite_check:
        module.all_ranks_agree = lambda ok: True
    dev = lambda: module.device  # noqa: E731
    timers = {}
    for name in ("child_step", "controller_step"):
        timers[name] = PhaseTimer(getattr(module, name), dev)
        setattr(module, name, timers[name])
    timers["train_batch"] = PhaseTimer(data.train_batch, dev)
    data.train_batch = timers["train_batch"]
    with tempfile.TemporaryDirectory() as tmp:
        trainer = build_trainer(cfg, "search", Path(tmp), 1, [], False, enable_checkpointing=False)
        t = time.perf_counter()
        trainer.fit(module)
        sync(module.device)
        epoch = time.perf_counter() - t
    t = time.perf_counter()
    derivation = module.derive()
    sync(module.device)
    derive = time.perf_counter() - t
    child, ctrl, batch = timers["child_step"], timers["controller_step"], timers["train_batch"]
    return {
        "child_s": child.seconds,
        "child_steps": child.calls,
        "train_batch_s": batch.seconds,
        "ctrl_s": ctrl.seconds,
        "ctrl_steps": ctrl.calls,
        "rest_s": epoch - child.seconds - ctrl.seconds,
        "derive_s": derive,
        "candidates": len(derivation.candidates),
        "images_per_s": child.calls * cfg.search.batch_size / max(child.seconds, 1e-9),
        "device": str(module.device),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--space", choices=("micro", "macro", "both"), default="both")
    p.add_argument("--full", action="store_true", help="full-size presets, 45k/5k data (GPU)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--set", nargs="*", default=[], help="extra config overrides")
    p.add_argument("--no-append", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    for space in ("micro", "macro") if args.space == "both" else (args.space,):
        overrides = (DATA_FULL if args.full else CPU_SMALL[space]) + list(args.set)
        if not args.full and not any(o.startswith("trainer=") for o in args.set):
            overrides = ["trainer=cpu", *overrides]
        with tempfile.TemporaryDirectory() as out:
            cfg = compose_cfg(space, overrides, out)
            before = load_average()
            r = one_epoch(cfg)
        s, c = cfg.search, cfg.controller
        rows = [
            ["child phase", r["child_steps"], r["child_s"], 1e3 * r["child_s"] / max(r["child_steps"], 1)],
            ["  of which train_batch (data)", r["child_steps"], r["train_batch_s"], 1e3 * r["train_batch_s"] / max(r["child_steps"], 1)],
            ["controller phase", r["ctrl_steps"], r["ctrl_s"], 1e3 * r["ctrl_s"] / max(r["ctrl_steps"], 1)],
            ["rest of the epoch (Lightning loop, summary)", "", r["rest_s"], ""],
            ["derivation", r["candidates"], r["derive_s"], 1e3 * r["derive_s"] / max(r["candidates"], 1)],
        ]  # fmt: skip
        report(
            f"Search epoch ({space}{', full' if args.full else ', reduced, CPU'})",
            {
                "device": r["device"],
                "layers": cfg.search_space.layers,
                "channels": cfg.search_space.channels,
                "batch": s.batch_size,
                "train/val images": f"{cfg.dataset.train_size - cfg.dataset.val_size}/"
                f"{cfg.dataset.val_size} fake 32x32x3",
                "controller": f"{c.train_steps} x {c.num_aggregate}",
                "derive_samples": s.derive_samples,
                "precision": cfg.trainer.precision,
                "overrides": " ".join(args.set) or "-",
            },  # fmt: skip
            table(["phase", "steps / candidates", "seconds", "ms per step"], rows)
            + f"\n\nchild phase: {r['images_per_s']:.1f} images/s",
            notes=[],
            append=not args.no_append,
            load_before=before,
        )


if __name__ == "__main__":
    main()

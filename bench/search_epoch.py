"""One search epoch through ``SearchModule`` and a ``pl.Trainer``, split into its phases.

Child phase (all child steps, timed as a whole: the device is synchronised at the phase's start
and end only; of which ``train_batch``: gathering and augmenting the batch on the device, timed
per call), controller phase (``train_steps`` REINFORCE updates with their rewards), derivation
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
import contextlib
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_average, report, sync, table  # noqa: E402

from enas_lightning.build import (  # noqa: E402
    build_search_module,
    build_trainer,
    validate,
    validate_data,
)
from enas_lightning.config import register_configs  # noqa: E402
from enas_lightning.data.datasets import load_splits  # noqa: E402
from enas_lightning.search.loader import CHILD, CONTROLLER  # noqa: E402
from enas_lightning.tasks.search import derive_where_searched  # noqa: E402

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


class PhaseClock(pl.Callback):
    """Wall time of each phase of the epoch, from its first step's start to its last step's end.

    The device is synchronised only at those two points, so the steps in between run as in a
    real search (the child phase queues its steps without waiting for the device).
    """

    def __init__(self) -> None:
        self.start: dict[int, float] = {}
        self.end: dict[int, float] = {}
        self.steps = {CHILD: 0, CONTROLLER: 0}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        phase = int(batch[0])
        if phase not in self.start:
            sync(pl_module.device)
            self.start[phase] = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        phase = int(batch[0])
        self.steps[phase] += 1
        loader = pl_module.loader
        done = loader.child_batches if phase == CHILD else loader.controller_steps
        if self.steps[phase] == done:
            sync(pl_module.device)
            self.end[phase] = time.perf_counter()

    def seconds(self, phase: int) -> float:
        return self.end.get(phase, 0.0) - self.start.get(phase, 0.0)


class SyncCounter(pl.Callback):
    """Host-device synchronisations per child step, counted by CUDA's sync debug mode.

    ``torch.cuda.set_sync_debug_mode("warn")`` warns at every synchronising CUDA call; the
    warnings recorded between one step's start and the next are that step's. A child step is
    allowed to wait only at the logging interval, at the end of the child phase and in its
    first step (the epoch's children are sampled there in one batched pass).
    """

    MESSAGE = "synchronizing CUDA operation"

    def __init__(self, record: list) -> None:
        self.record = record
        self.marks: list[tuple[int, int, int]] = []  # (phase, batch_idx, warnings so far)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.marks.append((int(batch[0]), batch_idx, self._count()))

    def _count(self) -> int:
        return sum(self.MESSAGE in str(w.message) for w in self.record)

    def quiet_step_syncs(self, trainer, loader) -> tuple[int, int]:
        """(child steps that should not wait, synchronisations counted in them)."""
        ends = [m[2] for m in self.marks[1:]] + [self._count()]
        steps = syncs = 0
        for (phase, b, start), end in zip(self.marks, ends, strict=True):
            due = b == 0 or loader.host_reads_due(b, trainer.log_every_n_steps)
            if phase == CHILD and not due:
                steps, syncs = steps + 1, syncs + end - start
        return steps, syncs


class CallTimer:
    """Wraps a function: total seconds of its calls, device work included (a sync per call,
    so only for the data-path measurement, never around the steps themselves)."""

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


def one_epoch(
    cfg, channels_last: bool = False, time_data: bool = True, count_syncs: bool = False
) -> dict[str, Any]:
    """Fit one epoch and derive; seconds per phase. ``channels_last``: supernet and data in
    channels-last memory format (``search.channels_last=true``).
    ``time_data`` times every ``train_batch`` call on its own, which waits for the device once
    per step (on a GPU that slows the child phase it is part of: time it in a separate run).
    ``count_syncs`` (CUDA only) counts the host-device synchronisations of the child steps
    between logging intervals (:class:`SyncCounter`; slows the run, time it separately)."""
    if channels_last:
        cfg.search.channels_last = True
    validate(cfg)
    torch.manual_seed(cfg.seed)
    splits = load_splits(cfg.dataset, holdout=True)
    validate_data(cfg, splits, "search")
    module = build_search_module(cfg, splits)
    data = module.data
    batch = CallTimer(data.train_batch, lambda: module.device)
    if time_data:
        data.train_batch = batch
    clock = PhaseClock()
    counter: SyncCounter | None = None
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        if count_syncs:  # CUDA's sync debug mode reports through warnings: record them all
            caught = stack.enter_context(warnings.catch_warnings(record=True))
            warnings.simplefilter("always")
            counter = SyncCounter(caught)
        trainer = build_trainer(
            cfg,
            "search",
            Path(tmp),
            1,
            [clock] if counter is None else [clock, counter],
            False,
            enable_checkpointing=False,
        )
        if count_syncs:
            torch.cuda.set_sync_debug_mode("warn")
        t = time.perf_counter()
        try:
            trainer.fit(module)
        finally:
            if count_syncs:
                torch.cuda.set_sync_debug_mode("default")
        sync(module.device)
        epoch = time.perf_counter() - t
    quiet = None if counter is None else counter.quiet_step_syncs(trainer, module.loader)
    t = time.perf_counter()
    derivation = derive_where_searched(trainer, module)  # where a real search derives
    sync(module.device)
    derive = time.perf_counter() - t
    child_s, ctrl_s = clock.seconds(CHILD), clock.seconds(CONTROLLER)
    return {
        "child_s": child_s,
        "child_steps": clock.steps[CHILD],
        "train_batch_s": batch.seconds if time_data else float("nan"),
        "ctrl_s": ctrl_s,
        "ctrl_steps": clock.steps[CONTROLLER],
        "rest_s": epoch - child_s - ctrl_s,
        "derive_s": derive,
        "candidates": len(derivation.candidates),
        "images_per_s": clock.steps[CHILD] * cfg.search.batch_size / max(child_s, 1e-9),
        "device": str(module.device),
        "quiet_steps_syncs": quiet,  # (child steps between logging intervals, syncs in them)
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

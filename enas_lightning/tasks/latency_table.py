"""``task=latency_table``: build the per-op latency table of this device, space and sizes.

Times every op placement the space can place (:mod:`enas_lightning.latency`) with a progress
bar, then the fixed part on ``latency.calibration_archs`` uniform architectures, and caches the
table (``latency.cache_dir``). A table already cached for these settings is kept (delete its
file to time again). Then the prediction is checked against end-to-end timings of
``latency.check_archs`` other uniform architectures: Spearman's rho and the mean relative error
are printed, kept in the table's JSON and written to ``latency_check.csv`` in the run directory
with one row per architecture.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from enas_lightning.config import Config
from enas_lightning.data.datasets import data_shape
from enas_lightning.errors import ConfigError
from enas_lightning.files import writing
from enas_lightning.spaces import get_space
from enas_lightning.tasks import Task, register_task


def uniform_archs(cfg: Config, n: int, seed: int) -> list[Any]:
    """``n`` architectures sampled uniformly from the configured space (seeded)."""
    from enas_lightning.build import build_controller

    sampler = build_controller(OmegaConf.merge(cfg, {"controller": {"name": "random"}}))
    gen = torch.Generator().manual_seed(seed)
    return sampler.sample_archs(n, gen, uniform=True) if n > 0 else []


def progress_bar(items: Sequence[Any], what: str) -> Any:
    """``items`` with a rich progress bar (plain ``items`` without rich)."""
    try:
        from rich.progress import track
    except ImportError:
        print(f"{what}: {len(items)}", flush=True)
        return items
    return track(items, description=f"{what} ({len(items)})", transient=False)


def check_latency_settings(cfg: Config, run_dir: Path, overrides: list[str]) -> None:
    """The device exists and the space lists its op placements."""
    lat = cfg.latency
    for name in ("batch_size", "repeats", "check_archs"):
        if getattr(lat, name) < (2 if name == "check_archs" else 1):
            raise ConfigError(
                f"latency.{name}",
                getattr(lat, name),
                "at least 2" if name == "check_archs" else "at least 1",
            )
    for name in ("warmup", "calibration_archs"):
        if getattr(lat, name) < 0:
            raise ConfigError(f"latency.{name}", getattr(lat, name), "0 or more")
    try:
        device = torch.device(lat.device)
    except RuntimeError:
        raise ConfigError("latency.device", lat.device, "cpu, cuda or cuda:<n>") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("latency.device", lat.device, "cpu (no CUDA device here)")
    space = get_space(cfg.search_space.name)
    classes, shape = data_shape(cfg.dataset)
    if space.all_op_placements(cfg.final, cfg.search_space, shape) is None:
        raise ConfigError(
            "search_space.name", space.name, "a space that lists its op placements (micro, macro)"
        )


def run_latency_table(cfg: Config, output_dir: Path) -> float:
    """Build (or reuse) the table and check it; returns Spearman's rho of the check."""
    from enas_lightning.latency.table import (
        build_table,
        check_prediction,
        load_table,
        save_table,
        table_path,
    )

    if cfg.trainer.num_threads > 0:
        torch.set_num_threads(cfg.trainer.num_threads)
    classes, shape = data_shape(cfg.dataset)
    lat = cfg.latency
    path = table_path(cfg, shape, classes)
    if path.is_file():
        table = load_table(cfg, shape, classes)
        print(f"latency table already built: {path} (delete it to time again)", flush=True)
    else:
        calibration = uniform_archs(cfg, lat.calibration_archs, lat.seed)
        table = build_table(cfg, shape, classes, calibration, progress_bar)
        print(
            f"latency table: {len(table.entries)} op placements, fixed part "
            f"{table.fixed_ms:.3f} ms, on {table.settings['device']}",
            flush=True,
        )
    # other architectures than the calibration ones (a later part of the same stream)
    archs = uniform_archs(cfg, lat.calibration_archs + lat.check_archs, lat.seed)
    archs = archs[lat.calibration_archs :]
    check = check_prediction(cfg, table, archs, shape, classes, progress_bar)
    table.check = {k: check[k] for k in ("archs", "spearman", "mean_relative_error")}
    path = save_table(cfg, table)
    output_dir.mkdir(parents=True, exist_ok=True)
    ops = tuple(cfg.search_space.ops)
    with writing(output_dir / "latency_check.csv") as f:
        w = csv.writer(f)
        w.writerow(["arc", "predicted_ms", "measured_ms"])
        for arch, p, m in zip(archs, check["predicted_ms"], check["measured_ms"], strict=True):
            w.writerow([" ".join(map(str, arch.to_ints(ops))), f"{p:.4f}", f"{m:.4f}"])
    print(
        f"prediction against end-to-end latency on {check['archs']} sampled architectures: "
        f"Spearman {check['spearman']:.3f}, mean relative error "
        f"{check['mean_relative_error']:.1%}\n"
        f"table: {path}\ncheck: {output_dir / 'latency_check.csv'}",
        flush=True,
    )
    return float(check["spearman"])


register_task(
    Task(
        "latency_table",
        run=run_latency_table,
        check=check_latency_settings,
        resumes=False,
        saves=(),
    )
)

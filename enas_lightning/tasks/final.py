"""``task=final``: train an architecture from scratch, test it, export it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from enas_lightning.build import build_logger
from enas_lightning.config import Config
from enas_lightning.final.train import train_final
from enas_lightning.spaces import ArchRecord
from enas_lightning.tasks import Task, register_task
from enas_lightning.tasks.common import check_data, resolve_ckpt
from enas_lightning.tasks.inspect import check_arch, load_cfg_arch


def run_final_arch(
    cfg: Config, arch: ArchRecord, output_dir: Path, in_pipeline: bool = False
) -> dict[str, Any]:
    output_dir.mkdir(parents=True, exist_ok=True)
    ckpt = resolve_ckpt(cfg, output_dir, stage_of_pipeline=in_pipeline)
    metrics = train_final(
        cfg, arch, output_dir, logger=build_logger(cfg, output_dir), ckpt_path=ckpt
    )
    if metrics:
        print(
            f"final training: test acc {metrics['test_acc']:.4f} (best {metrics['best_test_acc']:.4f}), "
            f"{metrics['params']} params, {metrics['wall_time_s']:.0f} s; results in {output_dir}",
            flush=True,
        )
    return metrics


def run_final(cfg: Config, output_dir: Path) -> float | None:
    """Returns the final test accuracy (for sweepers)."""
    metrics = run_final_arch(cfg, load_cfg_arch(cfg), output_dir)
    return metrics.get("test_acc") if metrics else None


def check_final(cfg: Config, run_dir: Path, overrides: list[str]) -> None:
    """The architecture (``arch=``) and the data of the final training."""
    check_arch(cfg)
    check_data(cfg, "final")


register_task(Task("final", run=run_final, check=check_final))

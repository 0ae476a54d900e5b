"""Every object is built from config here, after the config has been checked.

:func:`validate` turns each setting that a type check cannot catch into one clear
:class:`~enas_lightning.errors.ConfigError` before any data is loaded or any device is touched.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf

from enas_lightning.checkpointing import AtomicCheckpointIO
from enas_lightning.config import Config, space_sections
from enas_lightning.controller import Controller
from enas_lightning.data.datasets import ImageSplits, get_dataset
from enas_lightning.errors import ConfigError
from enas_lightning.optim import CLIP_MODES
from enas_lightning.ranks import WatchedDDPStrategy
from enas_lightning.rewards import Reward, get_reward
from enas_lightning.spaces import Space, get_space
from enas_lightning.spaces.init import INITS, authors_init_
from enas_lightning.spaces.ops import without_batch_norm_affine
from enas_lightning.strategies import SearchStrategy, get_strategy
from enas_lightning.tasks import get_task

LOGGERS = ("csv", "tensorboard", "wandb", "none")
PRECISIONS = ("32-true", "32", "bf16-mixed", "16-mixed", "bf16-true", "64-true")


def _choice(setting: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(setting, value, f"one of {', '.join(allowed)}")


def _positive(setting: str, value: int | float, minimum: int | float = 1) -> None:
    if value < minimum:
        raise ConfigError(setting, value, f"at least {minimum}")


def _learning_rate(setting: str, value: float, off: str) -> None:
    """A copy's first learning rate: > 0 (``off`` names the setting that turns its use off)."""
    if not value > 0:
        raise ConfigError(setting, value, f"a learning rate > 0 ({off}=0 turns it off)")


def validate(cfg: Config) -> None:
    """Check every setting whose type alone does not make it valid."""
    get_task(cfg.task)  # an unknown task: one line listing the registered ones
    s = cfg.search_space
    space = get_space(s.name)  # an unknown name: one line listing the registered spaces
    check_space_sections(cfg, space)
    # unknown names: one line listing the registered strategies and rewards
    get_strategy(cfg.controller.name)
    get_reward(cfg.reward.name).check_config(cfg)
    if cfg.reward.name != "cost_aware" and cfg.reward.get("target") is not None:
        raise ConfigError(
            "reward.target", cfg.reward.target, "only with reward=cost_aware (or leave it unset)"
        )
    for name in ("max_params", "max_madds", "max_latency_ms"):
        budget = cfg.derive.get(name) if "derive" in cfg else None
        if budget is not None and budget <= 0:
            raise ConfigError(f"derive.{name}", budget, "a budget > 0, or null for none")
    _choice("logger.name", cfg.logger.name, LOGGERS)
    get_dataset(cfg.dataset.name)  # an unknown name: one line listing the registered datasets
    _choice("trainer.precision", str(cfg.trainer.precision), PRECISIONS)
    if cfg.task in ("search", "pipeline") and str(cfg.trainer.precision) == "16-mixed":
        # the search steps its optimizers by hand (manual optimisation) and clips each child's
        # gradients itself; fp16 loss scaling would need its own unscale/skip/update logic there
        raise ConfigError(
            "trainer.precision",
            "16-mixed",
            f"one of {', '.join(p for p in PRECISIONS if p != '16-mixed')} for task="
            f"{cfg.task} (fp16 loss scaling is not supported in the search; task=final takes it)",
        )
    # the space's own settings: op names, sizes, merge modes
    space.check_config(cfg)
    _positive("search_space.channels", s.channels)
    _positive("final.channels", cfg.final.channels)
    for name in (
        "search.epochs",
        "search.batch_size",
        "search.eval_batch_size",
        "final.epochs",
        "final.batch_size",
        "final.eval_batch_size",
        "controller.train_steps",
        "controller.num_aggregate",
        "controller.lstm_size",
        "controller.lstm_layers",
        "search.derive_samples",
        "trainer.devices",
        "trainer.num_nodes",
    ):
        section, key = name.split(".")
        _positive(name, getattr(getattr(cfg, section), key))
    _positive("search.warmup_epochs", cfg.search.warmup_epochs, 0)
    _positive("logger.plot_every_n_epochs", cfg.logger.plot_every_n_epochs)
    _positive("search.derive_finetune_steps", cfg.search.derive_finetune_steps, 0)
    _learning_rate(
        "search.derive_finetune_lr", cfg.search.derive_finetune_lr, "search.derive_finetune_steps"
    )
    _positive("search.derive_uniform_steps", cfg.search.derive_uniform_steps, 0)
    _learning_rate(
        "search.derive_uniform_lr", cfg.search.derive_uniform_lr, "search.derive_uniform_steps"
    )
    _positive("search.derive_prune_keep", cfg.search.derive_prune_keep, 0)
    _positive("search.derive_prune_steps", cfg.search.derive_prune_steps, 1)
    _learning_rate("search.derive_prune_lr", cfg.search.derive_prune_lr, "search.derive_prune_keep")
    if cfg.search.derive_prune_keep > 0 and cfg.search.param_free_adjust:
        raise ConfigError(
            "search.derive_prune_keep",
            cfg.search.derive_prune_keep,
            "0 with search.param_free_adjust=true (the pruned derivation ranks by plain "
            "scores; use one of the two)",
        )
    _choice("search.init", cfg.search.init, INITS)
    # false | true | auto: one line naming them (imported here: final/ imports this module)
    from enas_lightning.final.compile import compile_mode

    compile_mode(cfg.final.compile)
    _positive("final.compile_min_steps", cfg.final.compile_min_steps, 0)
    if not 0 <= cfg.search.param_free_dropout < 1:
        raise ConfigError(
            "search.param_free_dropout", cfg.search.param_free_dropout, "a rate in [0, 1) (0 = off)"
        )
    if cfg.search.param_free_adjust and type(space).param_free_share is Space.param_free_share:
        raise ConfigError(
            "search.param_free_adjust",
            True,
            f"false for search_space={cfg.search_space.name} (its space does not say which "
            "ops are parameter-free: Space.param_free_share)",
        )
    for name in ("search_space.dropout_keep", "final.dropout_keep", "final.drop_path_keep"):
        section, key = name.split(".")
        value = getattr(getattr(cfg, section), key)
        if not 0 < value <= 1:
            raise ConfigError(name, value, "a keep probability in (0, 1]")
    for name, optim in (("search.optim", cfg.search.optim), ("final.optim", cfg.final.optim)):
        _choice(f"{name}.grad_clip_mode", optim.grad_clip_mode, CLIP_MODES)
        if optim.l2_reg < 0:
            raise ConfigError(f"{name}.l2_reg", optim.l2_reg, ">= 0 (0 = no weight decay)")
        if optim.nesterov and optim.momentum <= 0:
            raise ConfigError(
                f"{name}.momentum",
                optim.momentum,
                f"> 0 with {name}.nesterov=true (or set it false)",
            )
    if cfg.task != "inspect":  # inspect builds and counts a network on the CPU: no devices
        validate_devices(cfg)


def check_space_sections(cfg: Config, space: Space) -> None:
    """The config sections carry ``space``'s own settings: it was chosen as a group
    (``search_space=<name>``), not by renaming another space's (``search_space.name=<name>``)."""
    for section, expected in space_sections(space).items():
        if OmegaConf.get_type(cfg[section]) is not expected:
            raise ConfigError(
                "search_space.name",
                space.name,
                f"given as a group, search_space={space.name}, which brings its settings "
                f"({section} is typed {OmegaConf.get_type(cfg[section]).__name__} here, the "
                f"space's is {expected.__name__})",
            )


def validate_devices(cfg: Config) -> None:
    t = cfg.trainer
    accel = t.accelerator
    if accel in ("gpu", "cuda") or (accel == "auto" and torch.cuda.is_available()):
        have = torch.cuda.device_count()
        if have == 0:
            raise ConfigError(
                "trainer.accelerator", accel, "cpu here (no GPU is visible): pass trainer=cpu"
            )
        if t.devices > have:
            raise ConfigError("trainer.devices", t.devices, f"at most {have} (GPUs visible here)")
    elif accel in ("cpu", "auto"):
        have = os.cpu_count() or 1
        if t.devices > have:
            raise ConfigError("trainer.devices", t.devices, f"at most {have} (CPU cores here)")
    else:
        raise ConfigError("trainer.accelerator", accel, "one of auto, cpu, gpu, cuda")


def validate_data(cfg: Config, splits: ImageSplits, stage: str) -> None:
    """Shape checks that need the loaded data: image size, batch sizes."""
    c, h, w = splits.image_shape
    if min(h, w) < 4:
        raise ConfigError(
            "dataset.image_size", f"{h}x{w}", "at least 4x4 (two reductions halve it twice)"
        )
    world = cfg.trainer.devices * cfg.trainer.num_nodes
    if stage == "search":
        n_val = len(splits.val_y) // world
        if n_val < 1:
            raise ConfigError("dataset.val_size", len(splits.val_y), "at least 1 image per rank")
        if cfg.search.batch_size > n_val:
            raise ConfigError(
                "search.batch_size",
                cfg.search.batch_size,
                f"at most {n_val} (validation images per rank: rewards use one minibatch)",
            )
        n_train = len(splits.train_y) // world
        if cfg.search.batch_size > n_train:
            raise ConfigError(
                "search.batch_size",
                cfg.search.batch_size,
                f"at most {n_train} (training images per rank)",
            )
    else:
        n_train = len(splits.train_y) // world
        if cfg.final.batch_size > n_train:
            raise ConfigError(
                "final.batch_size",
                cfg.final.batch_size,
                f"at most {n_train} (training images per rank)",
            )


def build_supernet(cfg: Config, splits: ImageSplits) -> torch.nn.Module:
    """The space's supernet, then the ``search.*`` levers that change it (all off by default):
    BatchNorm without affine, the authors' initialisation, parameter-free op dropout."""
    s = cfg.search
    net = get_space(cfg.search_space.name).build_supernet(
        cfg.search_space, splits.num_classes, splits.image_shape
    )
    if not s.bn_affine:
        without_batch_norm_affine(net)
    if s.init == "authors":
        authors_init_(net, int(cfg.seed))
    if s.param_free_dropout > 0:
        if not hasattr(net, "set_param_free_dropout"):
            raise ConfigError(
                "search.param_free_dropout",
                s.param_free_dropout,
                f"0 for search_space={cfg.search_space.name} (its supernet has no "
                "set_param_free_dropout)",
            )
        net.set_param_free_dropout(float(s.param_free_dropout))
    return net


def build_search_module(cfg: Config, splits: ImageSplits) -> Any:
    """The search's :class:`~enas_lightning.search.module.SearchModule` for ``cfg`` on
    ``splits``: the supernet, the controller and the splits on the device with the dataset's
    augmentation (one place for ``task=search``, ``task=fidelity`` and the benches)."""
    # imported here: search/module.py imports this module
    from enas_lightning.data.device import DeviceSplits
    from enas_lightning.search.module import SearchModule

    d = cfg.dataset
    data = DeviceSplits(splits, pad=d.pad, flip=d.flip, cutout=d.cutout)
    return SearchModule(build_supernet(cfg, splits), build_controller(cfg), data, cfg)


def build_controller(cfg: Config) -> Controller:
    return get_space(cfg.search_space.name).build_controller(cfg.search_space, cfg.controller)


def build_search_strategy(cfg: Config) -> SearchStrategy:
    """The search strategy ``controller.name`` names (``enas``, ``random`` or a plug-in)."""
    return get_strategy(cfg.controller.name)


def build_reward(cfg: Config) -> Reward:
    """The reward ``reward.name`` names (``accuracy``, ``loss`` or a plug-in)."""
    return get_reward(cfg.reward.name)


def build_logger(cfg: Config, output_dir: Path) -> Any:
    lg = cfg.logger
    if lg.name == "none":
        return False
    if lg.name == "csv":
        return pl.loggers.CSVLogger(save_dir=str(output_dir), name="", version="logs")
    if lg.name == "tensorboard":
        return pl.loggers.TensorBoardLogger(save_dir=str(output_dir), name="", version="tb")
    from enas_lightning.tracking import wandb_logger

    return wandb_logger(cfg, output_dir)


def build_strategy(cfg: Config, stage: str) -> Any:
    """DDP for several devices; the search needs ``find_unused_parameters`` (see search.module)."""
    t = cfg.trainer
    several = t.devices * t.num_nodes > 1
    if t.strategy == "auto" and not several:
        return "auto"
    if t.strategy in ("auto", "ddp", "ddp_find_unused_parameters_true"):
        # Lightning's DDP whose watch over the ranks ends the run with one line (ranks.py)
        return WatchedDDPStrategy(find_unused_parameters=stage == "search")
    if t.strategy == "ddp_spawn":
        return WatchedDDPStrategy(start_method="spawn", find_unused_parameters=stage == "search")
    raise ConfigError("trainer.strategy", t.strategy, "one of auto, ddp, ddp_spawn")


def build_trainer(
    cfg: Config,
    stage: str,
    output_dir: Path,
    max_epochs: int,
    callbacks: list[pl.Callback],
    logger: Any,
    **overrides: Any,
) -> pl.Trainer:
    from enas_lightning.console import quiet_lightning

    quiet_lightning()  # no advertising tip, no TPU/HPU census in the output
    t = cfg.trainer
    if t.num_threads > 0:
        torch.set_num_threads(t.num_threads)
    kwargs: dict[str, Any] = dict(
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=build_strategy(cfg, stage),
        precision=t.precision,
        max_epochs=max_epochs,
        default_root_dir=str(output_dir),
        callbacks=callbacks,
        logger=logger,
        log_every_n_steps=t.log_every_n_steps,
        enable_progress_bar=t.enable_progress_bar,
        enable_model_summary=False,
        deterministic=t.deterministic,
        use_distributed_sampler=False,  # our loaders shard by rank themselves
        num_sanity_val_steps=0,
        # every checkpoint (last.ckpt, SLURM's hpc_ckpt) is written atomically
        plugins=[AtomicCheckpointIO()],
        # a search epoch's step stream is longer when a controller phase is due (train_every,
        # warm-up): Lightning takes the length of a loader once per load, so load it per epoch
        reload_dataloaders_every_n_epochs=1 if stage == "search" else 0,
    )
    kwargs.update(overrides)
    return pl.Trainer(**kwargs)

"""The search run a fidelity run measures: where it is, and its config under this command.

``fidelity.run`` names a finished ``task=search`` run, a ``task=pipeline`` run or the pipeline's
``search/`` subfolder; :func:`find_search_run` finds its config and checkpoint,
:func:`fidelity_config` merges this command's settings into the run's config, and
:func:`load_search_module` loads the checkpoint's shared weights and controller.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from enas_lightning.errors import ConfigError
from enas_lightning.spaces import get_space

# command-line keys taken from the fidelity command rather than from the search run's config:
# the final-training settings, where the data lives (not which data it is) and the fine-tuning
# of each architecture before its shared-weight score (search.derive_finetune_steps and _lr), and
# the uniform finish of the shared weights (search.derive_uniform_steps and _lr)
OVERRIDABLE = (
    "final.",
    "dataset.data_dir",
    "dataset.download",
    "search.derive_finetune_",
    "search.derive_uniform_",
)


@dataclass(frozen=True)
class SearchRun:
    """Where a finished search keeps what the fidelity run needs."""

    search_dir: Path  # holds checkpoints/last.ckpt and best_arch.json
    config_file: Path  # the run's .hydra/config.yaml (a pipeline's is one level up)
    ckpt: Path


def _not_a_search(run: Path, why: str) -> ConfigError:
    return ConfigError(
        "fidelity.run",
        str(run),
        f"the directory of a finished task=search or task=pipeline run ({why})",
    )


def find_search_run(value: str | None) -> SearchRun:
    """The search run of ``fidelity.run``: a search run, a pipeline run, or a pipeline's search/.

    Raises:
        ConfigError: unset, missing, not a search or pipeline run, no checkpoint, not finished.
    """
    if not value:
        raise ConfigError(
            "fidelity.run", value, "the directory of a finished task=search or task=pipeline run"
        )
    run = Path(value)
    if not run.is_dir():
        raise _not_a_search(run, "no such directory")
    own = run / ".hydra" / "config.yaml"
    parent = run.parent / ".hydra" / "config.yaml"
    if own.is_file():
        task = OmegaConf.load(own).get("task")
        if task == "pipeline":
            found = SearchRun(run / "search", own, run / "search" / "checkpoints" / "last.ckpt")
        elif task == "search":
            found = SearchRun(run, own, run / "checkpoints" / "last.ckpt")
        else:
            raise _not_a_search(run, f"its .hydra/config.yaml has task={task}")
    elif (
        run.name == "search"
        and parent.is_file()
        and OmegaConf.load(parent).get("task") == "pipeline"
    ):
        found = SearchRun(run, parent, run / "checkpoints" / "last.ckpt")
    else:
        raise _not_a_search(run, "no .hydra/config.yaml")
    if not found.ckpt.is_file():
        raise _not_a_search(run, f"no checkpoint {found.ckpt}")
    if not (found.search_dir / "best_arch.json").is_file():
        raise _not_a_search(
            run,
            f"the search did not finish: no {found.search_dir / 'best_arch.json'}; finish it with "
            "hydra.run.dir=<run> resume=true",
        )
    return found


def _override_keys(overrides: list[str]) -> list[str]:
    keys = []
    for arg in overrides:
        key, sep, _ = arg.lstrip("+~").partition("=")
        if sep and key.startswith(OVERRIDABLE):
            keys.append(key)
    return keys


def fidelity_config(cfg: DictConfig, overrides: list[str], output_dir: Path) -> DictConfig:
    """The search run's config with this command's trainer, logger and fidelity settings.

    ``final.*``, ``search.derive_finetune_steps``/``_lr`` (and ``dataset.data_dir``/
    ``dataset.download``) given on this command line replace the search run's values; ``final.epochs`` is ``fidelity.epochs``, ``seed`` is
    ``fidelity.seed``, and where the space's architectures fix the network's depth, the
    network is as deep as the searched architectures.
    """
    from enas_lightning.config import run_config

    found = find_search_run(cfg.fidelity.run)
    try:
        merged = run_config(OmegaConf.load(found.config_file))
    except Exception as e:  # a run made by another version of the project
        raise _not_a_search(
            Path(cfg.fidelity.run),
            f"its config does not load here: {' '.join(str(e).split())[:160]}",
        ) from None
    given = _override_keys(overrides)
    if "final.epochs" in given and cfg.final.epochs != cfg.fidelity.epochs:
        raise ConfigError(
            "final.epochs", cfg.final.epochs, "left out: fidelity.epochs sets the standalone budget"
        )
    # a space whose architectures fix the network's depth (a whole-network space)
    layers = get_space(merged.search_space.name).fixed_final_layers(None, merged.search_space)
    if layers is not None and "final.layers" in given and cfg.final.layers != layers:
        raise ConfigError(
            "final.layers",
            cfg.final.layers,
            f"{layers} (the layer count of the searched architectures) or left out",
        )
    for key in given:
        OmegaConf.update(merged, key, OmegaConf.select(cfg, key), merge=False)
    merged.task = "fidelity"
    merged.output_dir = str(output_dir)
    merged.arch, merged.ckpt_path, merged.resume = None, None, False
    merged.trainer = cfg.trainer
    merged.logger = cfg.logger
    merged.fidelity = cfg.fidelity
    merged.seed = cfg.fidelity.seed
    merged.final.epochs = cfg.fidelity.epochs
    merged.search.derive_batches = 0  # scores on the whole validation split
    if layers is not None:
        merged.final.layers = layers
    return merged


def load_search_module(fcfg: DictConfig, found: SearchRun, device: torch.device) -> Any:
    """The search's :class:`SearchModule` with the checkpoint's shared weights and controller."""
    from enas_lightning.build import build_search_module
    from enas_lightning.checkpointing import DERIVATION_KEYS, check_fingerprint
    from enas_lightning.data.cache import load_splits_cached
    from enas_lightning.errors import CheckpointError

    splits = load_splits_cached(fcfg.dataset, holdout=True)
    module = build_search_module(fcfg, splits)
    state = torch.load(found.ckpt, map_location="cpu", weights_only=False)
    # the shared weights must fit; how the architectures are scored is this command's
    check_fingerprint(state, fcfg, ignore=DERIVATION_KEYS)
    try:
        module.load_state_dict(state["state_dict"])
    except RuntimeError as e:
        raise CheckpointError(
            f"fidelity.run: {found.ckpt} does not fit the run's config ({str(e).splitlines()[0]})"
        ) from None
    module.eval()
    return module.to(device)


def scoring_device(fcfg: DictConfig) -> torch.device:
    """Where the shared weights score the architectures: the first GPU if the trainer has one."""
    accel = fcfg.trainer.accelerator
    if accel in ("gpu", "cuda") or (accel == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", 0)
    return torch.device("cpu")

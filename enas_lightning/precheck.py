"""Reject bad input before Hydra creates (or touches) the run directory.

Hydra writes ``.hydra/`` and the job log into ``hydra.run.dir`` before the task function runs, so
an error raised there would already have modified an earlier run directory given by mistake.
:func:`precheck` therefore composes the same config with Hydra's compose API, in memory, and runs
every check that can fail on user input: config composition (misspelt key, wrong type, printed as
one line instead of Hydra's multi-line report), :func:`enas_lightning.build.validate`, then the
task's own check (:attr:`enas_lightning.tasks.Task.check`: the architecture file, the
checkpoint's compatibility, and the data: missing or corrupt archive, unreadable images, images
too small, batch size larger than a split). Only then does ``hydra.main`` run. The loaded splits are kept
(:func:`~enas_lightning.data.cache.load_splits_cached`) so the task does not load them twice.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from enas_lightning.errors import ENASError


def _override_value(argv: list[str], key: str) -> str | None:
    for arg in argv:
        k, sep, v = arg.lstrip("+~").partition("=")
        if sep and k == key:
            return v
    return None


def one_line_hydra_error(exc: BaseException, argv: list[str]) -> str:
    """Hydra's multi-line composition report → ``setting=value is not allowed: ...``."""
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

    from enas_lightning.config import other_space_setting

    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, OmegaConfBaseException):
        # Hydra re-raises a config file's merge error without "from"
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, OmegaConfBaseException) and getattr(cause, "full_key", None):
        key = cause.full_key
        value = _override_value(argv, key)
        in_file = re.match(r"In '([^']+)'", str(exc))
        setting = f"{key} (in {in_file[1]})" if value is None and in_file else f"{key}={value!r}"
        first = str(cause).splitlines()[0]
        if isinstance(cause, ConfigKeyError | ConfigAttributeError):
            obj = getattr(cause, "object_type", None)
            names = (
                ", ".join(f.name for f in dataclasses.fields(obj))
                if obj is not None and dataclasses.is_dataclass(obj)
                else "see --cfg job"
            )
            parent = key.rpartition(".")[0] or "the top level"
            why = other_space_setting(key, obj) or "no such setting"
            return f"{setting} is not allowed: {why}; keys of {parent}: {names}"
        return f"{setting} is not allowed: {first}"
    return " ".join(str(exc).split())


def compose(argv: list[str]) -> DictConfig:
    """The config ``python -m enas_lightning argv`` would run with (``hydra`` node included)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from enas_lightning.config import register_configs

    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module("enas_lightning.conf", version_base="1.3"):
            return hydra_compose("config", overrides=argv, return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ENASError(one_line_hydra_error(exc, argv)) from None
    finally:
        GlobalHydra.instance().clear()


def check(cfg: Any, run_dir: Path, argv: tuple[str, ...] | list[str] = ()) -> None:
    """Every check that can fail on user input: the settings, then the task's own
    (:attr:`enas_lightning.tasks.Task.check`: files, checkpoints, data)."""
    from enas_lightning.build import validate
    from enas_lightning.tasks import get_task

    validate(cfg)
    get_task(cfg.task).check(cfg, run_dir, list(argv))


def precheck(argv: list[str]) -> None:
    """Compose and check; raises :class:`ENASError` with a one-line message."""
    cfg = compose(argv)
    run_dir = Path(str(cfg.hydra.run.dir))
    check(cfg, run_dir, argv)

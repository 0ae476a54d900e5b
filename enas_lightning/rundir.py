"""A run never overwrites an earlier one.

Hydra writes ``.hydra/config.yaml`` and the job log into the run directory before the task
function runs, and a search or final training then rewrites ``checkpoints/last.ckpt``, the CSV
logs, ``sampled_archs.csv`` and ``best_arch.json``. So the check runs earlier, in a Hydra callback
(:class:`RunDirGuard`, listed under ``hydra.callbacks`` in ``conf/config.yaml``):
``on_run_start`` and ``on_multirun_start`` are called after the config is composed and before
Hydra creates or touches any directory.

- a single run refuses a ``hydra.run.dir`` that already holds files;
- a sweep (``-m``) refuses a ``hydra.sweep.dir`` that already holds files (every job directory
  lies under it), and each job refuses, at its start, a job directory that holds more than what
  Hydra just wrote there (two jobs of one sweep sharing a directory);
- ``resume=true``, or a ``ckpt_path`` inside that directory, continues the earlier run in place
  (search, final and pipeline); ``task=inspect`` has nothing to resume and always needs a new
  directory.

The check and the directory's first write are one step: a new run claims its directory by
creating :data:`CLAIM` with ``O_CREAT | O_EXCL``, which exactly one process can do, so of two runs
started at the same moment on one directory one runs and the other gets the same one line as a
rerun (a sweep claims its sweep directory and each job its job directory the same way).

Ranks that Lightning relaunches for DDP (and ranks > 0 under SLURM or torchrun) run in rank 0's
directory by design and are not checked.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from enas_lightning.errors import ConfigError, exit_with

# Set to a process's rank (> 0 for every rank but the first) by Lightning's DDP relaunch,
# torchrun, SLURM and submitit's local launcher.
RANK_VARIABLES = ("LOCAL_RANK", "RANK", "SLURM_PROCID", "SUBMITIT_LOCAL_GLOBALID")
# What Hydra itself writes into a job directory before the task function runs.
HYDRA_WRITES = (".hydra",)
# Created with O_EXCL by the run that takes a directory; says which process did, and when.
CLAIM = ".claimed_by"


def is_relaunched_rank(job_name: str = "") -> bool:
    """A process that joins a run started by rank 0 (DDP relaunch, SLURM/torchrun rank > 0)."""
    if job_name.startswith("train_ddp_process_"):
        return True
    return any(os.environ.get(k, "0") not in ("", "0") for k in RANK_VARIABLES)


def resumable(task: str) -> bool:
    """Whether ``task=<task>`` can continue an earlier run (not ``inspect``: see tasks/)."""
    from enas_lightning.tasks import TASKS

    return task not in TASKS or TASKS[task].resumes


def continues_run(cfg: Any, run_dir: Path) -> bool:
    """Whether ``cfg`` resumes the run in ``run_dir`` (``resume=true`` or a checkpoint in it)."""
    if not resumable(str(cfg.get("task"))):
        return False
    if cfg.get("resume"):
        return True
    ckpt = cfg.get("ckpt_path")
    if not ckpt:
        return False
    return Path(run_dir).resolve() in Path(ckpt).resolve().parents


def earlier_files(directory: Path, ignore: tuple[str, ...] = ()) -> list[str]:
    """Names of the entries of ``directory`` (sorted), less ``ignore``; [] when it is absent."""
    if not directory.is_dir():
        return []
    return sorted(p.name for p in directory.iterdir() if p.name not in ignore)


def refuse(setting: str, directory: Path, names: list[str], task: str) -> ConfigError:
    shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    ways = (
        f"pass resume=true to continue that run, or another {setting}"
        if resumable(task)
        else f"pass another {setting}"
    )
    return ConfigError(
        setting,
        str(directory),
        f"it holds an earlier run ({shown}) that this run would overwrite; {ways}",
    )


def claim(cfg: Any, directory: Path, setting: str) -> None:
    """Take ``directory`` for this run: create :data:`CLAIM` in it with ``O_EXCL``.

    Raises:
        ConfigError: another run created it first (the line :func:`refuse` gives).
    """
    directory.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        fd = os.open(directory / CLAIM, flags, 0o666)
    except FileExistsError:
        raise refuse(setting, directory, earlier_files(directory), str(cfg.get("task"))) from None
    when = time.strftime("%Y-%m-%d %H:%M:%S")
    with os.fdopen(fd, "w") as f:
        f.write(f"pid {os.getpid()} on {socket.gethostname()} at {when}\n")


def check_new_dir(cfg: Any, directory: Path, setting: str) -> None:
    """Claim ``directory`` (:func:`claim`) unless ``cfg`` continues the run in it.

    Raises:
        ConfigError: ``directory`` holds files and ``cfg`` does not resume, or another run
            claimed it first.
    """
    if continues_run(cfg, directory):
        return
    names = earlier_files(directory)
    if names:
        raise refuse(setting, directory, names, str(cfg.get("task")))
    claim(cfg, directory, setting)


def check_job_dir(cfg: Any, job_dir: Path, job_name: str) -> None:
    """At a sweep job's start: only what Hydra just wrote may be there (see module doc)."""
    if is_relaunched_rank(job_name) or continues_run(cfg, job_dir):
        return
    names = earlier_files(job_dir, ignore=(*HYDRA_WRITES, f"{job_name}.log"))
    if names:
        raise refuse("hydra.sweep.subdir", job_dir, names, str(cfg.get("task")))
    claim(cfg, job_dir, "hydra.sweep.subdir")


class RunDirGuard(Callback):
    """Hydra callback: refuse, in one line and before anything is written, to reuse a run dir."""

    def _check(self, config: DictConfig, key: str) -> None:
        if is_relaunched_rank(str(config.hydra.job.name)):
            return
        try:
            check_new_dir(config, Path(str(config.hydra[key].dir)), f"hydra.{key}.dir")
        except ConfigError as e:
            exit_with(e)  # SystemExit: Hydra turns only Exceptions of callbacks into warnings

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, "run")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, "sweep")


# --------------------------------------------------------------------------- the current run
_current: tuple[Path, str] | None = None


def enter(run_dir: Path, task: str) -> None:
    """Record the run this process does (its directory and task), for the lines that tell the
    user how to resume it after a fault (``enas_lightning.checkpointing.after_failure``). One run
    per process at a time: a sweep's jobs run one after another."""
    global _current
    _current = (Path(run_dir), task)


def current() -> tuple[Path, str] | None:
    """``(run_dir, task)`` given to :func:`enter`, or ``None`` outside the command line."""
    return _current

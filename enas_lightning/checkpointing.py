"""Checkpoints that survive interruption: atomic writes and a ``last.ckpt`` on SIGTERM/SIGINT.

Both pieces are generic Lightning plugins, used by every task that trains:

- :class:`AtomicCheckpointIO` (``Trainer(plugins=[...])``) writes each checkpoint to a temporary
  file in the target directory, flushes it to disk and then ``os.replace``-s it over the target,
  so a kill or a full disk at any moment leaves either the old, complete file or the new,
  complete one (:mod:`enas_lightning.files`); the file gets the umask's mode, as every other
  file of the run.
- :class:`SaveOnInterrupt` (a callback) relies on Lightning's own signal handling: Lightning's
  SIGTERM handler only sets ``trainer.received_sigterm``, and the fit loop raises
  ``SIGTERMException`` at the next batch boundary (after the batch and its progress counters
  completed). The callback maps SIGINT (Ctrl+C) onto the same flag, so both signals stop at a
  batch boundary, never in the middle of an optimiser step. Its ``on_exception`` hook then saves
  ``<dir>/last.ckpt`` through ``trainer.save_checkpoint`` (the loops' progress and the stateful
  loader's position included, so resume continues mid-epoch) and :func:`interrupted_message`
  tells the user how to resume.

SLURM: with ``SLURMEnvironment(auto_requeue=True)`` Lightning installs its SIGUSR1 handler (save
an ``hpc_ckpt_*.ckpt`` and ``scontrol requeue``) and composes its SIGTERM handlers with any
existing one; this module touches neither SIGUSR1 nor SIGTERM, so auto-requeue keeps working, and
the HPC checkpoint goes through :class:`AtomicCheckpointIO` as well. Only SIGINT is replaced, for
the duration of ``fit``, and the previous handler is restored afterwards.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.utilities.exceptions import SIGTERMException

from enas_lightning.errors import CheckpointError, ENASError
from enas_lightning.files import write_atomic

if TYPE_CHECKING:
    from enas_lightning.config import Config

log = logging.getLogger(__name__)
LAST = "last.ckpt"


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` into a temporary file in the same directory, fsync, then ``os.replace``
    (:func:`enas_lightning.files.write_atomic`: the file gets the umask's mode, and a failed
    write is a :class:`~enas_lightning.errors.WriteError` naming the file and the space it
    needed)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options")
        write_atomic(
            path, lambda f: torch.save(checkpoint, f), needed=lambda: saved_size(checkpoint)
        )


class _Counter:
    """A write-only file that counts the bytes written to it."""

    def __init__(self) -> None:
        self.n = 0

    def write(self, b: bytes) -> int:
        self.n += len(b)
        return len(b)

    def flush(self) -> None:
        pass


def saved_size(checkpoint: dict[str, Any]) -> int:
    """The bytes ``torch.save(checkpoint)`` writes (serialised again, to nowhere: asked only
    after a write failed, to tell the user how much space it needs)."""
    counter = _Counter()
    torch.save(checkpoint, counter)
    return counter.n


class Interrupted(ENASError):
    """Training was stopped by a signal after saving a checkpoint to resume from."""

    exit_code = 130


# Arguments Lightning's DDP relaunch (and the app, for such a rank) adds to a rank's command line
RELAUNCH_ARGS = ("hydra.job.name=train_ddp_process_", "hydra.output_subdir=", "hydra/job_logging=")


def resume_command(run_dir: Path) -> str:
    """The command line that continues this run in ``run_dir`` (``resume=true``: the run's
    ``last.ckpt``, the pipeline's stages, fidelity's finished rows): the original arguments with
    ``ckpt_path``, ``resume`` and ``hydra.run.dir`` replaced. A sweep job's own arguments stand
    for the sweep's."""
    from hydra.core.hydra_config import HydraConfig

    args = sys.argv[1:]
    try:
        hc = HydraConfig.get()
        if hc.mode.name == "MULTIRUN":
            args = list(hc.overrides.task)
    except ValueError:  # outside a Hydra job
        pass
    drop = ("ckpt_path=", "resume=", "hydra.run.dir=", *RELAUNCH_ARGS)
    kept = [a for a in args if not a.startswith("-") and not a.lstrip("+~").startswith(drop)]
    return shlex.join(
        ["python", "-m", "enas_lightning", *kept, f"hydra.run.dir={run_dir}", "resume=true"]
    )


def newest_saved(run_dir: Path, patterns: tuple[str, ...]) -> Path | None:
    """The newest file matching one of ``patterns`` (globs relative to ``run_dir``)."""
    found = [p for pattern in patterns for p in run_dir.glob(pattern) if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime, default=None)


def after_failure(run_dir: Path, task: str, free_space: bool = False) -> str:
    """What survives of the run in ``run_dir`` after a fault, and how to resume it: the end of
    the one-line message of a failed write or of a dead rank (``""`` for a task that has nothing
    to resume)."""
    from enas_lightning.tasks import TASKS

    if task not in TASKS or not TASKS[task].resumes:
        return ""
    saved = newest_saved(run_dir, TASKS[task].saves)
    if saved is None:
        first = "free space and start" if free_space else "start"
        return f"; no checkpoint had been saved, so nothing to resume: {first} again in a new run"
    when = time.strftime("%H:%M:%S", time.localtime(saved.stat().st_mtime))
    then = "free space, then resume" if free_space else "resume"
    return f"; {saved} (saved at {when}) survives; {then} with: {resume_command(run_dir)}"


def run_of(ckpt: Path) -> Path:
    """The run directory a checkpoint belongs to: the app's current run, else (a task called
    from Python) the directory holding ``checkpoints/``."""
    from enas_lightning import rundir

    current = rundir.current()
    return current[0] if current is not None else ckpt.parent.parent


def interrupted_message(ckpt: Path) -> str:
    return f"interrupted; checkpoint saved; resume with: {resume_command(run_of(ckpt))}"


class SaveOnInterrupt(pl.Callback):
    """Save ``dirpath/last.ckpt`` when SIGTERM or SIGINT stops ``fit`` (see the module doc).

    After ``fit`` raised, :attr:`saved` is the checkpoint written (``None`` if none was).
    """

    def __init__(self, dirpath: str | os.PathLike) -> None:
        self.dirpath = Path(dirpath)
        self.saved: Path | None = None
        self._trainer: pl.Trainer | None = None
        self._previous_sigint: Any = None

    # SIGINT becomes Lightning's "stop at the next batch boundary"; a second Ctrl+C hard-stops
    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        trainer = self._trainer
        if trainer is None or trainer.received_sigterm:
            raise KeyboardInterrupt
        log.info("SIGINT: stopping after this step (press Ctrl+C again to stop at once)")
        trainer._signal_connector.received_sigterm = True

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._trainer = trainer
        try:
            self._previous_sigint = signal.signal(signal.SIGINT, self._on_sigint)
        except ValueError:  # not the main thread: leave SIGINT alone
            self._previous_sigint = None

    def _restore_sigint(self) -> None:
        if self._previous_sigint is not None:
            try:
                signal.signal(signal.SIGINT, self._previous_sigint)
            except ValueError:
                pass
            self._previous_sigint = None
        self._trainer = None

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore_sigint()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self._restore_sigint()
        # only at a batch boundary is the state consistent: a KeyboardInterrupt (a second Ctrl+C)
        # may land inside an optimiser step, so it keeps the previous last.ckpt instead
        if not isinstance(exception, SIGTERMException):
            return
        path = self.dirpath / LAST
        # every rank takes part (strategies may gather state); rank 0 writes
        trainer.save_checkpoint(path)
        self.saved = path


def fit(
    trainer: pl.Trainer,
    module: pl.LightningModule,
    ckpt_path: str | None,
    interrupt: SaveOnInterrupt,
) -> None:
    """``trainer.fit`` that turns a saved interruption into one resume line (:class:`Interrupted`)
    and a DDP rank's death into one line too (:func:`enas_lightning.ranks.after_exception`).

    ``interrupt`` must be among the trainer's callbacks.
    """
    from enas_lightning.ranks import after_exception

    try:
        trainer.fit(module, ckpt_path=ckpt_path)
    except SIGTERMException:
        if interrupt.saved is None:
            raise
        if not trainer.is_global_zero:
            # every rank stopped and took part in the save; rank 0 tells the user, once
            raise SystemExit(Interrupted.exit_code) from None
        raise Interrupted(interrupted_message(interrupt.saved)) from None
    except Exception as e:
        after_exception(e, trainer)  # raises RankDied when a rank's death caused e
        raise


def last_checkpoint(dirpath: str | os.PathLike) -> ModelCheckpoint:
    """``dirpath/last.ckpt``, rewritten at the end of every training epoch.

    A top-1 checkpoint named ``last`` without a monitor (the newest is the best) rather than
    ``save_last=True``: Lightning 2.6 writes ``save_last`` only when a top-k checkpoint was saved
    in the same step, so with nothing monitored it appeared only when training ended. No version
    counter: a resumed run keeps writing ``last.ckpt`` instead of starting ``last-v1.ckpt``.
    """
    return ModelCheckpoint(
        dirpath=dirpath,
        filename=LAST.removesuffix(".ckpt"),
        monitor=None,
        save_top_k=1,
        every_n_epochs=1,
        save_on_train_epoch_end=True,
        enable_version_counter=False,
    )


def space_fingerprint(cfg: Config) -> dict[str, Any]:
    """The settings a checkpoint's weights depend on; resuming under others is refused.

    Args:
        cfg: the run's config (its ``search_space`` and ``controller`` parts and the
            ``search`` settings that change the supernet or its training are read).

    Returns:
        ``{"search_space.<key>" | "controller.<key>" | "search.<key>": value}``: plain values
        (``str``, ``int``, ``float``, ``bool``, ``list[str]``), saved as
        ``checkpoint["enas"]["fingerprint"]`` by the search module.
    """
    from enas_lightning.spaces import get_space

    s = cfg.search_space
    return {
        "search_space.name": s.name,
        "search_space.layers": s.layers,
        "search_space.channels": s.channels,
        "search_space.ops": list(s.ops),
        "search_space.aux_weight>0": s.aux_weight > 0,
        # the space's own settings (e.g. nodes per cell); a key a checkpoint has and this
        # space lacks compares as None, so checkpoints that stored None for it still load
        **get_space(s.name).fingerprint(s),
        "controller.lstm_size": cfg.controller.lstm_size,
        "controller.lstm_layers": cfg.controller.lstm_layers,
        # the levers against the collapse (issue 20): a run continues under the ones it started
        # with (checkpoints from before them do not record them and still load)
        "search.param_free_dropout": float(cfg.search.param_free_dropout),
        "search.bn_affine": cfg.search.bn_affine,
        "search.init": cfg.search.init,
        "search.optim.dense_weight_decay": cfg.search.optim.dense_weight_decay,
        "search.uniform_children": cfg.search.uniform_children,
        "search.param_free_adjust": cfg.search.param_free_adjust,
        # the derivation's per-candidate fine-tuning leaves the weights alone, but a resumed
        # search derives under the setting it started with (task=fidelity, which rescores a
        # finished search, leaves these out: DERIVATION_KEYS)
        "search.derive_finetune_steps": cfg.search.derive_finetune_steps,
        "search.derive_finetune_lr": float(cfg.search.derive_finetune_lr),
        "search.derive_uniform_steps": cfg.search.derive_uniform_steps,
        "search.derive_uniform_lr": float(cfg.search.derive_uniform_lr),
        "search.derive_prune_keep": cfg.search.derive_prune_keep,
        "search.derive_prune_steps": cfg.search.derive_prune_steps,
        "search.derive_prune_lr": float(cfg.search.derive_prune_lr),
        # a cost-aware search continues under the reward it started with (other rewards record
        # nothing here: their checkpoints stay as they were)
        **reward_fingerprint(cfg),
    }


def reward_fingerprint(cfg: Config) -> dict[str, Any]:
    """``reward=cost_aware``'s settings, which the controller's training depends on; empty for
    the other rewards."""
    r = cfg.reward
    if r.name != "cost_aware":
        return {}
    return {
        "reward.name": r.name,
        "reward.cost": r.cost,
        "reward.target": float(r.target),
        "reward.w": float(r.w),
        "reward.w_below": None if r.w_below is None else float(r.w_below),
        "reward.constraint": r.constraint,
        "reward.penalty": float(r.penalty),
    }


# fingerprint keys that only change how candidates are scored, not the weights
DERIVATION_KEYS = (
    "search.derive_finetune_steps",
    "search.derive_finetune_lr",
    "search.derive_uniform_steps",
    "search.derive_uniform_lr",
    "search.derive_prune_keep",
    "search.derive_prune_steps",
    "search.derive_prune_lr",
)


def check_fingerprint(
    checkpoint: dict[str, Any], cfg: Config, ignore: tuple[str, ...] = ()
) -> None:
    """Refuse a checkpoint whose weights were made under other search settings.

    Args:
        checkpoint: a loaded Lightning checkpoint (``torch.load``'s dict); an enas_lightning
            search checkpoint has ``checkpoint["enas"]["fingerprint"]``
            (:func:`space_fingerprint`'s dict at save time).
        cfg: the config of the run that wants to use it.
        ignore: fingerprint keys not compared (task=fidelity: :data:`DERIVATION_KEYS`).

    Raises:
        CheckpointError: not a search checkpoint, or one of its fingerprint's settings differs
            from ``cfg``'s (settings the checkpoint does not record are not compared).
    """
    state = checkpoint.get("enas")
    if not isinstance(state, dict) or "fingerprint" not in state:
        raise CheckpointError("ckpt_path: not an enas_lightning search checkpoint")
    mine = space_fingerprint(cfg)
    for key, value in state["fingerprint"].items():
        if key not in ignore and mine.get(key) != value:
            raise CheckpointError(
                f"ckpt_path: the checkpoint was made with {key}={value!r} but this run has "
                f"{key}={mine.get(key)!r}; use the same setting or start a new run"
            )

"""The Hydra application: ``python -m enas_lightning [group=option ...] [key=value ...]``.

``main(cfg)`` runs the task named by ``task`` (:data:`enas_lightning.tasks.TASKS`) and returns
the metric a sweeper optimises (the derived architecture's validation accuracy for search and
pipeline, test accuracy for final, Kendall's tau for fidelity). Whatever stops a run is one line
on stderr and a non-zero exit: a bad setting, a signal, a full disk (or any failed write: the
file, the space needed and left, what survives and how to resume), a DDP rank that died.
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from enas_lightning.config import register_configs
from enas_lightning.errors import ConfigError, ENASError, RankDied, WriteError, exit_with

log = logging.getLogger("enas_lightning")
CONF_DIR = Path(__file__).parent / "conf"
GROUPS = (
    "search_space",
    "controller",
    "dataset",
    "trainer",
    "logger",
    "experiment",
    "hparams_search",
)

register_configs()


def output_dir_of(cfg: DictConfig) -> Path:
    return Path(cfg.output_dir)


def check_multirun_ddp(cfg: DictConfig) -> None:
    """Lightning relaunches the script per rank for ``ddp``; under ``-m`` that cannot work."""
    try:
        mode = HydraConfig.get().mode.name
    except ValueError:
        return
    from lightning_fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    if SLURMEnvironment.detect() or TorchElasticEnvironment.detect():
        return  # hydra/launcher=slurm (or torchrun) started every rank: nothing is relaunched
    t = cfg.trainer
    if mode == "MULTIRUN" and t.devices * t.num_nodes > 1 and t.strategy != "ddp_spawn":
        raise ConfigError(
            "trainer.strategy",
            t.strategy,
            "ddp_spawn under Hydra multirun (-m) with several devices, or run each job without -m",
        )


def check_sweep_job(cfg: DictConfig) -> None:
    """A sweep job's directory holds only what Hydra just wrote (see enas_lightning.rundir)."""
    try:
        hc = HydraConfig.get()
    except ValueError:
        return
    if hc.mode.name == "MULTIRUN":
        from enas_lightning.rundir import check_job_dir

        check_job_dir(cfg, Path(hc.runtime.output_dir), hc.job.name)


def run(cfg: DictConfig) -> float | None:
    from enas_lightning import rundir
    from enas_lightning.build import validate
    from enas_lightning.tasks import get_task

    validate(cfg)
    check_multirun_ddp(cfg)
    check_sweep_job(cfg)
    out = output_dir_of(cfg)
    out.mkdir(parents=True, exist_ok=True)
    rundir.enter(out, cfg.task)
    return get_task(cfg.task).run(cfg, out)


def one_line(e: BaseException, cfg: DictConfig) -> ENASError | None:
    """The one-line error for ``e``, or ``None`` for a bug (which keeps its traceback).

    A failed write anywhere in the run (:func:`enas_lightning.files.write_error_of`) is told
    with what survives of the run and how to resume it; an error that a DDP rank's death caused
    becomes the line about that death (:func:`enas_lightning.ranks.after_exception`).
    """
    from enas_lightning.checkpointing import after_failure
    from enas_lightning.files import write_error_of
    from enas_lightning.ranks import after_exception

    try:
        after_exception(e)  # a DDP rank's death: RankDied (or SystemExit) instead of e
    except RankDied as died:
        return died
    if isinstance(e, ENASError) and not isinstance(e, WriteError):
        return e
    failure = write_error_of(e)
    if failure is not None and not failure.after:
        failure.after = after_failure(output_dir_of(cfg), cfg.task, free_space=True)
    return failure


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def hydra_main(cfg: DictConfig) -> float | None:
    try:
        return run(cfg)
    except Exception as e:
        line = one_line(e, cfg)
        if line is None:
            raise
        exit_with(line)
    finally:
        finish_trackers()


def finish_trackers() -> None:
    """Close the W&B run so that every multirun job is its own run."""
    if "wandb" in sys.modules:
        import wandb

        if wandb.run is not None:
            wandb.finish()


def group_options(group: str) -> list[str]:
    """A group's options: its files in ``conf/`` and its ConfigStore entries (another
    package's search space, stored by :func:`register_configs`)."""
    from hydra.core.config_store import ConfigStore

    register_configs()  # spaces registered since this module was imported
    try:
        stored = {Path(name).stem for name in ConfigStore.instance().list(group)}
    except OSError:  # no entries in this group
        stored = set()
    return sorted({p.stem for p in (CONF_DIR / group).glob("*.yaml")} | stored)


def precheck_groups(argv: list[str]) -> None:
    """Reject an unknown group option in one line before Hydra prints its search path."""
    for arg in argv:
        key, sep, value = arg.lstrip("+~").partition("=")
        key = key.removeprefix("override ").strip()
        if not sep or key not in GROUPS or value in ("null", ""):
            continue
        options = group_options(key)
        for choice in value.split(","):
            if choice not in options:
                print(
                    f"error: {key}={choice!r} is not allowed: one of {', '.join(options)}",
                    file=sys.stderr,
                )
                sys.exit(2)


def quiet_ddp_rank(argv: list[str]) -> None:
    """Keep a rank that Lightning relaunched from writing into rank 0's run directory.

    For ``ddp`` Lightning reruns this script per extra rank with rank 0's resolved
    ``hydra.run.dir``, ``hydra.job.name=train_ddp_process_<r>`` and ``hydra.output_subdir=null``
    (so no second directory and no second ``.hydra``); Hydra would still open
    ``train_ddp_process_<r>.log`` there, so such a rank logs to stdout instead.
    """
    relaunched = any(a.startswith("hydra.job.name=train_ddp_process_") for a in argv)
    if relaunched and not any(a.lstrip("+~").startswith("hydra/job_logging") for a in argv):
        argv.append("hydra/job_logging=stdout")


def main() -> None:
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
    quiet_ddp_rank(sys.argv)
    precheck_groups(sys.argv[1:])
    argv = sys.argv[1:]
    # check everything before hydra.main writes into the run directory (see precheck.py);
    # flags (-m, --help, --cfg, ...) are left to Hydra
    if not any(a.startswith("-") for a in argv):
        from enas_lightning.precheck import precheck

        try:
            precheck(argv)
        except ENASError as e:
            exit_with(e)
    hydra_main()

"""``task=fidelity``: how far a finished search's shared weights can be trusted.

K architectures are taken from the search's checkpoint, alternately from its trained controller
(even indices) and from a uniform controller (odd indices). Each is scored on the shared weights
(:meth:`SearchModule.accuracy`, the whole validation split, after ``search.derive_finetune_steps``
fine-tuning steps when that is set) and trained standalone for
``fidelity.epochs`` with the search run's final-training settings (:func:`train_final`, tested on
the test split), once per retrain seed (``fidelity.retrain_seeds``). Kendall's tau and
Spearman's rho between the score and the seed mean, with percentile bootstrap intervals, the
noise ceiling (the same correlations between two seeds' accuracies) and the top-1 regret go to
``fidelity.json``; one row per retrain (architecture and seed) to ``fidelity.csv`` (rewritten
after every retrain, so a rerun in the same directory keeps the finished ones); the scatter plot
to ``fidelity_scatter.png``. See ``docs/fidelity.md``.

This module checks the settings and runs the steps; the steps live in
:mod:`enas_lightning.fidelity` (the search run, the candidates, the rows, the summary).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from enas_lightning.errors import ConfigError
from enas_lightning.fidelity.candidates import sample_candidates
from enas_lightning.fidelity.rows import (
    CSV_NAME,
    SETTINGS_NAME,
    Rows,
    check_settings,
    row_settings,
)
from enas_lightning.fidelity.search_run import (
    SearchRun,
    fidelity_config,
    find_search_run,
    load_search_module,
    scoring_device,
)
from enas_lightning.fidelity.summary import per_arch, report, summarize, write_summary
from enas_lightning.spaces import get_space
from enas_lightning.tasks import Task, register_task


def retrain_seeds(f: DictConfig) -> list[int]:
    """The seeds every architecture is retrained with: ``fidelity.retrain_seeds`` as a list,
    or a count ``n``: ``fidelity.seed .. fidelity.seed + n - 1`` (1, the default: the one
    retrain with ``fidelity.seed``).

    Raises:
        ConfigError: not a count >= 1 nor a non-empty list of distinct integers.
    """
    value = f.retrain_seeds
    allowed = "a count >= 1 (seeds fidelity.seed, fidelity.seed+1, ...) or a list of distinct ints"
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise ConfigError("fidelity.retrain_seeds", value, allowed)
        return [f.seed + j for j in range(value)]
    if isinstance(value, ListConfig | list | tuple):
        seeds = list(value)
        ints = all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
        if seeds and ints and len(set(seeds)) == len(seeds):
            return seeds
        value = seeds
    raise ConfigError("fidelity.retrain_seeds", value, allowed)


def check_fidelity(cfg: DictConfig) -> None:
    """The ``fidelity.*`` settings that a type check cannot catch."""
    f = cfg.fidelity
    if f.num_archs < 2:
        raise ConfigError("fidelity.num_archs", f.num_archs, "at least 2 (a rank correlation)")
    if f.epochs < 1:
        raise ConfigError("fidelity.epochs", f.epochs, "at least 1")
    retrain_seeds(f)
    if f.bootstrap < 0:
        raise ConfigError("fidelity.bootstrap", f.bootstrap, "0 (no intervals) or more")
    if not 0 < f.confidence < 1:
        raise ConfigError("fidelity.confidence", f.confidence, "in (0, 1)")
    world = cfg.trainer.devices * cfg.trainer.num_nodes
    if world > 1:
        raise ConfigError(
            "trainer.devices",
            cfg.trainer.devices,
            "1 for task=fidelity (architectures are scored and trained one after another)",
        )


def prepare(
    cfg: DictConfig, overrides: list[str], output_dir: Path
) -> tuple[DictConfig, SearchRun]:
    """Every check that can fail on user input; returns the fidelity config and its run.

    Called by the precheck (before Hydra writes into the run directory) and by the task.
    """
    from enas_lightning.build import validate, validate_data
    from enas_lightning.data.cache import load_splits_cached

    check_fidelity(cfg)
    fcfg = fidelity_config(cfg, overrides, output_dir)
    found = find_search_run(cfg.fidelity.run)
    validate(fcfg)
    validate_data(fcfg, load_splits_cached(fcfg.dataset, holdout=False), "final")
    settings = output_dir / SETTINGS_NAME
    if settings.is_file():
        saved = json.loads(settings.read_text())
        check_settings(saved, row_settings(fcfg, found), output_dir, cfg.fidelity.run)
    return fcfg, found


# ----------------------------------------------------------------------------------------- task
def continue_command(output_dir: Path) -> str:
    """This command line, continued in ``output_dir`` (``resume=true``: see rundir.py)."""
    args = [a for a in sys.argv[1:] if not a.startswith(("hydra.run.dir=", "resume="))]
    return " ".join(
        ["python -m enas_lightning", *args, f"hydra.run.dir={output_dir}", "resume=true"]
    )


def run_fidelity(cfg: DictConfig, output_dir: Path, overrides: list[str] | None = None) -> float:
    """Score, retrain with every seed, correlate; returns Kendall's tau (for sweepers)."""
    from enas_lightning.build import build_controller
    from enas_lightning.checkpointing import Interrupted
    from enas_lightning.final.train import train_final

    if overrides is None:
        from hydra.core.hydra_config import HydraConfig

        try:
            overrides = list(HydraConfig.get().overrides.task)
        except ValueError:  # called outside a Hydra job
            overrides = []
    start = time.time()
    output_dir.mkdir(parents=True, exist_ok=True)
    fcfg, found = prepare(cfg, overrides, output_dir)
    # before the scoring; build_trainer sets it again for every retrain
    if fcfg.trainer.num_threads > 0:
        torch.set_num_threads(fcfg.trainer.num_threads)
    settings = output_dir / SETTINGS_NAME
    if not settings.is_file():
        settings.write_text(json.dumps(row_settings(fcfg, found), indent=2) + "\n")
    k = fcfg.fidelity.num_archs
    seeds = retrain_seeds(fcfg.fidelity)
    ops = tuple(fcfg.search_space.ops)
    space = get_space(fcfg.search_space.name)

    device = scoring_device(fcfg)
    module = load_search_module(fcfg, found, torch.device("cpu"))
    uniform = build_controller(OmegaConf.merge(fcfg, {"controller": {"name": "random"}}))
    candidates = sample_candidates(module.controller, uniform, k, fcfg.fidelity.seed)

    csv_path = output_dir / CSV_NAME
    table = Rows.resume(csv_path, candidates, ops, seeds, fcfg)
    done = table.done()
    if done:
        what = "architectures" if len(seeds) == 1 else "retrains (architecture and seed)"
        print(f"keeping {len(done)} finished {what} from {csv_path}", flush=True)

    # shared-weight scores of the architectures with no saved row (cheap next to training)
    module = module.to(device)
    module.data.to(device, channels_last=False)
    shared = {i: table.shared_acc(i) for i in range(k)}
    steps = fcfg.search.derive_finetune_steps
    if steps > 0 and any(v is None for v in shared.values()):
        print(
            f"shared-weight scores after {steps} fine-tuning steps per architecture "
            f"(search.derive_finetune_steps, lr {fcfg.search.derive_finetune_lr:g})",
            flush=True,
        )
    uniform_steps = fcfg.search.derive_uniform_steps
    if uniform_steps > 0 and any(v is None for v in shared.values()):
        print(
            f"shared-weight scores on a copy of the shared weights trained {uniform_steps} more "
            f"steps on uniform children (search.derive_uniform_steps, lr "
            f"{fcfg.search.derive_uniform_lr:g})",
            flush=True,
        )
    for i, (_, arch) in enumerate(candidates):
        if shared[i] is None:
            # keyed by the architecture's index: its fine-tuning does not depend on the others
            shared[i] = module.accuracy(arch, key=i)
    del module  # the supernet is not needed while architectures train

    # seed by seed: a run stopped after the first seed has the one-seed table complete
    for j, seed in enumerate(seeds):
        seed_cfg = OmegaConf.merge(fcfg, {"seed": seed})
        of_seeds = "" if len(seeds) == 1 else f", seed {seed} ({j + 1} of {len(seeds)})"
        for i, (source, arch) in enumerate(candidates):
            if (i, seed) in done:
                continue
            arch_dir = output_dir / "archs" / f"{i:03d}" / f"seed_{seed}"
            last = arch_dir / "checkpoints" / "last.ckpt"
            print(
                f"architecture {i + 1}/{k} ({source}){of_seeds}: shared-weight acc {shared[i]:.4f}",
                flush=True,
            )
            try:
                metrics = train_final(
                    seed_cfg,
                    arch,
                    arch_dir,
                    logger=False,
                    ckpt_path=str(last) if last.is_file() else None,
                    export=False,
                )
            except Interrupted:
                raise Interrupted(
                    f"interrupted during architecture {i + 1} of {k}{of_seeds}; "
                    f"{len(table.rows)} finished ones are saved in {csv_path}; continue with: "
                    f"{continue_command(output_dir)}"
                ) from None
            table.add(
                {
                    "index": i,
                    "source": source,
                    "arch": metrics["arch"],
                    "seed": seed,
                    "shared_acc": shared[i],
                    "standalone_acc": metrics["test_acc"],
                    "params": metrics["params"],
                    "param_free_share": space.param_free_share(arch),
                    "seconds": metrics["wall_time_s"],
                }
            )
            # the row is the result; the checkpoints only served a resume of this retrain
            shutil.rmtree(arch_dir / "checkpoints", ignore_errors=True)

    archs = per_arch(table.rows, seeds)
    summary = summarize(archs, seeds, fcfg)
    path = write_summary(
        output_dir,
        summary,
        fcfg,
        search_run=str(found.search_dir.resolve()),
        checkpoint=str(found.ckpt.resolve()),
        wall_time_s=time.time() - start,
    )
    report(output_dir, archs, summary, fcfg, files=(csv_path, path))
    return float(summary["kendall_tau"]["estimate"])


def check_fidelity_task(cfg: DictConfig, run_dir: Path, overrides: list[str]) -> None:
    prepare(cfg, overrides, run_dir)


register_task(
    Task(
        "fidelity",
        run=run_fidelity,
        check=check_fidelity_task,
        saves=(CSV_NAME, "archs/*/seed_*/checkpoints/last.ckpt"),
    )
)

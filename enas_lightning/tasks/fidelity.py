"""``task=fidelity``: how far a finished search's shared weights can be trusted.

K architectures are taken from the search's checkpoint, alternately from its trained controller
(even indices) and from a uniform controller (odd indices). Each is scored on the shared weights
(:meth:`SearchModule.accuracy`, the whole validation split) and trained standalone for
``fidelity.epochs`` with the search run's final-training settings (:func:`train_final`, tested on
the test split). Kendall's tau and Spearman's rho between the two, with percentile bootstrap
intervals, and the top-1 regret go to ``fidelity.json``; one row per architecture to
``fidelity.csv`` (rewritten after every architecture, so a rerun in the same directory keeps the
finished ones); the scatter plot to ``fidelity_scatter.png``. See ``docs/fidelity.md``.

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
from omegaconf import DictConfig, OmegaConf

from enas_lightning.errors import ConfigError
from enas_lightning.fidelity.candidates import sample_candidates
from enas_lightning.fidelity.rows import (
    CSV_NAME,
    SETTINGS_NAME,
    check_settings,
    format_table,
    kept_rows,
    row_settings,
    write_rows,
)
from enas_lightning.fidelity.search_run import (
    SearchRun,
    fidelity_config,
    find_search_run,
    load_search_module,
    scoring_device,
)
from enas_lightning.fidelity.summary import (
    JSON_NAME,
    PLOT_NAME,
    fmt_interval,
    log_summary,
    strict_json,
    summarize,
)


def check_fidelity(cfg: DictConfig) -> None:
    """The ``fidelity.*`` settings that a type check cannot catch."""
    f = cfg.fidelity
    if f.num_archs < 2:
        raise ConfigError("fidelity.num_archs", f.num_archs, "at least 2 (a rank correlation)")
    if f.epochs < 1:
        raise ConfigError("fidelity.epochs", f.epochs, "at least 1")
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
    """Score, retrain, correlate; returns Kendall's tau (for sweepers)."""
    from enas_lightning.build import build_controller
    from enas_lightning.checkpointing import Interrupted
    from enas_lightning.fidelity.plot import plot_fidelity
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
    if fcfg.trainer.num_threads > 0:
        torch.set_num_threads(fcfg.trainer.num_threads)
    settings = output_dir / SETTINGS_NAME
    if not settings.is_file():
        settings.write_text(json.dumps(row_settings(fcfg, found), indent=2) + "\n")
    k = fcfg.fidelity.num_archs
    ops = tuple(fcfg.search_space.ops)

    device = scoring_device(fcfg)
    module = load_search_module(fcfg, found, torch.device("cpu"))
    uniform = build_controller(OmegaConf.merge(fcfg, {"controller": {"name": "random"}}))
    candidates = sample_candidates(module.controller, uniform, k, fcfg.fidelity.seed)

    csv_path = output_dir / CSV_NAME
    rows, beyond = kept_rows(csv_path, candidates, ops, fcfg.fidelity.seed)
    done = {r["index"] for r in rows}
    if done:
        print(f"keeping {len(done)} finished architectures from {csv_path}", flush=True)

    # shared-weight scores of the architectures still to train (cheap next to training)
    module = module.to(device)
    module.data.to(device, channels_last=False)
    shared = {i: module.accuracy(arch) for i, (_, arch) in enumerate(candidates) if i not in done}
    del module  # the supernet is not needed while architectures train

    for i, (source, arch) in enumerate(candidates):
        if i in done:
            continue
        arch_dir = output_dir / "archs" / f"{i:03d}"
        last = arch_dir / "checkpoints" / "last.ckpt"
        print(f"architecture {i + 1}/{k} ({source}): shared-weight acc {shared[i]:.4f}", flush=True)
        try:
            metrics = train_final(
                fcfg,
                arch,
                arch_dir,
                logger=False,
                ckpt_path=str(last) if last.is_file() else None,
                export=False,
            )
        except Interrupted:
            raise Interrupted(
                f"interrupted during architecture {i + 1} of {k}; {len(rows)} finished ones are "
                f"saved in {csv_path}; continue with: {continue_command(output_dir)}"
            ) from None
        rows.append(
            {
                "index": i,
                "source": source,
                "arch": metrics["arch"],
                "shared_acc": shared[i],
                "standalone_acc": metrics["test_acc"],
                "params": metrics["params"],
                "seconds": metrics["wall_time_s"],
            }
        )
        rows.sort(key=lambda r: r["index"])
        write_rows(csv_path, rows + beyond)
        # the row is the result; the checkpoints only served a resume of this architecture
        shutil.rmtree(arch_dir / "checkpoints", ignore_errors=True)

    summary = summarize(rows, fcfg)
    summary["search_run"] = str(found.search_dir.resolve())
    summary["checkpoint"] = str(found.ckpt.resolve())
    summary["wall_time_s"] = time.time() - start
    summary["config"] = OmegaConf.to_container(fcfg, resolve=True)
    (output_dir / JSON_NAME).write_text(json.dumps(strict_json(summary), indent=2) + "\n")
    conf = fcfg.fidelity.confidence
    tau_line = fmt_interval("Kendall tau", summary["kendall_tau"], conf)
    rho_line = fmt_interval("Spearman rho", summary["spearman_rho"], conf)
    png = plot_fidelity(
        [r["shared_acc"] for r in rows],
        [r["standalone_acc"] for r in rows],
        [r["source"] for r in rows],
        output_dir / PLOT_NAME,
        title=f"{tau_line}\n{rho_line}",
    )
    log_summary(fcfg, output_dir, summary, png)
    print(format_table(rows))
    print(tau_line)
    print(rho_line)
    print(
        f"top-1 regret {summary['top1_regret']:.4f} (best standalone acc "
        f"{summary['best_standalone_acc']:.4f}); {len(rows)} architectures, "
        f"{fcfg.fidelity.epochs} epochs each"
    )
    print(f"files: {csv_path}, {output_dir / JSON_NAME}, {png}", flush=True)
    return float(summary["kendall_tau"]["estimate"])

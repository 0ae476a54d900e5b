"""``task=search``: ENAS search, then derivation of the best architecture."""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path
from typing import Any

from enas_lightning.arch.io import save_arch
from enas_lightning.build import (
    build_logger,
    build_search_module,
    build_trainer,
    validate_data,
)
from enas_lightning.checkpointing import SaveOnInterrupt, fit, last_checkpoint
from enas_lightning.config import Config
from enas_lightning.data.cache import load_splits_cached
from enas_lightning.files import writing
from enas_lightning.search.artifacts import SearchArtifacts
from enas_lightning.search.debug import rank_state_dump
from enas_lightning.search.derivation import SHARED_WEIGHT_CAVEAT, Derivation, rank_key
from enas_lightning.search.progress import EpochLine
from enas_lightning.tasks import Task, register_task
from enas_lightning.tasks.common import check_search, resolve_ckpt, seed_everything

log = logging.getLogger(__name__)


def write_derivation(d: Derivation, output_dir: Path, ops: tuple[str, ...]) -> Path:
    """``best_arch.json`` and ``arch_candidates.csv`` in ``output_dir``.

    ``best_arch.json``: the derived architecture, its accuracy (``val_acc``), the greedy one's,
    the means of the controller's samples and of the uniform reference, and the caveat.
    ``arch_candidates.csv``: every scored architecture, best first, with its ``source``
    (``greedy``, ``controller`` or ``uniform``) and its standalone cost (``params``, ``madds``,
    ``latency_ms`` where a latency table is used); without a budget the derived one is the first
    row not from ``uniform``. Under another reward its score replaces the accuracy, named by its
    ``metric``. Under ``search.param_free_adjust`` the rows are ranked by the adjusted score, in
    a ``param_free_residual`` column after the score. Under ``search.derive_prune_keep`` a
    ``pruned_<metric>`` column holds the kept candidates' scores on the pruned copy, and they
    come first, ranked by it (the derived one first).
    """
    path = output_dir / "best_arch.json"
    save_arch(d.best, path, ops, **d.summary(), note=SHARED_WEIGHT_CAVEAT)
    rows = list(zip(d.rows(), d.cost_rows(), strict=True))
    columns = list(
        dict.fromkeys(k for _, cost in rows for k in cost)
    )  # params, madds[, latency_ms]
    adjusted = d.param_free_line is not None
    # row i < len(candidates) is candidate i (Derivation.rows); the rest are uniform
    second = [d.pruned_score(i) if i < len(d.candidates) else None for i in range(len(rows))]
    with writing(output_dir / "arch_candidates.csv") as f:
        w = csv.writer(f)
        residual = ["param_free_residual"] if adjusted else []
        pruned = [f"pruned_{d.metric}"] if d.pruned else []
        w.writerow(["rank", "source", "arc", d.metric, *residual, *pruned, *columns])
        # by what the derivation ranked: the kept ones by their second score first, then the
        # rest (stable: ties keep the source order)
        order = sorted(
            range(len(rows)),
            key=lambda i: (
                (0, *rank_key(second[i], i))
                if second[i] is not None
                else (1, *rank_key(d.residual(rows[i][0][1], rows[i][0][2]), i))
            ),
        )
        for r, i in enumerate(order):
            (source, arch, acc), cost = rows[i]
            values = [f"{cost[k]:.4f}" if k == "latency_ms" else str(int(cost[k])) for k in columns]
            score = [f"{acc:.6f}"] + ([f"{d.residual(arch, acc):.6f}"] if adjusted else [])
            if d.pruned:
                score.append("" if second[i] is None else f"{second[i]:.6f}")
            w.writerow([r + 1, source, " ".join(map(str, arch.to_ints(ops))), *score, *values])
    return path


def derive_where_searched(trainer: Any, module: Any) -> Derivation:
    """``module.derive()`` on the device the search ran on.

    Lightning's teardown at the end of ``fit`` moves the module to the CPU (every strategy
    does), and the derivation scores ``2K + 1`` children on the whole validation split: after
    a search on an H200 that ran on its host's CPU at 20 s a child, about 70 minutes for the
    micro preset's 201 (``bench/RESULTS.md``, first GPU session). Under DDP with NCCL the
    scores' all-reduce needs them on the GPU as well. So the module goes back first.
    """
    module.to(trainer.strategy.root_device)
    return module.derive()


def run_search(
    cfg: Config, output_dir: Path, extra_callbacks: tuple[Any, ...] = ()
) -> tuple[float, Any, Path]:
    """Search and derive.

    Returns the best derived architecture's validation accuracy, the architecture record (the
    same on every rank) and the path of ``best_arch.json`` (written by rank 0).
    """
    start = time.time()
    output_dir.mkdir(parents=True, exist_ok=True)
    ckpt = resolve_ckpt(cfg, output_dir)
    seed_everything(cfg.seed)
    splits = load_splits_cached(cfg.dataset, holdout=True)
    validate_data(cfg, splits, "search")
    module = build_search_module(cfg, splits)
    interrupt = SaveOnInterrupt(output_dir / "checkpoints")
    callbacks = [
        SearchArtifacts(
            output_dir,
            pictures=cfg.logger.log_pictures,
            plot_every=cfg.logger.plot_every_n_epochs,
        ),
        EpochLine(),
        last_checkpoint(output_dir / "checkpoints"),
        interrupt,
        *extra_callbacks,
    ]
    from enas_lightning.tracking import search_callbacks

    callbacks += search_callbacks(cfg)
    dump = rank_state_dump()  # debugging aid for DDP (search/debug.py); None unless asked
    if dump is not None:
        callbacks.append(dump)
    logger = build_logger(cfg, output_dir)
    trainer = build_trainer(cfg, "search", output_dir, cfg.search.epochs, callbacks, logger)
    fit(trainer, module, ckpt, interrupt)
    derivation = derive_where_searched(trainer, module)
    if dump is not None:
        dump.save(trainer, module, derivation)
    ops = tuple(cfg.search_space.ops)
    path = output_dir / "best_arch.json"
    if trainer.is_global_zero:
        path = write_derivation(derivation, output_dir, ops)
        from enas_lightning.tracking import log_derivation

        cost = cfg.reward.cost if cfg.reward.name == "cost_aware" else "params"
        log_derivation(logger, derivation, path, output_dir, ops, cost=cost)
        lines = [
            f"search finished in {time.time() - start:.0f} s; derivation on "
            f"{len(splits.val_y)} validation images:",
            *derivation.report(),
            f"best architecture: {path}",
            str(derivation.best),
        ]
        print("\n".join(lines), flush=True)
    return derivation.best_acc, derivation.best, path


register_task(Task("search", run=lambda cfg, out: run_search(cfg, out)[0], check=check_search))

"""``task=fidelity``: how far a finished search's shared weights can be trusted.

K architectures are taken from the search's checkpoint, alternately from its trained controller
(even indices) and from a uniform controller (odd indices). Each is scored on the shared weights
(:meth:`SearchModule.accuracy`, the whole validation split) and trained standalone for
``fidelity.epochs`` with the search run's final-training settings (:func:`train_final`, tested on
the test split). Kendall's tau and Spearman's rho between the two, with percentile bootstrap
intervals, and the top-1 regret go to ``fidelity.json``; one row per architecture to
``fidelity.csv`` (rewritten after every architecture, so a rerun in the same directory keeps the
finished ones); the scatter plot to ``fidelity_scatter.png``. See ``docs/fidelity.md``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from enas_lightning.controller import Controller
from enas_lightning.errors import ConfigError, ENASError
from enas_lightning.spaces import ArchRecord, get_space
from enas_lightning.tasks import Task, register_task

log = logging.getLogger(__name__)

CSV_NAME = "fidelity.csv"
JSON_NAME = "fidelity.json"
PLOT_NAME = "fidelity_scatter.png"
SETTINGS_NAME = "fidelity_settings.json"
COLUMNS = ["index", "source", "arch", "shared_acc", "standalone_acc", "params", "seconds"]
SOURCES = ("controller", "uniform")  # index i is sampled from SOURCES[i % 2]
# command-line keys taken from the fidelity command rather than from the search run's config:
# the final-training settings, and where the data lives (not which data it is)
OVERRIDABLE = ("final.", "dataset.data_dir", "dataset.download")
MAX_DRAWS = 100  # tries per index for an architecture not drawn before


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

    ``final.*`` (and ``dataset.data_dir``/``dataset.download``) given on this command line
    replace the search run's values; ``final.epochs`` is ``fidelity.epochs``, ``seed`` is
    ``fidelity.seed``, and where the space's architectures fix the network's depth, the
    network is as deep as the searched architectures.
    """
    from enas_lightning.config import Config

    found = find_search_run(cfg.fidelity.run)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(Config), OmegaConf.load(found.config_file))
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


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _flat(prefix: str, node: Any) -> dict[str, Any]:
    """``{"final.optim.lr_max": 0.05, ...}`` of a config node."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        if isinstance(value, dict):
            out.update(_flat(f"{prefix}.{key}", value))
        else:
            out[f"{prefix}.{key}"] = value
    return out


def row_settings(fcfg: DictConfig, found: SearchRun) -> dict[str, Any]:
    """Every setting a saved row depends on (``fidelity.num_archs`` only adds rows)."""
    dataset = OmegaConf.to_container(fcfg.dataset, resolve=True)
    for key in ("data_dir", "download"):
        dataset.pop(key)
    return {
        "fidelity.run": _sha256(found.ckpt),  # the same shared weights and controller
        "fidelity.seed": fcfg.fidelity.seed,
        "fidelity.epochs": fcfg.fidelity.epochs,
        "search.eval_batch_size": fcfg.search.eval_batch_size,  # batch-statistics BN
        "trainer.precision": str(fcfg.trainer.precision),
        **_flat("final", OmegaConf.to_container(fcfg.final, resolve=True)),
        **_flat("dataset", dataset),
    }


def check_settings(
    saved: dict[str, Any], mine: dict[str, Any], output_dir: Path, run: str | None
) -> None:
    """Refuse to add rows to ``output_dir`` made under other settings (one line)."""
    for key in sorted(set(saved) | set(mine)):
        if saved.get(key) != mine.get(key):
            if key == "fidelity.run":
                what = "from another search checkpoint"
            else:
                what = f"with {key}={saved.get(key)!r} (this run: {mine.get(key)!r})"
            raise ConfigError(
                key,
                mine.get(key) if key != "fidelity.run" else run,
                f"the rows saved in {output_dir} were made {what}; use the same settings or "
                "another hydra.run.dir",
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


# ------------------------------------------------------------------------------------- sampling
def sample_candidates(
    trained: Controller, uniform: Controller, k: int, seed: int
) -> list[tuple[str, ArchRecord]]:
    """``k`` distinct architectures: ``(source, arch)``, source ``controller`` at even indices.

    Index ``i`` depends only on ``(seed, i)`` and the architectures before it, so the first
    ``k`` of a run with more are the same (a rerun with a larger ``fidelity.num_archs`` adds to
    the saved rows). A controller that keeps drawing architectures already taken gets
    ``MAX_DRAWS`` tries, then the repeat is kept (and a warning logged).
    """
    from enas_lightning.seeding import step_seed

    ops = tuple(trained.ops)
    taken: set[tuple[int, ...]] = set()
    out: list[tuple[str, ArchRecord]] = []
    for i in range(k):
        source = SOURCES[i % 2]
        controller = trained if source == "controller" else uniform
        for draw in range(MAX_DRAWS):
            g = torch.Generator().manual_seed(step_seed(seed, 7919, i, draw))
            arch = controller.sample_archs(1, g)[0]
            key = tuple(arch.to_ints(ops))
            if key not in taken:
                break
        else:
            log.warning(
                "architecture %d: the %s kept repeating earlier draws; kept a repeat", i, source
            )
        taken.add(key)
        out.append((source, arch))
    return out


def load_search_module(fcfg: DictConfig, found: SearchRun, device: torch.device) -> Any:
    """The search's :class:`SearchModule` with the checkpoint's shared weights and controller."""
    from enas_lightning.build import build_controller, build_supernet
    from enas_lightning.checkpointing import check_fingerprint
    from enas_lightning.data.cache import load_splits_cached
    from enas_lightning.data.device import DeviceSplits
    from enas_lightning.errors import CheckpointError
    from enas_lightning.search.module import SearchModule

    splits = load_splits_cached(fcfg.dataset, holdout=True)
    d = fcfg.dataset
    data = DeviceSplits(splits, pad=d.pad, flip=d.flip, cutout=d.cutout)
    module = SearchModule(build_supernet(fcfg, splits), build_controller(fcfg), data, fcfg)
    state = torch.load(found.ckpt, map_location="cpu", weights_only=False)
    check_fingerprint(state, fcfg)
    try:
        module.load_state_dict(state["state_dict"])
    except RuntimeError as e:
        raise CheckpointError(
            f"fidelity.run: {found.ckpt} does not fit the run's config ({str(e).splitlines()[0]})"
        ) from None
    module.eval()
    return module.to(device)


def scoring_device(fcfg: DictConfig) -> torch.device:
    accel = fcfg.trainer.accelerator
    if accel in ("gpu", "cuda") or (accel == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", 0)
    return torch.device("cpu")


# ----------------------------------------------------------------------------------------- rows
def read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return [
            {
                **r,
                "index": int(r["index"]),
                "shared_acc": float(r["shared_acc"]),
                "standalone_acc": float(r["standalone_acc"]),
                "params": int(r["params"]),
                "seconds": float(r["seconds"]),
            }
            for r in csv.DictReader(f)
        ]


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """The whole table, atomically: a kill leaves the previous table or this one."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow(
                {
                    **r,
                    "shared_acc": f"{r['shared_acc']:.6f}",
                    "standalone_acc": f"{r['standalone_acc']:.6f}",
                    "seconds": f"{r['seconds']:.1f}",
                }
            )
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        f"{'#':>3}  {'source':<10}  {'shared':>6}  {'standalone':>10}  {'params':>9}  {'s':>6}  arch"
    ]
    for r in rows:
        lines.append(
            f"{r['index']:>3}  {r['source']:<10}  {r['shared_acc']:>6.4f}  {r['standalone_acc']:>10.4f}"
            f"  {r['params']:>9}  {r['seconds']:>6.1f}  {r['arch']}"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------- task
def continue_command(output_dir: Path) -> str:
    """This command line, continued in ``output_dir`` (``resume=true``: see rundir.py)."""
    args = [a for a in sys.argv[1:] if not a.startswith(("hydra.run.dir=", "resume="))]
    return " ".join(
        ["python -m enas_lightning", *args, f"hydra.run.dir={output_dir}", "resume=true"]
    )


def summarize(rows: list[dict[str, Any]], fcfg: DictConfig) -> dict[str, Any]:
    """Correlations with their bootstrap intervals, the top-1 regret and per-source means."""
    from enas_lightning.fidelity.stats import bootstrap, kendall_tau_b, spearman_rho, top1_regret

    f = fcfg.fidelity
    shared = [r["shared_acc"] for r in rows]
    standalone = [r["standalone_acc"] for r in rows]
    tau = bootstrap(kendall_tau_b, shared, standalone, f.bootstrap, f.confidence, f.seed)
    rho = bootstrap(spearman_rho, shared, standalone, f.bootstrap, f.confidence, f.seed)
    by_source = {}
    for source in SOURCES:
        mine = [r for r in rows if r["source"] == source]
        if mine:
            by_source[source] = {
                "n": len(mine),
                "mean_shared_acc": sum(r["shared_acc"] for r in mine) / len(mine),
                "mean_standalone_acc": sum(r["standalone_acc"] for r in mine) / len(mine),
            }
    return {
        "num_archs": len(rows),
        "kendall_tau": tau.to_dict(),
        "spearman_rho": rho.to_dict(),
        "top1_regret": top1_regret(shared, standalone),
        "best_standalone_acc": max(standalone),
        "confidence": f.confidence,
        "bootstrap_samples": f.bootstrap,
        "by_source": by_source,
    }


def strict_json(value: Any) -> Any:
    """``nan`` (no correlation: a constant column) as ``null``, which every JSON reader takes."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(v) for v in value]
    return value


def _fmt_interval(name: str, d: dict[str, Any], confidence: float) -> str:
    lo, hi = d["ci"]
    return f"{name} {d['estimate']:+.3f} ({confidence:.0%} CI {lo:+.3f} .. {hi:+.3f})"


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
    saved = read_rows(csv_path)
    rows = [r for r in saved if r["index"] < k]
    beyond = [r for r in saved if r["index"] >= k]  # a smaller num_archs keeps them on file
    for r in rows:
        source, arch = candidates[r["index"]]
        if r["arch"] != " ".join(map(str, arch.to_ints(ops))) or r["source"] != source:
            raise ConfigError(
                "fidelity.seed",
                fcfg.fidelity.seed,
                f"the same architectures as the rows saved in {csv_path} (row {r['index']} "
                "differs); use another hydra.run.dir",
            )
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
    tau_line = _fmt_interval("Kendall tau", summary["kendall_tau"], conf)
    rho_line = _fmt_interval("Spearman rho", summary["spearman_rho"], conf)
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


def log_summary(fcfg: DictConfig, output_dir: Path, summary: dict[str, Any], png: Path) -> None:
    """The correlations and the scatter plot to the configured logger (PNG as an image)."""
    from enas_lightning.build import build_logger
    from enas_lightning.tracking import log_image

    logger = build_logger(fcfg, output_dir)
    if not logger:
        return
    metrics = {
        "fidelity/kendall_tau": summary["kendall_tau"]["estimate"],
        "fidelity/spearman_rho": summary["spearman_rho"]["estimate"],
        "fidelity/top1_regret": summary["top1_regret"],
        "fidelity/num_archs": float(summary["num_archs"]),
    }
    try:
        logger.log_metrics(metrics, step=0)
        log_image(logger, "fidelity/scatter", png, 0)
        logger.save()
    except ENASError:
        raise
    except Exception as e:  # a tracker failure must not cost the measured table
        log.warning("logging the fidelity summary failed: %s", e)


def check_fidelity_task(cfg: DictConfig, run_dir: Path, overrides: list[str]) -> None:
    prepare(cfg, overrides, run_dir)


register_task(
    Task(
        "fidelity",
        run=run_fidelity,
        check=check_fidelity_task,
        saves=(CSV_NAME, "archs/*/checkpoints/last.ckpt"),
    )
)

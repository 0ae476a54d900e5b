"""The fidelity run's result: correlations with intervals, the noise ceiling, the regret, the
JSON, the printed lines and the logged metrics.

The ground truth of an architecture is the mean of its retrained accuracies over the retrain
seeds. With two or more seeds the **noise ceiling** is the rank correlation between two seeds'
retrained accuracies (the mean over every pair of seeds): how well one retraining ranks the
architectures as another does, which no shared-weight score can be expected to beat.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from enas_lightning.errors import ENASError
from enas_lightning.fidelity.candidates import SOURCES
from enas_lightning.fidelity.stats import (
    bootstrap,
    bootstrap_rows,
    kendall_tau_b,
    seed_pairs_mean,
    single_seed_mean,
    spearman_rho,
    spread,
    top1_regret,
)
from enas_lightning.files import optional, write_text

log = logging.getLogger(__name__)

JSON_NAME = "fidelity.json"
PLOT_NAME = "fidelity_scatter.png"
COST_PLOT_NAME = "fidelity_cost.png"  # retrained accuracy against parameters, with the front
STATISTICS = {"kendall_tau": kendall_tau_b, "spearman_rho": spearman_rho}


def per_arch(rows: list[dict[str, Any]], seeds: list[int]) -> list[dict[str, Any]]:
    """One record per architecture from its rows (one per seed), by index.

    ``standalone_accs`` are in the order of ``seeds``; ``standalone_acc`` is their mean,
    ``standalone_sd`` their standard deviation (``ddof=1``, ``nan`` for one seed); ``seconds``
    the time of all its retrains.

    Raises:
        ValueError: an architecture misses a seed's row (the table is unfinished).
    """
    by_index: dict[int, dict[int, dict[str, Any]]] = {}
    for r in rows:
        by_index.setdefault(r["index"], {})[r["seed"]] = r
    out = []
    for index in sorted(by_index):
        mine = by_index[index]
        missing = [s for s in seeds if s not in mine]
        if missing:
            raise ValueError(f"architecture {index} has no row for seeds {missing}")
        first = mine[seeds[0]]
        accs = [mine[s]["standalone_acc"] for s in seeds]
        out.append(
            {
                "index": index,
                "source": first["source"],
                "arch": first["arch"],
                "shared_acc": first["shared_acc"],
                "standalone_accs": accs,
                "standalone_acc": float(np.mean(accs)),
                "standalone_sd": float(np.std(accs, ddof=1)) if len(accs) > 1 else float("nan"),
                "params": first["params"],
                "param_free_share": first["param_free_share"],
                "seconds": sum(mine[s]["seconds"] for s in seeds),
            }
        )
    return out


def _intervals(
    of_table: Callable[[Callable, np.ndarray], float], table: np.ndarray, f: DictConfig
) -> dict[str, Any]:
    """``{"kendall_tau": ..., "spearman_rho": ...}``: ``of_table(statistic, table)`` with its
    bootstrap interval over the architectures (the rows of ``table``)."""
    return {
        name: bootstrap_rows(
            partial(of_table, stat), table, f.bootstrap, f.confidence, f.seed
        ).to_dict()
        for name, stat in STATISTICS.items()
    }


def summarize(archs: list[dict[str, Any]], seeds: list[int], fcfg: DictConfig) -> dict[str, Any]:
    """Correlations with their bootstrap intervals, the noise ceiling, the top-1 regret, the
    spread of the retrained accuracies and per-source means, of :func:`per_arch`'s records.

    Every interval resamples the same architectures (one seed, ``fidelity.seed``).
    """
    f = fcfg.fidelity
    shared = np.array([a["shared_acc"] for a in archs])
    accs = np.array([a["standalone_accs"] for a in archs])  # [K, S]
    truth = accs.mean(1)  # the seed mean
    tau = bootstrap(kendall_tau_b, shared, truth, f.bootstrap, f.confidence, f.seed)
    rho = bootstrap(spearman_rho, shared, truth, f.bootstrap, f.confidence, f.seed)
    between, within = spread(accs)
    by_source = {}
    for source in SOURCES:
        mine = [a for a in archs if a["source"] == source]
        if mine:
            shares = [a["param_free_share"] for a in mine if a["param_free_share"] is not None]
            by_source[source] = {
                "n": len(mine),
                "mean_shared_acc": sum(a["shared_acc"] for a in mine) / len(mine),
                "mean_standalone_acc": sum(a["standalone_acc"] for a in mine) / len(mine),
                "mean_param_free_share": float(np.mean(shares)) if shares else None,
            }
    summary: dict[str, Any] = {
        "num_archs": len(archs),
        "retrain_seeds": list(seeds),
        "kendall_tau": tau.to_dict(),  # shared-weight score vs the seed mean
        "spearman_rho": rho.to_dict(),
        "noise_ceiling": None,
        "shared_vs_single_seed": None,
        "top1_regret": top1_regret(shared, truth),
        "best_standalone_acc": float(truth.max()),
        "spread": {
            "between_archs_sd": between,
            "within_arch_seed_sd": within,
            "ratio": between / within if within > 0 else float("nan"),
        },
        "confidence": f.confidence,
        "bootstrap_samples": f.bootstrap,
        "by_source": by_source,
    }
    if len(seeds) > 1:
        pairs = len(seeds) * (len(seeds) - 1) // 2
        summary["noise_ceiling"] = {
            **_intervals(seed_pairs_mean, accs, f),
            "seed_pairs": pairs,
            "what": f"seed vs seed over the {len(archs)} architectures"
            + (" (one pair of seeds)" if pairs == 1 else f" (mean over the {pairs} seed pairs)"),
        }
        summary["shared_vs_single_seed"] = {
            **_intervals(single_seed_mean, np.column_stack([shared, accs]), f),
            "what": f"shared-weight score vs one seed's accuracies, the mean over the "
            f"{len(seeds)} seeds (like for like with the noise ceiling)",
        }
    return summary


def strict_json(value: Any) -> Any:
    """``nan`` (no correlation: a constant column) as ``null``, which every JSON reader takes."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(v) for v in value]
    return value


def fmt_interval(name: str, d: dict[str, Any], confidence: float) -> str:
    lo, hi = d["ci"]
    return f"{name} {d['estimate']:+.3f} ({confidence:.0%} CI {lo:+.3f} .. {hi:+.3f})"


def correlation_lines(summary: dict[str, Any]) -> list[str]:
    """The correlations with their intervals: shared vs the seed mean, and with several seeds
    the noise ceiling and shared vs one seed beside it."""
    conf = summary["confidence"]
    seeds = len(summary["retrain_seeds"])
    truth = "" if seeds == 1 else f" (shared vs the mean of {seeds} seeds)"
    lines = [
        fmt_interval("Kendall tau", summary["kendall_tau"], conf) + truth,
        fmt_interval("Spearman rho", summary["spearman_rho"], conf) + truth,
    ]
    ceiling = summary["noise_ceiling"]
    if ceiling is not None:
        pairs = ceiling["seed_pairs"]
        over = "" if pairs == 1 else f", mean over {pairs} seed pairs"
        single = summary["shared_vs_single_seed"]
        lines += [
            fmt_interval("noise ceiling: Kendall tau", ceiling["kendall_tau"], conf)
            + f" (seed vs seed{over})",
            fmt_interval("noise ceiling: Spearman rho", ceiling["spearman_rho"], conf),
            fmt_interval("shared vs one seed: Kendall tau", single["kendall_tau"], conf)
            + f" (mean over {seeds} seeds)",
            fmt_interval("shared vs one seed: Spearman rho", single["spearman_rho"], conf),
        ]
    return lines


def plot_title(summary: dict[str, Any]) -> str:
    """Tau and rho; with several seeds tau and the noise ceiling's tau."""
    conf = summary["confidence"]
    if summary["noise_ceiling"] is None:
        return "\n".join(correlation_lines(summary))
    return "\n".join(
        [
            fmt_interval("shared vs seed mean: Kendall tau", summary["kendall_tau"], conf),
            fmt_interval(
                "noise ceiling: Kendall tau", summary["noise_ceiling"]["kendall_tau"], conf
            ),
        ]
    )


def spread_line(summary: dict[str, Any]) -> str | None:
    """Architectures against seeds: the regime can rank only where the first is larger."""
    s = summary["spread"]
    if s["within_arch_seed_sd"] != s["within_arch_seed_sd"]:  # nan: one seed
        return None
    return (
        f"retrained accuracy spread: between architectures sd {s['between_archs_sd']:.4f} "
        f"(of the seed means), between seeds sd {s['within_arch_seed_sd']:.4f} (pooled); "
        f"ratio {s['ratio']:.2f}"
    )


def write_summary(
    output_dir: Path, summary: dict[str, Any], fcfg: DictConfig, **extra: Any
) -> Path:
    """``fidelity.json``: the summary, ``extra`` (the search run, the wall time) and the config."""
    path = output_dir / JSON_NAME
    d = {**summary, **extra, "config": OmegaConf.to_container(fcfg, resolve=True)}
    write_text(path, json.dumps(strict_json(d), indent=2) + "\n")
    return path


def report(
    output_dir: Path,
    archs: list[dict[str, Any]],
    summary: dict[str, Any],
    fcfg: DictConfig,
    files: tuple[Path, Path],
) -> Path | None:
    """Draw the scatter plot and the accuracy-cost plot (retrained accuracy against
    parameters, with the front), send the summary to the logger and print the result; the
    scatter plot's path (``None`` if it could not be written). ``archs``: :func:`per_arch`'s records; ``files``: the CSV and the JSON."""
    from enas_lightning.fidelity.plot import plot_fidelity
    from enas_lightning.fidelity.rows import format_table

    seeds = summary["retrain_seeds"]
    several = len(seeds) > 1
    png: Path | None = None
    # a plot that cannot be written is one warning: the measured table is what counts
    with optional(output_dir / PLOT_NAME):
        png = plot_fidelity(
            [a["shared_acc"] for a in archs],
            [a["standalone_acc"] for a in archs],
            [a["source"] for a in archs],
            output_dir / PLOT_NAME,
            title=plot_title(summary),
            ranges=[(min(a["standalone_accs"]), max(a["standalone_accs"])) for a in archs]
            if several
            else None,
        )
    cost_png: Path | None = None
    with optional(output_dir / COST_PLOT_NAME):
        from enas_lightning.viz.pareto import plot_front

        cost_png = plot_front(
            [a["params"] for a in archs],
            [a["standalone_acc"] for a in archs],
            [a["source"] for a in archs],
            output_dir / COST_PLOT_NAME,
            acc_label="standalone test accuracy" + (" (seed mean)" if several else ""),
            title="retrained accuracy against cost",
        )
    log_summary(fcfg, output_dir, summary, png, cost_png)
    print(format_table(archs))
    print("\n".join(correlation_lines(summary)))
    spread = spread_line(summary)
    if spread:
        print(spread)
    retrains = f" x {len(seeds)} seeds ({', '.join(map(str, seeds))})" if several else ""
    print(
        f"top-1 regret {summary['top1_regret']:.4f} (best standalone acc "
        f"{summary['best_standalone_acc']:.4f}); {len(archs)} architectures{retrains}, "
        f"{fcfg.fidelity.epochs} epochs each"
    )
    shown = (*files, png, cost_png)
    print(f"files: {', '.join(str(p) for p in shown if p is not None)}", flush=True)
    return png


def log_summary(
    fcfg: DictConfig,
    output_dir: Path,
    summary: dict[str, Any],
    png: Path | None,
    cost_png: Path | None = None,
) -> None:
    """The correlations and the plots to the configured logger (PNGs as images)."""
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
        "fidelity/retrain_seeds": float(len(summary["retrain_seeds"])),
    }
    if summary["noise_ceiling"] is not None:
        ceiling, single = summary["noise_ceiling"], summary["shared_vs_single_seed"]
        metrics |= {
            "fidelity/noise_ceiling_kendall_tau": ceiling["kendall_tau"]["estimate"],
            "fidelity/noise_ceiling_spearman_rho": ceiling["spearman_rho"]["estimate"],
            "fidelity/single_seed_kendall_tau": single["kendall_tau"]["estimate"],
            "fidelity/single_seed_spearman_rho": single["spearman_rho"]["estimate"],
            "fidelity/between_archs_sd": summary["spread"]["between_archs_sd"],
            "fidelity/within_arch_seed_sd": summary["spread"]["within_arch_seed_sd"],
        }
    try:
        logger.log_metrics(metrics, step=0)
        if png is not None:
            log_image(logger, "fidelity/scatter", png, 0)
        if cost_png is not None:
            log_image(logger, "fidelity/cost", cost_png, 0)
        logger.save()
    except ENASError:
        raise
    except Exception as e:  # a tracker failure must not cost the measured table
        log.warning("logging the fidelity summary failed: %s", e)

"""The fidelity run's result: correlations with intervals, the regret, the JSON and the logger."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from enas_lightning.errors import ENASError
from enas_lightning.fidelity.candidates import SOURCES

log = logging.getLogger(__name__)

JSON_NAME = "fidelity.json"
PLOT_NAME = "fidelity_scatter.png"


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


def fmt_interval(name: str, d: dict[str, Any], confidence: float) -> str:
    lo, hi = d["ci"]
    return f"{name} {d['estimate']:+.3f} ({confidence:.0%} CI {lo:+.3f} .. {hi:+.3f})"


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

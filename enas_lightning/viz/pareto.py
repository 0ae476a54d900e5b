"""The accuracy-cost plot: one point per architecture, coloured by where it was sampled, with
the front drawn (:func:`enas_lightning.search.front.pareto_front`).

Built on :class:`matplotlib.figure.Figure` with an Agg canvas, never pyplot (see
:mod:`enas_lightning.viz.controller_plots` for why).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from enas_lightning.search.front import pareto_front
from enas_lightning.viz.controller_plots import _save

STYLES = {
    "greedy": ("*", "tab:red"),
    "controller": ("o", "tab:blue"),
    "uniform": ("s", "tab:orange"),
    "derived": ("D", "black"),
}


def plot_front(
    costs: Sequence[float],
    accs: Sequence[float],
    sources: Sequence[str],
    path: str | os.PathLike,
    cost_label: str = "parameters",
    acc_label: str = "shared-weight validation accuracy",
    title: str = "",
    marks: Sequence[tuple[str, float, float]] = (),
    budget: float | None = None,
) -> Path:
    """Accuracy ``accs`` against cost ``costs`` per architecture (``sources[i]`` names its
    group), the front of all of them as a step line, ``marks`` (label, cost, accuracy) drawn on
    top (e.g. the derived architecture) and ``budget`` as a dashed vertical line; writes a PNG
    to ``path``."""
    fig = Figure(figsize=(6, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    for source in dict.fromkeys(sources):
        marker, colour = STYLES.get(source, ("^", "tab:gray"))
        mine = [i for i, s in enumerate(sources) if s == source]
        ax.scatter(
            [costs[i] for i in mine],
            [accs[i] for i in mine],
            marker=marker,
            c=colour,
            alpha=0.7,
            label=f"{source} ({len(mine)})",
        )
    front = pareto_front(costs, accs)
    if front:
        ax.step(
            [costs[i] for i in front],
            [accs[i] for i in front],
            where="post",
            color="black",
            alpha=0.6,
            label="front",
        )
    if budget is not None:
        ax.axvline(budget, color="tab:red", linestyle="--", alpha=0.7, label="budget")
    for label, cost, acc in marks:
        ax.scatter([cost], [acc], marker="D", facecolors="none", edgecolors="black", s=90)
        ax.annotate(label, (cost, acc), textcoords="offset points", xytext=(5, -10), fontsize=8)
    ax.set_xlabel(cost_label)
    ax.set_ylabel(acc_label)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)

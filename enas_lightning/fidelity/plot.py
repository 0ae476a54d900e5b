"""The fidelity scatter plot: shared-weight score against standalone accuracy.

Built on :class:`matplotlib.figure.Figure` with an Agg canvas, never pyplot (see
:mod:`enas_lightning.viz.controller_plots` for why).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

MARKERS = {"controller": ("o", "tab:blue"), "uniform": ("s", "tab:orange")}


def plot_fidelity(
    shared: Sequence[float],
    standalone: Sequence[float],
    sources: Sequence[str],
    path: str | os.PathLike,
    title: str = "",
    ranges: Sequence[tuple[float, float]] | None = None,
) -> Path:
    """One point per architecture, coloured by where it was sampled; writes a PNG to ``path``.

    ``shared``: validation accuracy on the shared weights; ``standalone``: test accuracy after
    standalone training (the mean over the retrain seeds); ``sources``: ``"controller"`` or
    ``"uniform"`` per architecture; ``ranges``: the lowest and highest accuracy over the seeds
    per architecture, drawn as vertical bars (``None``: one seed, no bars).
    """
    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    for source in dict.fromkeys(sources):
        marker, colour = MARKERS.get(source, ("^", "tab:gray"))
        mine = [i for i, src in enumerate(sources) if src == source]
        x, y = [shared[i] for i in mine], [standalone[i] for i in mine]
        if ranges is not None:
            below = [standalone[i] - ranges[i][0] for i in mine]
            above = [ranges[i][1] - standalone[i] for i in mine]
            ax.errorbar(x, y, yerr=[below, above], fmt="none", ecolor=colour, alpha=0.5)
        ax.scatter(x, y, marker=marker, c=colour, label=f"{source} ({len(mine)})", alpha=0.8)
    for i, (s, a) in enumerate(zip(shared, standalone, strict=True)):
        ax.annotate(str(i), (s, a), textcoords="offset points", xytext=(3, 3), fontsize=7)
    ax.set_xlabel("shared-weight validation accuracy")
    ax.set_ylabel("standalone test accuracy" + ("" if ranges is None else " (seed mean, range)"))
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(out, format="png", dpi=100)
    return out

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
) -> Path:
    """One point per architecture, coloured by where it was sampled; writes a PNG to ``path``.

    ``shared``: validation accuracy on the shared weights; ``standalone``: test accuracy after
    standalone training; ``sources``: ``"controller"`` or ``"uniform"`` per architecture.
    """
    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    for source in dict.fromkeys(sources):
        marker, colour = MARKERS.get(source, ("^", "tab:gray"))
        pts = [
            (s, a) for s, a, src in zip(shared, standalone, sources, strict=True) if src == source
        ]
        ax.scatter(
            [p[0] for p in pts],
            [p[1] for p in pts],
            marker=marker,
            c=colour,
            label=f"{source} ({len(pts)})",
            alpha=0.8,
        )
    for i, (s, a) in enumerate(zip(shared, standalone, strict=True)):
        ax.annotate(str(i), (s, a), textcoords="offset points", xytext=(3, 3), fontsize=7)
    ax.set_xlabel("shared-weight validation accuracy")
    ax.set_ylabel("standalone test accuracy")
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

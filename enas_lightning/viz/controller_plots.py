"""Plots of the controller's learning: op probabilities and scalar curves over epochs.

Figures are built with :class:`matplotlib.figure.Figure` and an Agg canvas, never through
``pyplot``: pyplot keeps global figure state (leaking memory over long runs) and picks an
interactive backend that can fail on headless machines.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def _epochs(history: list[dict[str, Any]]) -> list[int]:
    # fall back to the position when an entry has no "epoch" so partial histories still plot
    return [int(h.get("epoch", k)) for k, h in enumerate(history)]


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)  # attaches itself to fig: PNG output without touching pyplot's backend
    fig.savefig(out, format="png", dpi=100)
    return out


def _no_data(fig: Figure, title: str) -> None:
    ax = fig.add_subplot(1, 1, 1)
    ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    ax.set_title(title)


def plot_op_probs(
    history: list[dict[str, Any]],
    path: str | os.PathLike,
    op_names: Sequence[str] | None = None,
    title: str = "controller op probabilities",
    max_cols: int = 5,
) -> Path:
    """One small subplot per decision label, one line per op: its probability over epochs.

    ``history`` is a list over epochs of ``{"epoch": int, "op_probs": {label: [p_0, p_1, ...]}}``
    (labels such as ``"normal/node0/op1"`` or ``"layer3"``); ``op_names[k]`` names ``p_k``
    (``"op{k}"`` where missing). Labels appear in first-seen order; an epoch without a label
    leaves a gap. Writes a PNG to ``path`` and returns it.
    """
    labels: list[str] = []
    width = 0
    for h in history:
        for label, probs in h.get("op_probs", {}).items():
            if label not in labels:
                labels.append(label)
            width = max(width, len(probs))
    names = [
        op_names[k] if op_names is not None and k < len(op_names) else f"op{k}"
        for k in range(width)
    ]
    epochs = _epochs(history)
    if not labels:
        fig = Figure(figsize=(4, 3))
        _no_data(fig, title)
        return _save(fig, path)

    ncols = min(max_cols, len(labels))
    nrows = math.ceil(len(labels) / ncols)
    width, height = 2.6 * ncols, 2.0 * nrows + 1.1
    fig = Figure(figsize=(width, height))
    # Fixed margins (in inches) instead of layout="constrained": the constrained layout
    # solver took 60% of this plot's 4.6 s, and the search redraws it every epoch.
    fig.subplots_adjust(
        left=0.45 / width,
        right=1 - 0.1 / width,
        top=1 - 0.6 / height,
        bottom=0.95 / height,
        wspace=0.12,
        hspace=0.35,
    )
    axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False)
    handles = []
    for idx, label in enumerate(labels):
        ax = axes[idx // ncols][idx % ncols]
        for k, name in enumerate(names):
            ys = [
                (
                    h["op_probs"][label][k]
                    if label in h.get("op_probs", {}) and k < len(h["op_probs"][label])
                    else float("nan")
                )
                for h in history
            ]
            (line,) = ax.plot(epochs, ys, marker="." if len(epochs) < 30 else None, label=name)
            if idx == 0:
                handles.append(line)
        # y given: matplotlib then skips placing each title above its axes' tick labels,
        # which measured their bounding boxes and took 45% of the drawing time
        ax.set_title(label, fontsize=8, y=1.0, pad=3)
        ax.set_ylim(0.0, 1.0)
        ax.tick_params(labelsize=7)
        if idx + ncols >= len(labels):
            # bottom plot of its column: sharex hid its tick labels if the row below is partial
            ax.xaxis.set_tick_params(labelbottom=True)
            ax.set_xlabel("epoch", fontsize=8)
    for idx in range(len(labels), nrows * ncols):
        axes[idx // ncols][idx % ncols].set_axis_off()
    # shared by every subplot (sharex): whole epochs, not 0.2 steps on a short search
    axes[0][0].xaxis.set_major_locator(MaxNLocator(integer=True))
    # one legend for the whole grid: every subplot shares the same op colours
    fig.legend(
        handles,
        names,
        loc="lower center",
        bbox_to_anchor=(0.5, 0.05 / height),
        ncol=min(len(names), 6),
        fontsize=8,
        frameon=False,
    )
    fig.suptitle(title)
    return _save(fig, path)


def plot_curves(
    history: list[dict[str, Any]],
    keys: list[str],
    path: str | os.PathLike,
    title: str,
) -> Path:
    """Line plots of scalar series over epochs (e.g. ``entropy``, ``skip_rate``, ``reward``).

    One panel per key, stacked with a shared epoch axis, because the series live on different
    scales (entropy is tens of nats, reward a fraction); ``baseline`` shares ``reward``'s panel.
    Keys that no entry has are skipped; an entry missing a key leaves a gap in that line.
    Writes a PNG to ``path`` and returns it.
    """
    epochs = _epochs(history)
    present = [k for k in keys if any(k in h for h in history)]
    fig = Figure(figsize=(6, 4), layout="constrained")
    if not present:
        _no_data(fig, title)
        return _save(fig, path)
    panels = [[k] for k in present if not (k == "baseline" and "reward" in present)]
    for panel in panels:
        if panel == ["reward"] and "baseline" in present:
            panel.append("baseline")
    fig.set_size_inches(6, 1.2 + 1.8 * len(panels))
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, panel in zip(axes, panels, strict=True):
        for key in panel:
            ys = [float(h[key]) if h.get(key) is not None else float("nan") for h in history]
            ax.plot(epochs, ys, marker="." if len(epochs) < 30 else None, label=key)
        ax.set_ylabel(" / ".join(panel), fontsize=8)
        ax.grid(True, alpha=0.3)
        if len(panel) > 1:
            ax.legend(fontsize=8)
    axes[-1].set_xlabel("epoch")
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title)
    return _save(fig, path)

"""The controller plots' cost, and what ``logger.plot_every_n_epochs`` saves.

The search redraws ``plots/op_probs.png`` and ``plots/controller.png`` (matplotlib) after every
epoch by default. This times

- one drawing of each plot on a history of the tiny test search's shape (micro, 3 nodes: 12 op
  decisions, 2 epochs) and of the quickstart's (4 nodes: 16 decisions, 60 epochs, the last 30
  with the controller), the median of ``--repeats`` after one warm-up;
- the tiny 2-epoch search the tests run (``python -m enas_lightning`` in a subprocess, as
  ``tests/_cli.py`` starts it) with ``logger.plot_every_n_epochs=1`` (plots after both epochs)
  against ``1000`` (after the last only), interleaved A B B A over ``--rounds``.

    PYTHONPATH=. python bench/plots.py [--repeats 3] [--rounds 2] [--no-append]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_average, median_time, report, table  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests._cli import tiny  # noqa: E402

OPS = ["sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3", "identity"]
# the tests' tiny search (tests/_cli.py), less its plot cadence, which the bench sets itself
TINY = tiny(
    {"logger": "none", "trainer.enable_progress_bar": False, "search.epochs": 2},
    without=("logger.plot_every_n_epochs",),
)


def history(nodes: int, epochs: int, warmup: int) -> list[dict]:
    """A history.json of that shape: uniform op probabilities, scalar curves per epoch."""
    labels = [
        f"{c}/node{n}/op{o}" for c in ("normal", "reduce") for n in range(nodes) for o in (0, 1)
    ]
    out = []
    for e in range(epochs):
        h: dict = {"epoch": e, "baseline": 0.4, "lr": 0.05}
        if e >= warmup:
            h |= {"op_probs": {lb: [0.2] * len(OPS) for lb in labels}}
            h |= {"reward": 0.5, "entropy": 44.0, "skip_rate": 0.3}
        out.append(h)
    return out


def plot_seconds(hist: list[dict], repeats: int, out: Path) -> tuple[float, float]:
    from enas_lightning.viz import plot_curves, plot_op_probs

    op_probs = median_time(lambda: plot_op_probs(hist, out / "p.png", op_names=OPS), repeats)
    keys = ["reward", "baseline", "entropy", "skip_rate"]
    curves = median_time(lambda: plot_curves(hist, keys, out / "c.png", "controller"), repeats)
    return op_probs, curves


def tiny_search(every: int, out: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "enas_lightning", *TINY, f"logger.plot_every_n_epochs={every}"]
    start = time.perf_counter()
    subprocess.run([*cmd, f"hydra.run.dir={out}"], env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--no-append", action="store_true")
    a = p.parse_args()
    import torch

    torch.set_num_threads(1)
    before = load_average()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, hist in (
            ("tiny (12 decisions, 2 epochs)", history(3, 2, 0)),
            ("quickstart (16 decisions, 60 epochs)", history(4, 60, 30)),
        ):
            op_probs, curves = plot_seconds(hist, a.repeats, tmp)
            rows.append(
                [f"one drawing, {name}", f"{op_probs:.2f} s op_probs", f"{curves:.2f} s controller"]
            )
        walls: dict[int, list[float]] = {1: [], 1000: []}
        for r in range(a.rounds):
            for every in (1, 1000) if r % 2 == 0 else (1000, 1):
                walls[every].append(tiny_search(every, tmp / f"run_{r}_{every}"))
    w1, w1000 = (statistics.median(walls[k]) for k in (1, 1000))
    rows.append(
        [
            "tiny 2-epoch search, subprocess wall",
            f"{w1:.1f} s every epoch",
            f"{w1000:.1f} s last epoch only",
        ]
    )
    body = table(["measurement", "a", "b"], rows)
    notes = [
        f"The tiny search plotting once is {w1 - w1000:.1f} s ({(w1 - w1000) / w1:.0%}) faster."
    ]
    report(
        "Controller plots (CPU)",
        {"repeats": a.repeats, "rounds": a.rounds, "threads": 1},
        body,
        notes=notes,
        append=not a.no_append,
        load_before=before,
    )


if __name__ == "__main__":
    main()

"""``bench/plots.py`` draws both controller plots on histories of the shapes it names."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import plots  # noqa: E402


def test_plot_seconds_draws_both_plots_of_a_tiny_history(tmp_path) -> None:
    hist = plots.history(nodes=3, epochs=2, warmup=1)
    assert "op_probs" not in hist[0] and len(hist[1]["op_probs"]) == 12  # 2 cells x 3 nodes x 2
    op_probs, curves = plots.plot_seconds(hist, repeats=1, out=tmp_path)
    assert op_probs > 0 and curves > 0
    assert (tmp_path / "p.png").stat().st_size > 0 and (tmp_path / "c.png").stat().st_size > 0

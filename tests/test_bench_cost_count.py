"""``bench/cost_count.py`` times both ways of counting a candidate's cost and checks they agree."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import cost_count  # noqa: E402


def test_seconds_per_arch_counts_both_ways_to_the_same_numbers() -> None:
    from enas_lightning.config import register_configs

    register_configs()
    build_s, walk_s, cached_s, same = cost_count.seconds_per_arch(
        ["experiment=quickstart"], (1, 8, 8), 10, n=2
    )
    assert same and build_s > 0 and walk_s > 0 and cached_s > 0

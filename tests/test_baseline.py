"""The sequential moving-average baseline (``search/baseline.py``) against its definition."""

from __future__ import annotations

import pytest
import torch

from enas_lightning.search.baseline import sequential_baseline


def loop(rewards: list[float], b0: float, d: float) -> list[float]:
    """The reference code's update, one sampled child at a time: ``b -= (1 - d)(b - r)``."""
    out, b = [], b0
    for r in rewards:
        b -= (1 - d) * (b - r)
        out.append(b)
    return out


@pytest.mark.parametrize("d", [0.99, 0.9, 0.5, 0.0, 1.0])
@pytest.mark.parametrize("b0", [0.0, 0.37, -2.0])
def test_matches_the_one_by_one_update(d: float, b0: float) -> None:
    g = torch.Generator().manual_seed(0)
    rewards = torch.rand(20, generator=g, dtype=torch.float64)
    got = sequential_baseline(rewards, torch.tensor(b0, dtype=torch.float64), d)
    assert got.dtype == torch.float64 and got.shape == (20,)
    assert got.tolist() == pytest.approx(loop(rewards.tolist(), b0, d), abs=1e-12)


def test_closed_form_and_edge_cases() -> None:
    r = torch.tensor([1.0, 0.0, 0.5])
    # b_i = d^(i+1) b_0 + (1 - d) sum_{j<=i} d^(i-j) r_j with d = 0.5, b_0 = 2
    b = sequential_baseline(r, torch.tensor(2.0), 0.5)
    assert b.tolist() == pytest.approx([1.5, 0.75, 0.625])
    # d = 0: each baseline is the sample's own reward (advantage 0); d = 1: the baseline is frozen
    assert sequential_baseline(r, torch.tensor(2.0), 0.0).tolist() == r.tolist()
    assert sequential_baseline(r, torch.tensor(2.0), 1.0).tolist() == [2.0, 2.0, 2.0]
    # one sample: the old one-update rule
    assert sequential_baseline(r[:1], torch.tensor(0.25), 0.99).item() == pytest.approx(
        0.25 - 0.01 * (0.25 - 1.0)
    )
    assert sequential_baseline(r[:0], torch.tensor(0.25), 0.99).shape == (0,)


def test_order_matters_and_differs_from_the_mean_update() -> None:
    """The last sample weighs most; a single update with the mean reward is not the same."""
    up = sequential_baseline(torch.tensor([0.0, 1.0]), torch.tensor(0.0), 0.5)
    down = sequential_baseline(torch.tensor([1.0, 0.0]), torch.tensor(0.0), 0.5)
    assert up[-1].item() == pytest.approx(0.5) and down[-1].item() == pytest.approx(0.25)
    mean_update = 0.0 - 0.5 * (0.0 - 0.5)  # one step with the mean reward 0.5: 0.25
    assert up[-1].item() != pytest.approx(mean_update)


def test_float32_rewards_many_samples_stay_close_to_the_loop() -> None:
    """The authors' macro setting aggregates 20 children; 8 ranks make 160 in one update."""
    g = torch.Generator().manual_seed(1)
    rewards = torch.rand(160, generator=g)
    got = sequential_baseline(rewards, torch.tensor(0.3), 0.99)
    assert got.dtype == torch.float32
    assert got.tolist() == pytest.approx(loop(rewards.tolist(), 0.3, 0.99), abs=1e-5)

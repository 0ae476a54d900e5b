"""``search.param_free_adjust``: children compared only with children of like parameter-free
share. The linear baseline against a weighted least-squares fit by hand, a reward that pays only
for parameter-free ops teaching the controller nothing under the setting (and pools without it),
the derivation ranking by the residual, and the refusal on a space without shares."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from enas_lightning.build import validate
from enas_lightning.errors import ConfigError
from enas_lightning.search.baseline import MOMENTS, linear_baseline, sequential_baseline
from enas_lightning.search.derivation import Derivation
from enas_lightning.spaces import get_space
from enas_lightning.tasks.search import write_derivation
from tests.test_param_free import micro_arch
from tests.test_search import fit, make_module

OPS = ("sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3", "identity")


def weighted_line_at(x: np.ndarray, r: np.ndarray, decay: float, at: float) -> float:
    """The least-squares line of ``r`` on ``x`` with the moving average's weights
    ``(1 - d) d**(n - 1 - j)``, evaluated at ``at``, fitted by hand."""
    n = len(x)
    w = (1 - decay) * decay ** np.arange(n - 1, -1, -1, dtype=float)
    mx, mr = np.average(x, weights=w), np.average(r, weights=w)
    var = np.average((x - mx) ** 2, weights=w)
    slope = np.average((x - mx) * (r - mr), weights=w) / var if var > 1e-8 else 0.0
    return float(mr + slope * (at - mx))


def test_linear_baseline_is_the_weighted_least_squares_line_of_the_children_so_far() -> None:
    gen = torch.Generator().manual_seed(0)
    shares = torch.rand(12, generator=gen, dtype=torch.float64)
    rewards = 0.4 + 0.3 * shares + 0.05 * torch.randn(12, generator=gen, dtype=torch.float64)
    decay = 0.9
    # in two calls, as two controller steps: the second starts from the first's moments
    first, moments = linear_baseline(rewards[:5], shares[:5], torch.zeros(MOMENTS), decay)
    second, _ = linear_baseline(rewards[5:], shares[5:], moments, decay)
    got = torch.cat([first, second]).numpy()
    x, r = shares.numpy(), rewards.numpy()
    want = [weighted_line_at(x[: i + 1], r[: i + 1], decay, x[i]) for i in range(12)]
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    assert got[0] == pytest.approx(r[0])  # one child: no slope, its own reward


def test_a_reward_linear_in_the_share_leaves_no_advantage() -> None:
    shares = torch.tensor([0.2, 0.8, 0.5, 0.1, 0.9, 0.6])
    rewards = 0.3 + 0.5 * shares
    baselines, _ = linear_baseline(rewards, shares, torch.zeros(MOMENTS), 0.99)
    torch.testing.assert_close(baselines, rewards)
    # the plain baseline, by contrast, leaves the slope in the advantages
    plain = sequential_baseline(rewards, torch.zeros(()), 0.99)
    assert (rewards - plain).abs().max() > 0.1


def test_equal_shares_give_the_moving_average_and_decay_one_freezes_it_at_zero() -> None:
    shares = torch.full((4,), 0.5, dtype=torch.float64)
    rewards = torch.tensor([0.1, 0.4, 0.3, 0.9], dtype=torch.float64)
    got, _ = linear_baseline(rewards, shares, torch.zeros(MOMENTS), 0.5)
    x = shares.numpy()
    want = [weighted_line_at(x[: i + 1], rewards.numpy()[: i + 1], 0.5, 0.5) for i in range(4)]
    np.testing.assert_allclose(got.numpy(), want)
    frozen, moments = linear_baseline(rewards, shares, torch.zeros(MOMENTS), 1.0)
    assert torch.equal(frozen, torch.zeros(4, dtype=torch.float64))
    assert torch.equal(moments, torch.zeros(MOMENTS, dtype=torch.float64))


def param_free_probability(module) -> float:
    """The controller's mean probability of a parameter-free op over its op decisions."""
    sample = module.controller(64, generator=torch.Generator().manual_seed(1))
    pf = [i for i, name in enumerate(module.controller.ops) if name not in OPS[:2]]
    return float(sample.op_probs.mean(0)[..., pf].sum(-1).mean())


@pytest.mark.parametrize("adjust", [False, True])
def test_a_reward_for_parameter_free_ops_alone_teaches_only_the_plain_baseline(
    adjust: bool, make_cfg, tmp_path, monkeypatch
) -> None:
    """A reward that is the child's parameter-free share: the plain baseline moves the
    controller towards pools and identity; the adjusted one leaves no advantage to learn from
    (entropy bonus off: the reward is then exactly linear in the share)."""
    cfg = make_cfg(
        ["controller.entropy_weight=0", "controller.op_bias=false", "controller.lr=0.05"]
        + ["controller.train_steps=10"]
        + (["search.param_free_adjust=true"] if adjust else [])
    )
    module = make_module(cfg)
    share = get_space(cfg.search_space.name).param_free_share
    monkeypatch.setattr(
        module, "rewards", lambda archs, gen: torch.tensor([share(a) for a in archs])
    )
    before = {k: v.clone() for k, v in module.controller.state_dict().items()}
    p_before = param_free_probability(module)
    fit(module, cfg, tmp_path, epochs=2)
    after = module.controller.state_dict()
    moved = max(float((v - before[k]).abs().max()) for k, v in after.items())
    if adjust:
        # no advantage but float rounding: the controller stays where it was
        assert moved < 1e-6 and param_free_probability(module) == pytest.approx(p_before)
        assert float(module.baseline_moments[0]) > 0  # the moments did move
    else:
        assert moved > 1e-3 and param_free_probability(module) > p_before + 0.01
        assert "baseline_moments" not in module.state_dict()


def test_the_derivation_ranks_by_the_residual_of_the_candidates_line(tmp_path) -> None:
    """Scores rise with the share; the derived candidate is the one furthest above the line,
    not the best score, and the outputs say so."""
    convs = micro_arch([("sep_conv_3x3", "sep_conv_5x5")], [("sep_conv_5x5", "sep_conv_3x3")])
    half = micro_arch([("sep_conv_3x3", "identity")], [("avg_pool_3x3", "sep_conv_3x3")])
    pools = micro_arch([("avg_pool_3x3", "identity")], [("max_pool_3x3", "avg_pool_3x3")])
    above = micro_arch([("sep_conv_5x5", "max_pool_3x3")], [("sep_conv_3x3", "identity")])
    archs = [pools, convs, half, above]  # shares 1, 0, 0.5, 0.5
    scores = [0.9, 0.5, 0.7, 0.75]
    plain = Derivation(archs, scores, greedy_index=0)
    assert plain.best_index == 0 and plain.param_free_line is None
    d = Derivation(archs, scores, greedy_index=0, param_free_adjust=True)
    intercept, slope = d.param_free_line
    assert (intercept, slope) == pytest.approx(np.polyfit([1, 0, 0.5, 0.5], scores, 1)[::-1])
    assert d.best is above and d.best_acc == 0.75
    summary = d.summary()
    assert summary["param_free_adjust"] is True and summary["param_free_slope"] == slope
    assert "search.param_free_adjust" in "\n".join(d.report())
    assert "param_free_adjust" not in plain.summary()

    write_derivation(d, tmp_path, OPS)
    assert json.loads((tmp_path / "best_arch.json").read_text())["val_acc"] == 0.75
    with (tmp_path / "arch_candidates.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["val_acc"]) for r in rows] == [0.75, 0.9, 0.5, 0.7]
    residuals = [float(r["param_free_residual"]) for r in rows]
    assert residuals == sorted(residuals, reverse=True)
    assert residuals[0] == pytest.approx(0.75 - intercept - 0.5 * slope, abs=1e-6)


def test_a_space_without_shares_refuses_the_setting(make_cfg) -> None:
    from tests.toy_space import CHAIN  # noqa: F401 (registers the chain space)

    with pytest.raises(ConfigError, match="search.param_free_adjust=True is not allowed: false"):
        validate(make_cfg(["search_space=chain", "search.param_free_adjust=true"]))
    validate(make_cfg(["search.param_free_adjust=true"]))  # micro says which ops they are


def test_on_in_the_quickstart_and_off_in_the_paper_presets() -> None:
    """The quickstart compares children within their share (issue 20, nineteenth round); the
    paper presets keep the authors' one baseline."""
    from enas_lightning.precheck import compose

    assert compose(["experiment=quickstart"]).search.param_free_adjust is True
    for preset in ("micro_search", "macro_search"):
        assert compose([f"experiment={preset}"]).search.param_free_adjust is False, preset
    assert compose([]).search.param_free_adjust is False

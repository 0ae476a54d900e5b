"""The reward seam: one callable scores children in the controller phase and in the derivation.

``reward=accuracy`` is the paper's (its numbers are the search tests' and the seeded
quickstart's); ``reward=loss`` ranks by validation loss; a reward registered by a test is used
by both phases of a search run through the command line's code path (docs/new_reward.md).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from torch import nn
from torch.nn import functional as F

from enas_lightning.app import run
from enas_lightning.build import build_controller
from enas_lightning.data.datasets import load_splits
from enas_lightning.data.device import DeviceSplits
from enas_lightning.errors import ConfigError
from enas_lightning.rewards import REWARDS, Reward, get_reward, register_reward
from enas_lightning.search.module import SearchModule
from tests.conftest import compose_cfg


@pytest.fixture(autouse=True)
def _clear_hydra():
    yield
    GlobalHydra.instance().clear()


def test_rewards_are_registered_by_name(make_cfg) -> None:
    assert {"accuracy", "cost_aware", "loss"} <= set(REWARDS)  # the built-in ones
    assert make_cfg().reward.name == "accuracy"  # the default
    assert make_cfg(["reward=loss"]).reward.name == "loss"  # the config group
    with pytest.raises(
        ConfigError,
        match="reward.name='nope' is not allowed: one of (accuracy|loss|cost_aware)(, (accuracy|loss|cost_aware)){2}",
    ):
        get_reward("nope")


class ScaledSupernet(nn.Module):
    """A stand-in whose children share one linear classifier, each with its own logit scale:
    the same argmax (the same accuracy) for every child, but another cross-entropy."""

    def __init__(self, in_features: int, classes: int, ops: tuple[str, ...]) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(in_features, classes)
        self.ops = ops

    def scale(self, arch) -> float:
        return 0.5 + sum(arch.to_ints(self.ops)) % 7

    def forward(self, x, arch):
        return self.scale(arch) * self.fc(x.flatten(1))


def scaled_module(cfg) -> SearchModule:
    splits = load_splits(cfg.dataset, holdout=True)
    c, h, w = splits.image_shape
    data = DeviceSplits(splits, pad=cfg.dataset.pad, flip=cfg.dataset.flip)
    net = ScaledSupernet(c * h * w, splits.num_classes, tuple(cfg.search_space.ops))
    module = SearchModule(net, build_controller(cfg), data, cfg)
    module.val_shard = torch.arange(len(data.val_y))
    return module


def test_loss_reward_ranks_by_validation_loss(make_cfg) -> None:
    cfg = make_cfg(["reward=loss", "search.derive_samples=6", "search.eval_batch_size=50"])
    module = scaled_module(cfg)
    d = module.derive()
    assert d.metric == "val_neg_loss"
    data, net = module.data, module.supernet
    losses = [float(F.cross_entropy(net(data.val_x, a), data.val_y)) for a in d.candidates]
    assert len(set(losses)) > 1  # the candidates differ in loss ...
    accs = [module.accuracy(a) for a in d.candidates]
    assert len(set(accs)) == 1  # ... and not in accuracy: only the loss can rank them
    # the derivation's score is minus the mean validation loss; the lowest loss is derived
    assert d.accuracies == pytest.approx([-v for v in losses], rel=1e-5)
    assert d.best == d.candidates[losses.index(min(losses))]
    # the controller phase: minus the mean loss on each child's own validation minibatch
    archs = d.candidates[:3]
    rewards = module.rewards(archs, torch.Generator().manual_seed(5))
    gen, b = torch.Generator().manual_seed(5), cfg.search.batch_size
    for arch, r in zip(archs, rewards.tolist(), strict=True):
        x, y = data.val_batch(torch.randperm(len(data.val_y), generator=gen)[:b])
        assert r == pytest.approx(-float(F.cross_entropy(net(x, arch), y)), rel=1e-5)


def test_loss_reward_names_the_derivation_score_in_the_outputs(tmp_path: Path) -> None:
    run(compose_cfg(tmp_path, ["reward=loss", "search.epochs=1"]))
    saved = json.loads((tmp_path / "best_arch.json").read_text())
    assert "val_acc" not in saved and saved["val_neg_loss"] < 0
    assert {"greedy_val_neg_loss", "uniform_mean_val_neg_loss"} <= set(saved)
    with (tmp_path / "arch_candidates.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert float(rows[0]["val_neg_loss"]) == pytest.approx(saved["val_neg_loss"], abs=1e-6)


class SmallIsBetter(Reward):
    """A cost-aware toy: minus the standalone network's parameters (in thousands); remembers
    every score it gave and in which phase."""

    name = "small_is_better"
    metric = "val_small"

    def __init__(self) -> None:
        self.given: dict[str, set[float]] = {"controller": set(), "derivation": set()}
        self.by_arc: dict[str, float] = {}

    def __call__(self, archs, shared) -> torch.Tensor:
        ops = tuple(shared.cfg.search_space.ops)
        scores = [-shared.cost(a).params / 1000 for a in archs]
        for arch, s in zip(archs, scores, strict=True):
            self.by_arc[" ".join(map(str, arch.to_ints(ops)))] = s
            self.given[shared.phase].add(s)
        return torch.tensor(scores, device=shared.device)


def test_a_registered_reward_drives_the_controller_phase_and_the_derivation(
    monkeypatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(REWARDS, "_items", dict(REWARDS._items))  # restored afterwards
    reward = register_reward(SmallIsBetter())
    small = ["final.layers=3", "final.channels=4", "final.aux_weight=0"]
    overrides = ["reward.name=small_is_better", "controller.entropy_weight=0", *small]
    run(compose_cfg(tmp_path, overrides))
    assert reward.given["controller"] and reward.given["derivation"]
    # the controller phase rewarded every sample with it (entropy bonus off) ...
    with (tmp_path / "sampled_archs.csv").open() as f:
        sampled = list(csv.DictReader(f))
    assert len(sampled) == 2 * 2 * 3  # TINY: 2 epochs, 2 updates of 3 samples
    for row in sampled:
        assert float(row["reward"]) == pytest.approx(reward.by_arc[row["arc"]], rel=1e-6)
    # ... and the derivation ranked the candidates by it, under its name
    with (tmp_path / "arch_candidates.csv").open() as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        assert float(row["val_small"]) == pytest.approx(reward.by_arc[row["arc"]], rel=1e-6)
    saved = json.loads((tmp_path / "best_arch.json").read_text())
    derived = [r for r in rows if r["source"] != "uniform"]
    assert saved["val_small"] == pytest.approx(max(float(r["val_small"]) for r in derived))


def test_a_reward_of_another_package_is_found_by_its_entry_point(monkeypatch, tmp_path) -> None:
    import importlib.metadata

    from enas_lightning import rewards

    (tmp_path / "plugin_reward.py").write_text(
        "from enas_lightning.rewards import register_reward\n"
        "from enas_lightning.rewards.loss import NegativeLoss\n"
        "class Plugin(NegativeLoss):\n    name = 'plugin_loss'\n"
        "register_reward(Plugin())\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    ep = importlib.metadata.EntryPoint("plugin_loss", "plugin_reward", rewards.ENTRY_POINT_GROUP)
    monkeypatch.setattr(
        importlib.metadata, "entry_points", lambda group: [ep] if group == ep.group else []
    )
    monkeypatch.setattr(REWARDS, "_items", dict(REWARDS._items))
    monkeypatch.setattr(REWARDS, "_loaded", False)
    names = list(REWARDS)  # the built-ins first, then the plug-in
    assert "plugin_loss" in REWARDS and names[-1] == "plugin_loss"
    assert {"accuracy", "cost_aware", "loss"} == set(names[:-1])
    assert get_reward("plugin_loss").metric == "val_neg_loss"

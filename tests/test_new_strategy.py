"""Adding a search strategy is one module and one registration: a toy strategy runs task=search.

``tests/toy_strategy.py`` registers ``best_seen`` (remember the best-rewarded uniform sample);
``task=search`` then runs it through the command line's code path (``enas_lightning.app.run``)
with the same child phase, checkpoints, artifacts and derivation as ENAS (docs/new_strategy.md).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

from enas_lightning.app import run
from enas_lightning.errors import ConfigError
from enas_lightning.strategies import STRATEGIES, get_strategy
from tests.conftest import compose_cfg
from tests.toy_strategy import BestSeen


@pytest.fixture(autouse=True)
def _clear_hydra():
    yield
    GlobalHydra.instance().clear()


def test_strategies_are_registered_by_name() -> None:
    assert list(STRATEGIES)[:2] == ["enas", "random"]
    assert isinstance(get_strategy("best_seen"), BestSeen)
    with pytest.raises(
        ConfigError, match="controller.name='nope' is not allowed: one of enas, random, best_seen"
    ):
        get_strategy("nope")


def test_an_unknown_strategy_is_one_line_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="controller.name='nope' is not allowed: one of enas"):
        run(compose_cfg(tmp_path, ["controller.name=nope"]))
    assert not (tmp_path / "checkpoints").exists()


def test_toy_strategy_runs_task_search(tmp_path: Path) -> None:
    epochs, steps, n = 2, 2, 3  # TINY: controller.train_steps=2, controller.num_aggregate=3
    run(compose_cfg(tmp_path, ["controller.name=best_seen", f"search.epochs={epochs}"]))
    with (tmp_path / "sampled_archs.csv").open() as f:
        sampled = list(csv.DictReader(f))
    # its controller phase ran after every epoch and rewarded its uniform samples
    assert len(sampled) == epochs * steps * n
    history = json.loads((tmp_path / "history.json").read_text())
    assert [h["epoch"] for h in history] == [0, 1]
    assert all("reward" in h and "op_probs" not in h for h in history)
    best = max(sampled, key=lambda r: float(r["reward"]))
    # the best one it saw is its greedy architecture, and its first derivation candidate
    assert history[-1]["greedy_arch"]["ints"] == best["arc"]
    with (tmp_path / "arch_candidates.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["arc"] for r in rows if r["source"] == "greedy"] == [best["arc"]]
    assert sum(r["source"] == "controller" for r in rows) == 4  # TINY: derive_samples=4
    saved = json.loads((tmp_path / "best_arch.json").read_text())
    assert saved["val_acc"] == max(float(r["val_acc"]) for r in rows if r["source"] != "uniform")
    # its memory is in the checkpoint, next to the supernet and the controller
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    assert float(state["state_dict"]["best_reward"]) == pytest.approx(float(best["reward"]))
    assert len(state["optimizer_states"]) == 1  # the supernet's SGD only


def test_a_strategy_of_another_package_is_found_by_its_entry_point(monkeypatch, tmp_path) -> None:
    """An installed package announces its strategy in the ``enas_lightning.strategies`` group;
    the registry imports that module on its first lookup, and the import registers it."""
    import importlib.metadata

    from enas_lightning import strategies

    (tmp_path / "plugin_strategy.py").write_text(
        "from enas_lightning.strategies import register_strategy\n"
        "from tests.toy_strategy import BestSeen\n"
        "class Plugin(BestSeen):\n    name = 'plugin_best'\n"
        "register_strategy(Plugin())\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    group = strategies.ENTRY_POINT_GROUP
    ep = importlib.metadata.EntryPoint("plugin_best", "plugin_strategy", group)
    monkeypatch.setattr(
        importlib.metadata, "entry_points", lambda group: [ep] if group == ep.group else []
    )
    # as in a new process: nothing looked up yet (restored afterwards)
    monkeypatch.setattr(STRATEGIES, "_items", dict(STRATEGIES._items))
    monkeypatch.setattr(STRATEGIES, "_loaded", False)
    assert "plugin_best" in STRATEGIES and list(STRATEGIES)[:2] == ["enas", "random"]
    assert get_strategy("plugin_best").name == "plugin_best"

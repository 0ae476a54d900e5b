"""Cost-aware search (issue 22): the latency table, the cost-aware reward, the derivation under
a budget and the accuracy-cost front (docs/cost_aware.md)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from enas_lightning.build import validate
from enas_lightning.checkpointing import check_fingerprint, space_fingerprint
from enas_lightning.errors import CheckpointError, ConfigError
from enas_lightning.latency.table import (
    LatencyTable,
    build_table,
    load_table,
    predict_ms,
    table_key,
    table_path,
    table_settings,
)
from enas_lightning.rewards.cost_aware import cost_aware
from enas_lightning.search.derivation import BudgetError, Derivation, budget_of
from enas_lightning.search.front import front_accuracy, gap_to_front, pareto_front
from enas_lightning.spaces import OpPlacement, get_space
from enas_lightning.spaces.micro.arch import MicroArch
from enas_lightning.tasks.latency_table import uniform_archs

# a tiny standalone network: 3 layers (+2 reduction cells) of 4 channels on 8x8 images
TABLE = [
    "final.layers=3",
    "final.channels=4",
    "final.aux_weight=0",
    "latency.warmup=0",
    "latency.repeats=1",
    "latency.calibration_archs=1",
    "trainer.num_threads=1",
]
SHAPE = (3, 8, 8)


@pytest.fixture(autouse=True)
def _clear_hydra():
    yield
    GlobalHydra.instance().clear()


def hand_arch() -> MicroArch:
    """3 nodes per cell, every op of the authors' vocabulary used somewhere."""
    ints = [0, 0, 1, 1, 0, 2, 2, 3, 1, 4, 0, 0]
    return MicroArch.from_ints(ints + ints, num_nodes=3)


# --- the latency table -----------------------------------------------------------------------
def test_the_cache_key_changes_with_device_space_and_input_size(make_cfg, monkeypatch) -> None:
    cfg = make_cfg([*TABLE, "latency.cache_dir=/x"])
    key = table_key(table_settings(cfg, SHAPE, 10))
    assert key.startswith("micro-cpu-") and "-1t-" in key  # space, device, threads
    assert table_key(table_settings(cfg, SHAPE, 10)) == key  # stable
    assert table_key(table_settings(cfg, (3, 16, 16), 10)) != key  # input size
    assert table_key(table_settings(make_cfg([*TABLE, "latency.batch_size=8"]), SHAPE, 10)) != key
    assert table_key(table_settings(make_cfg([*TABLE, "final.channels=6"]), SHAPE, 10)) != key
    # the training-only final settings do not make another table
    assert table_key(table_settings(make_cfg([*TABLE, "final.epochs=3"]), SHAPE, 10)) == key
    macro = make_cfg(["search_space=macro", "final.layers=3", "trainer.num_threads=1"])
    assert table_key(table_settings(macro, SHAPE, 10)).startswith("macro-")
    two = table_key(table_settings(make_cfg([*TABLE[:-1], "trainer.num_threads=2"]), SHAPE, 10))
    assert two != key and "-2t-" in two  # another thread count is another device
    monkeypatch.setattr("enas_lightning.latency.timing.cpu_model", lambda: "Other CPU 9000")
    assert "other-cpu-9000" in table_key(table_settings(cfg, SHAPE, 10))
    assert (
        table_path(cfg, SHAPE, 10)
        == Path("/x") / f"{table_key(table_settings(cfg, SHAPE, 10))}.json"
    )


def test_the_prediction_is_the_sum_of_the_table_entries(make_cfg) -> None:
    cfg = make_cfg(TABLE)
    space = get_space("micro")
    arch = hand_arch()
    placements = space.op_placements(cfg.final, arch, SHAPE)
    every = {p.key for p in space.all_op_placements(cfg.final, cfg.search_space, SHAPE)}
    # two cells of 3 nodes, 2 ops each, per cell of the network (3 normal + 2 reduction)
    assert len(placements) == 5 * 6 and {p.key for p in placements} <= every
    # the reduction cells' ops on their inputs run at stride 2, at the input resolution
    assert OpPlacement("sep_conv_3x3", 8, 8, 8, 2) in placements
    assert OpPlacement("identity", 8, 4, 4, 1) in placements  # node 2's input: node 0, reduced
    entries = {k: float(i + 1) for i, k in enumerate(sorted(every))}
    table = LatencyTable("k", {}, entries, fixed_ms=0.25)
    expected = 0.25 + sum(entries[p.key] for p in placements)
    assert predict_ms(table, cfg, arch, SHAPE) == pytest.approx(expected)
    with pytest.raises(ConfigError, match="no entry for 'sep_conv_3x3 c4 8x8 s1'"):
        LatencyTable("k", {}, {}, 0.0).predict([OpPlacement("sep_conv_3x3", 4, 8, 8, 1)])


def test_every_sampled_architecture_is_covered_by_the_table(make_cfg) -> None:
    for space_name, extra in (
        ("micro", TABLE),
        ("macro", ["search_space=macro", "final.layers=3"]),
    ):
        cfg = make_cfg(extra)
        space = get_space(space_name)
        every = {p.key for p in space.all_op_placements(cfg.final, cfg.search_space, SHAPE)}
        for arch in uniform_archs(cfg, 20, 0):
            f = space.standalone_final(cfg.final, arch, cfg.search_space)
            assert {p.key for p in space.op_placements(f, arch, SHAPE)} <= every


def test_a_table_is_built_cached_and_loaded(make_cfg, tmp_path) -> None:
    cfg = make_cfg([*TABLE, f"latency.cache_dir={tmp_path / 'cache'}"])
    with pytest.raises(
        ConfigError, match="build it with: python -m enas_lightning task=latency_table"
    ):
        load_table(cfg, SHAPE, 10)
    from enas_lightning.latency.table import save_table

    table = build_table(cfg, SHAPE, 10, uniform_archs(cfg, 1, 0))
    assert all(ms > 0 for ms in table.entries.values())
    path = save_table(cfg, table)
    assert path == table_path(cfg, SHAPE, 10)
    loaded = load_table(cfg, SHAPE, 10)
    assert loaded.entries == table.entries and loaded.fixed_ms == table.fixed_ms


# --- the reward ------------------------------------------------------------------------------
def test_the_reward_formula_on_both_sides_of_the_target() -> None:
    # soft, MnasNet's alpha = beta = -0.07 (w_below None: the same as w)
    assert cost_aware(0.8, 200, 100, w=-0.07) == pytest.approx(0.8 * 2**-0.07)
    assert cost_aware(0.8, 50, 100, w=-0.07) == pytest.approx(0.8 * 0.5**-0.07)
    assert cost_aware(0.8, 100, 100, w=-0.07) == pytest.approx(0.8)
    # w_below=0: no reward for staying below the target, the full one there
    assert cost_aware(0.8, 50, 100, w=-0.07, w_below=0.0) == pytest.approx(0.8)
    assert cost_aware(0.8, 400, 100, w=-1.0, w_below=0.0) == pytest.approx(0.2)
    # hard: the accuracy within the budget, the penalty over it
    assert cost_aware(0.8, 100, 100, constraint="hard") == 0.8
    assert cost_aware(0.8, 101, 100, constraint="hard") == 0.0
    assert cost_aware(0.8, 101, 100, constraint="hard", penalty=-1.0) == -1.0


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["reward.cost=flops", "reward.target=1"],
            "reward.cost='flops' is not allowed: one of params, madds, latency",
        ),
        (["reward.target=0"], "reward.target=0.0 is not allowed: a budget > 0"),
        ([], "reward.target=None is not allowed"),
        (["reward.target=10", "reward.w=0.1"], "reward.w=0.1 is not allowed: <= 0"),
        (["reward.target=10", "reward.w_below=0.5"], "reward.w_below=0.5 is not allowed"),
        (["reward.target=10", "reward.constraint=firm"], "reward.constraint='firm'"),
    ],
)
def test_bad_reward_settings_are_one_line(make_cfg, overrides, message) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        validate(make_cfg(["reward=cost_aware", *overrides]))


def test_cost_settings_of_another_reward_and_bad_budgets_are_refused(make_cfg) -> None:
    with pytest.raises(
        ConfigError, match="reward.target=5.0 is not allowed: only with reward=cost_aware"
    ):
        validate(make_cfg(["reward.target=5"]))
    with pytest.raises(ConfigError, match="derive.max_params=0 is not allowed"):
        validate(make_cfg(["derive.max_params=0"]))
    validate(make_cfg(["reward=cost_aware", "reward.target=1000", "derive.max_params=1000"]))


def test_latency_without_a_table_names_the_command(make_cfg, tmp_path) -> None:
    from enas_lightning.tasks.common import check_latency_table

    cfg = make_cfg(
        [
            "reward=cost_aware",
            "reward.cost=latency",
            "reward.target=1",
            f"latency.cache_dir={tmp_path}",
        ]
    )
    with pytest.raises(ConfigError, match="no latency table .* task=latency_table"):
        check_latency_table(cfg)
    cfg = make_cfg(["derive.max_latency_ms=3", f"latency.cache_dir={tmp_path}"])
    with pytest.raises(ConfigError, match="no latency table"):
        check_latency_table(cfg)
    check_latency_table(make_cfg([f"latency.cache_dir={tmp_path}"]))  # not asked for: fine


def test_a_changed_target_refuses_the_checkpoint(make_cfg) -> None:
    on = make_cfg(["reward=cost_aware", "reward.target=1000"])
    checkpoint = {"enas": {"fingerprint": space_fingerprint(on)}}
    check_fingerprint(checkpoint, on)
    for other in (
        ["reward=cost_aware", "reward.target=2000"],
        ["reward=cost_aware", "reward.target=1000", "reward.cost=madds"],
        ["reward=cost_aware", "reward.target=1000", "reward.w=-0.5"],
        [],  # reward=accuracy
    ):
        with pytest.raises(CheckpointError, match="made with reward"):
            check_fingerprint(checkpoint, make_cfg(other))
    # the other rewards record nothing: their checkpoints are as before
    assert not any(k.startswith("reward.") for k in space_fingerprint(make_cfg([])))


# --- the derivation under a budget and the front ---------------------------------------------
def derivation(budget: dict[str, float]) -> Derivation:
    archs = uniform_archs(OmegaConf.create(_plain_cfg()), 3, 0)
    return Derivation(
        archs,
        [0.9, 0.7, 0.8],
        greedy_index=None,
        costs=[
            {"params": 300, "madds": 9},
            {"params": 100, "madds": 3},
            {"params": 200, "madds": 5},
        ],
        uniform=archs[:1],
        uniform_accuracies=[0.5],
        uniform_costs=[{"params": 50, "madds": 1}],
        budget=budget,
    )


def _plain_cfg() -> dict:
    from enas_lightning.config import space_config

    return OmegaConf.to_container(space_config("micro"))


def test_the_budget_excludes_candidates_over_it() -> None:
    assert derivation({}).best_index == 0  # the best accuracy
    assert derivation({"params": 250}).best_index == 2
    assert derivation({"params": 250, "madds": 4}).best_index == 1
    d = derivation({"params": 250})
    assert d.summary()["params"] == 200 and d.summary()["budget_params"] == 250
    assert any("derived cost    params 200" in line for line in d.report())
    with pytest.raises(
        BudgetError,
        match=r"derive.max_params=99: the smallest params among the 3 candidates is 100 \(of the uniform reference: 50\)",
    ):
        derivation({"params": 99})
    cfg = OmegaConf.create({"max_params": 5, "max_madds": None, "max_latency_ms": 2.5})
    assert budget_of(cfg) == {"params": 5.0, "latency_ms": 2.5}


def test_the_front_of_a_hand_made_table() -> None:
    costs = [300, 100, 200, 150, 100, 400]
    accs = [0.9, 0.7, 0.8, 0.6, 0.65, 0.85]
    assert pareto_front(costs, accs) == [1, 2, 0]  # 150/0.6, 100/0.65, 400/0.85 are dominated
    assert front_accuracy(costs, accs, 250) == 0.8
    assert front_accuracy(costs, accs, 99) is None
    assert gap_to_front(costs, accs, 250, 0.75) == pytest.approx(0.05)
    assert gap_to_front(costs, accs, 200, 0.8) == 0.0  # on it
    assert gap_to_front(costs, accs, 50, 0.5) is None  # cheaper than every point


# --- a search ---------------------------------------------------------------------------------
def test_a_cost_aware_search_under_a_budget(make_cfg, tmp_path) -> None:
    from enas_lightning.tasks.search import run_search

    target = 14000
    cfg = make_cfg(
        [
            *TABLE[:3],
            "reward=cost_aware",
            f"reward.target={target}",
            f"derive.max_params={target}",
            "search.epochs=1",
            "trainer.enable_progress_bar=false",
        ]
    )
    _, arch, path = run_search(cfg, tmp_path)
    best = json.loads(path.read_text())
    assert best["params"] <= target and best["budget_params"] == target
    assert "val_acc_cost" in best and "madds" in best
    with open(tmp_path / "arch_candidates.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["rank", "source", "arc", "val_acc_cost", "params", "madds"]
    history = json.loads((tmp_path / "history.json").read_text())
    assert history[-1]["cost_params"] > 0  # the children's mean cost
    assert (tmp_path / "pareto.png").is_file()

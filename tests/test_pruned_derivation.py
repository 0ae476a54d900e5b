"""``search.derive_prune_keep`` (issue 20; Ning et al. 2021): the derivation keeps its best
candidates, trains a copy of the weights on them alone, scores them again on it and picks among
them. The shared weights, optimizers and random streams stay as they were; off, the derivation is
the paper's; the pick is what experiments/prune.py measured; the run's files say so."""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import pytest
import torch

from enas_lightning.build import validate
from enas_lightning.errors import ConfigError
from enas_lightning.search.derivation import BudgetError, Derivation
from enas_lightning.search.finetune import PRUNE_KEY, pruned_copy
from enas_lightning.spaces import ArchRecord
from tests.test_finetune import assert_same, searched_module, snapshot

# experiments/prune.py measured the setting; few_shot.py edits one op of a cell
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """The tiny search after one epoch, its plain derivation, then its pruned one (keep 3 of 5,
    4 steps at lr 0.05), with snapshots of what the rest of the run reads before and after."""
    from tests.conftest import compose_cfg

    # by the loss: the tiny validation split's accuracies tie too often to tell picks apart
    overrides = ["search.child_batches=2", "search.derive_samples=4", "reward=loss"]
    cfg = compose_cfg(tmp_path_factory.mktemp("cfg"), overrides)
    module, trainer = searched_module(cfg, tmp_path_factory.mktemp("search"))
    plain = module.derive()
    before = snapshot(module, trainer)
    s = module.cfg.search
    s.derive_prune_keep, s.derive_prune_steps, s.derive_prune_lr = 3, 4, 0.05
    pruned = module.derive()
    return module, plain, pruned, before, snapshot(module, trainer)


def archs(module, n: int, key: int) -> list[ArchRecord]:
    return module.uniform_archs(n, module.generator(key))


def test_pruning_picks_the_best_second_score_among_the_kept_and_touches_nothing_else(
    searched,
) -> None:
    module, plain, pruned, before, after = searched
    assert_same(after, before)  # weights, buffers, grads, optimizers, RNG
    # the first stage is the plain derivation: same candidates, same scores
    assert [a.to_dict() for a in pruned.candidates] == [a.to_dict() for a in plain.candidates]
    assert pruned.accuracies == plain.accuracies
    assert pruned.uniform_accuracies == plain.uniform_accuracies
    # the kept are the three best first scores, best first; the plain pick heads them
    order = sorted(range(len(plain.accuracies)), key=lambda i: (-plain.accuracies[i], i))
    assert pruned.pruned == order[:3] and pruned.unpruned_index == plain.best_index == order[0]
    # the pick is the kept one the trained copy scores best
    second = pruned.pruned_scores
    assert pruned.best_index == pruned.pruned[max(range(3), key=lambda j: (second[j], -j))]
    # they are the scores on a copy trained on the kept alone
    kept = [pruned.candidates[i] for i in pruned.pruned]
    net = pruned_copy(module, module.supernet, kept, 4, 0.05)
    assert module.score(kept, source=net).tolist() == pytest.approx(second, rel=1e-6)
    assert module.score(kept).tolist() != pytest.approx(second, rel=1e-6)  # not the shared ones
    # deterministic: pruned again (every rank, every rescoring), the same
    again = module.prune(plain)
    assert (again.pruned, again.pruned_scores, again.best_index) == (
        pruned.pruned,
        pruned.pruned_scores,
        pruned.best_index,
    )
    # off (the default): the paper's derivation, which says nothing of pruning
    assert plain.pruned == [] and not [k for k in plain.summary() if "prune" in k]
    assert "pruned" not in "\n".join(plain.report())


def test_the_copy_trains_the_kept_candidates_only(searched) -> None:
    """With every kept candidate pooling at normal node 0's first op, that slot's convolutions
    keep the supernet's weights while other weights move; the draws are seeded by the run."""
    from few_shot import with_op

    module = searched[0]
    pooled = [with_op(a, "normal", 0, 0, "avg_pool_3x3") for a in archs(module, 3, 4)]
    before = {k: v.clone() for k, v in module.supernet.state_dict().items()}
    seen = []
    real = module.child_loss
    module.child_loss = lambda net, x, y, a: seen.append(a) or real(net, x, y, a)
    trained = pruned_copy(module, module.supernet, pooled, 6, 0.05).state_dict()
    del module.child_loss
    after = module.supernet.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the source is untouched
    assert any(not torch.equal(before[k], trained[k]) for k in before)
    draws = torch.randint(3, (6,), generator=module.generator(PRUNE_KEY, 0)).tolist()
    assert seen == [pooled[i] for i in draws]
    index = module.supernet.cells[0].op_index
    slot = [
        n
        for n in before
        if (f := n.split("."))[:5] == ["cells", f[1], "ops", "0", "0"]
        and int(f[1]) not in module.supernet.reductions
        and f[6] in (str(index["sep_conv_3x3"]), str(index["sep_conv_5x5"]))
    ]
    assert slot and all(torch.equal(before[n], trained[n]) for n in slot)


def test_experiments_prune_picks_what_the_derivation_derives(searched) -> None:
    """experiments/prune.py (which measured the setting on finished searches) takes the
    candidates in arch_candidates.csv's order, best first score first; from them it picks the
    architecture the search's own pruned derivation derives."""
    import prune

    module, _, d, _, _ = searched
    ops = tuple(module.cfg.search_space.ops)
    arcs = [" ".join(map(str, d.candidates[i].to_ints(ops))) for i in d.order()]
    got = prune.prune_pick(module, arcs, 3, 4, 0.05, "loss")
    assert arcs[got["pick"]] == " ".join(map(str, d.best.to_ints(ops)))
    assert got["second"] == pytest.approx(d.pruned_scores, rel=1e-6)


def test_the_run_files_and_report_say_how_the_pick_was_made(searched, tmp_path) -> None:
    from enas_lightning.tasks.search import write_derivation

    module, _, d, _, _ = searched
    ops = tuple(module.cfg.search_space.ops)
    write_derivation(d, tmp_path, ops)
    saved = json.loads((tmp_path / "best_arch.json").read_text())
    assert saved["derive_prune_keep"] == 3 and saved["derive_prune_steps"] == 4
    assert saved["derive_prune_lr"] == 0.05
    assert saved["pruned_val_neg_loss"] == pytest.approx(d.pruned_best_score)
    assert saved["pruning_changed_pick"] == (d.best_index != d.unpruned_index)
    with (tmp_path / "arch_candidates.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    # the kept first, by their second score, the derived one on top; the rest without one
    assert rows[0]["arc"] == " ".join(map(str, d.best.to_ints(ops)))
    second = [r["pruned_val_neg_loss"] for r in rows]
    assert all(second[:3]) and not any(second[3:])
    assert [float(x) for x in second[:3]] == sorted((float(x) for x in second[:3]), reverse=True)
    assert len(rows) == len(d.candidates) + len(d.uniform)
    text = "\n".join(d.report())
    assert "pruned: the best 3 candidates scored again" in text
    assert "trained 4 more SGD steps on them (lr 0.05" in text


def test_the_kept_stay_within_the_budget_and_ties_go_to_the_first(searched) -> None:
    a = archs(searched[0], 5, 7)
    costs = [{"params": p} for p in (100.0, 900.0, 100.0, 100.0, 50.0)]
    d = Derivation(a, [0.5, 0.9, 0.7, 0.7, math.nan], None, costs=costs, budget={"params": 500})
    assert d.order() == [2, 3, 0, 4]  # 1 is over the budget; equal scores keep their order
    assert d.best_index == 2
    pruned = Derivation(
        a, d.accuracies, None, costs=costs, budget=d.budget, pruned=[2, 3, 0],
        pruned_scores=[0.6, 0.8, 0.8], prune_steps=4, prune_lr=0.05,
    )  # fmt: skip
    assert pruned.best_index == 3 and pruned.unpruned_index == 2
    assert pruned.summary()["pruning_changed_pick"] is True
    assert "(number 2 of the first scoring)" in "\n".join(pruned.report())
    with pytest.raises(BudgetError):
        Derivation(a, d.accuracies, None, costs=costs, budget={"params": 10})
    with pytest.raises(ValueError, match="3 pruned candidates but 2 scores"):
        Derivation(a, d.accuracies, None, pruned=[0, 1, 2], pruned_scores=[0.1, 0.2])


def test_a_non_finite_score_is_never_derived(searched, tmp_path) -> None:
    """``np.argmax`` takes a NaN as the best score: a candidate whose loss diverged on the shared
    weights (or on the pruned copy) must never be the pick, with or without a budget or pruning,
    and arch_candidates.csv ranks it last."""
    from enas_lightning.tasks.search import write_derivation

    module = searched[0]
    a = archs(module, 4, 11)
    scores = [-0.9, math.nan, -0.5, -0.5]
    d = Derivation(a, scores, None, metric="val_neg_loss")
    assert d.best_index == 2 and d.order() == [2, 3, 0, 1]
    costs = [{"params": 10.0}] * 4
    assert Derivation(a, scores, None, costs=costs, budget={"params": 20}).best_index == 2
    pruned = Derivation(
        a, scores, None, metric="val_neg_loss", pruned=[2, 3, 0],
        pruned_scores=[math.nan, -0.4, -0.3], prune_steps=1, prune_lr=0.1,
    )  # fmt: skip
    assert pruned.best_index == 0 and pruned.unpruned_index == 2  # -0.3: best finite second
    assert Derivation(a, [math.nan] * 4, None).best_index == 0  # none finite: the first
    ops = tuple(module.cfg.search_space.ops)
    write_derivation(d, tmp_path, ops)
    with (tmp_path / "arch_candidates.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    arc = [" ".join(map(str, x.to_ints(ops))) for x in a]
    assert [r["arc"] for r in rows] == [arc[2], arc[3], arc[0], arc[1]]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["search.derive_prune_keep=-1"], "search.derive_prune_keep=-1 is not allowed: at least 0"),
        (["search.derive_prune_steps=0"], "search.derive_prune_steps=0 is not allowed: at least 1"),
        (["search.derive_prune_lr=0"], "search.derive_prune_lr=0.0 is not allowed: a learning"),
        (
            ["search.derive_prune_keep=5", "search.param_free_adjust=true"],
            "search.derive_prune_keep=5 is not allowed: 0 with search.param_free_adjust=true",
        ),
    ],
)
def test_bad_pruning_settings_are_one_line(overrides, message, make_cfg) -> None:
    with pytest.raises(ConfigError) as e:
        validate(make_cfg(overrides))
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_off_by_default_and_in_every_preset() -> None:
    from enas_lightning.precheck import compose

    for preset in ("micro_search", "macro_search", "quickstart"):
        assert compose([f"experiment={preset}"]).search.derive_prune_keep == 0, preset
    assert compose([]).search.derive_prune_keep == 0

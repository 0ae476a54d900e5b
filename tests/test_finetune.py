"""``search.derive_finetune_steps`` (issue 20, Zhang et al. 2020): every candidate the
derivation or ``task=fidelity`` scores is first fine-tuned on its own copy of the shared
weights. The shared weights, the optimizers and the random streams stay as they were; the scores
change; each candidate's fine-tuning depends on its key only; the derivation says so."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from enas_lightning.build import build_controller, build_supernet, validate
from enas_lightning.checkpointing import DERIVATION_KEYS, check_fingerprint, space_fingerprint
from enas_lightning.data.datasets import load_splits
from enas_lightning.data.device import DeviceSplits
from enas_lightning.errors import CheckpointError, ConfigError
from enas_lightning.rewards import get_reward
from enas_lightning.search.module import SearchModule
from tests._cli import enas
from tests.test_search import fit

REPO = Path(__file__).resolve().parents[1]


def searched_module(cfg, tmp_path: Path) -> tuple[SearchModule, object]:
    """The tiny micro supernet and controller after one search epoch, and its trainer."""
    splits = load_splits(cfg.dataset, holdout=True)
    data = DeviceSplits(splits, pad=cfg.dataset.pad, flip=cfg.dataset.flip)
    module = SearchModule(build_supernet(cfg, splits), build_controller(cfg), data, cfg)
    return module, fit(module, cfg, tmp_path)


@pytest.fixture
def searched(make_cfg, tmp_path):
    return searched_module(
        make_cfg(["search.child_batches=2", "search.derive_samples=2"]), tmp_path
    )


def snapshot(module: SearchModule, trainer) -> dict:
    """Everything the rest of a run reads that fine-tuning could touch, copied."""
    return {
        "supernet": {k: v.clone() for k, v in module.supernet.state_dict().items()},
        "grads": [None if p.grad is None else p.grad.clone() for p in module.supernet.parameters()],
        "controller": {k: v.clone() for k, v in module.controller.state_dict().items()},
        "optimizers": [copy.deepcopy(o.state_dict()) for o in trainer.optimizers],
        "rng": torch.get_rng_state(),
        "training": [m.training for m in module.supernet.modules()],
    }


def assert_same(a, b, where: str = "") -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where  # bit for bit
    else:
        assert a == b, where


def test_finetuning_changes_the_scores_and_leaves_everything_else_alone(searched) -> None:
    module, trainer = searched
    plain = module.derive()
    before = snapshot(module, trainer)
    module.cfg.search.derive_finetune_steps = 3
    tuned = module.derive()
    assert_same(snapshot(module, trainer), before)  # weights, buffers, grads, optimizers, RNG
    assert [a.to_dict() for a in tuned.candidates] == [a.to_dict() for a in plain.candidates]
    assert (
        tuned.accuracies + tuned.uniform_accuracies != plain.accuracies + plain.uniform_accuracies
    )
    module.cfg.search.derive_finetune_steps = 0
    again = module.derive()  # the shared weights are those of the plain derivation
    assert again.accuracies == plain.accuracies
    assert again.uniform_accuracies == plain.uniform_accuracies


def test_the_uniform_finish_scores_on_a_trained_copy_and_leaves_everything_else_alone(
    searched, monkeypatch
) -> None:
    """search.derive_uniform_steps: the candidates are scored on a copy of the shared weights
    trained that many steps on uniform children; the supernet, its gradients, the optimizers and
    torch's random state are as they were; the copy is trained once and is the same when trained
    again (every rank, every rescoring)."""
    from enas_lightning.search import finetune
    from enas_lightning.search import module as search_module

    module, trainer = searched
    plain = module.derive()
    before = snapshot(module, trainer)
    module.cfg.search.derive_uniform_steps = 3
    trained = []
    real = finetune.uniformly_trained
    monkeypatch.setattr(search_module, "uniformly_trained", lambda m: trained.append(1) or real(m))
    finished = module.derive()
    assert_same(snapshot(module, trainer), before)  # weights, buffers, grads, optimizers, RNG
    assert [a.to_dict() for a in finished.candidates] == [a.to_dict() for a in plain.candidates]
    # the copy's scores differ (the loss: the tiny split's accuracies are coarse)
    loss = get_reward("loss")
    on_copy = module.score(finished.candidates, loss).tolist()
    module.cfg.search.derive_uniform_steps = 0
    assert module.score(finished.candidates, loss).tolist() != on_copy
    module.cfg.search.derive_uniform_steps = 3
    copy = module.scoring_supernet()
    assert len(trained) == 1  # one copy for the whole derivation and what follows
    state, shared = copy.state_dict(), module.supernet.state_dict()
    assert any(not torch.equal(state[k], shared[k]) for k in shared)
    again = real(module).state_dict()  # trained from scratch: the same weights, bit for bit
    assert all(torch.equal(state[k], again[k]) for k in state)
    # the copy is what is scored: scoring it directly gives the derivation's scores
    from enas_lightning.search.scoring import DerivationScoring

    with DerivationScoring(module, copy) as view:
        direct = module.reward(finished.candidates, view).tolist()
    assert direct == finished.accuracies
    module.cfg.search.derive_uniform_steps = 0
    assert module.derive().accuracies == plain.accuracies  # the shared weights are untouched


def test_the_uniform_finish_trains_uniform_children_at_falling_rates(searched, monkeypatch) -> None:
    """The copy trains one step per child drawn uniformly (not from the controller) from the
    run's seed, and its learning rate falls on a half cosine from search.derive_uniform_lr to
    search.optim.lr_min."""
    from enas_lightning.search.finetune import UNIFORM_KEY, cosine_lrs, uniformly_trained

    module, _ = searched
    module.cfg.search.derive_uniform_steps = 4
    seen = []
    real = module.child_loss
    monkeypatch.setattr(
        module, "child_loss", lambda net, x, y, a: seen.append(a) or real(net, x, y, a)
    )
    uniformly_trained(module)
    assert seen == module.uniform_archs(4, module.generator(UNIFORM_KEY, 0))
    lrs = cosine_lrs(5, 0.01, 5e-4)
    assert lrs[0] == pytest.approx(0.01) and lrs[-1] == pytest.approx(5e-4)
    assert all(a > b for a, b in zip(lrs, lrs[1:], strict=False))
    assert cosine_lrs(1, 0.01, 5e-4) == [pytest.approx(0.01)]


def test_the_derivation_records_the_uniform_finish(searched, tmp_path) -> None:
    from enas_lightning.tasks.search import write_derivation

    module, _ = searched
    ops = tuple(module.cfg.search_space.ops)
    assert not [k for k in module.derive().summary() if "uniform_steps" in k]
    module.cfg.search.derive_uniform_steps = 2
    module.cfg.search.derive_uniform_lr = 0.03
    finished = module.derive()
    write_derivation(finished, tmp_path, ops)
    saved = json.loads((tmp_path / "best_arch.json").read_text())
    assert saved["derive_uniform_steps"] == 2 and saved["derive_uniform_lr"] == 0.03
    assert "trained 2 more SGD steps on uniform children (lr 0.03" in "\n".join(finished.report())


def test_a_candidates_finetuning_depends_on_its_key_only(searched) -> None:
    """The same architecture and key give the same score alone or after others (another
    rank's share of the derivation, another fidelity index)."""
    module, _ = searched
    module.cfg.search.derive_finetune_steps = 3
    archs = module.uniform_archs(3, torch.Generator().manual_seed(0))
    together = module.score(archs, keys=[5, 6, 7])
    assert module.score(archs[2:], keys=[7]).tolist() == together[2:].tolist()
    assert module.accuracy(archs[1], key=6) == float(together[1])  # the default reward


def test_the_derivation_records_the_finetuning(searched, tmp_path) -> None:
    from enas_lightning.tasks.search import write_derivation

    module, _ = searched
    ops = tuple(module.cfg.search_space.ops)
    plain = module.derive()
    assert not [k for k in plain.summary() if "finetune" in k]  # best_arch.json as before
    assert "fine-tuned" not in "\n".join(plain.report())
    module.cfg.search.derive_finetune_steps = 4
    module.cfg.search.derive_finetune_lr = 0.02
    tuned = module.derive()
    write_derivation(tuned, tmp_path, ops)
    saved = json.loads((tmp_path / "best_arch.json").read_text())
    assert saved["derive_finetune_steps"] == 4 and saved["derive_finetune_lr"] == 0.02
    assert "fine-tuned 4 SGD steps (lr 0.02)" in "\n".join(tuned.report())


@pytest.mark.parametrize(
    "override",
    [
        "search.derive_finetune_steps=-1",
        "search.derive_finetune_lr=0",
        "search.derive_finetune_lr=-1",
        "search.derive_uniform_steps=-1",
        "search.derive_uniform_lr=0",
    ],
)
def test_bad_finetuning_settings_are_one_line(override: str, make_cfg) -> None:
    key = override.partition("=")[0]
    with pytest.raises(ConfigError, match=f"^{key}=-?[.0-9]+ is not allowed") as e:
        validate(make_cfg([override]))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("key", ["search.derive_finetune_steps", "search.derive_uniform_steps"])
def test_fidelity_rescores_a_plain_search_with_finetuning(key: str, make_cfg, tmp_path) -> None:
    """A search made without fine-tuning: task=fidelity takes search.derive_finetune_steps (or
    search.derive_uniform_steps) from its own command line, loads the checkpoint (a resumed
    search would refuse it), scores differently and records the setting with its rows."""
    from enas_lightning.fidelity.rows import row_settings
    from enas_lightning.fidelity.search_run import (
        fidelity_config,
        find_search_run,
        load_search_module,
    )
    from enas_lightning.tasks.search import run_search

    run = tmp_path / "run"
    searched = make_cfg(["search.epochs=1", "search.derive_samples=2", f"output_dir={run}"])
    run_search(searched, run)
    (run / ".hydra").mkdir()
    OmegaConf.save(searched, run / ".hydra" / "config.yaml")
    found = find_search_run(str(run))
    state = torch.load(found.ckpt, weights_only=False)

    def scores(steps: int) -> list[float]:
        given = ["task=fidelity", f"fidelity.run={run}", f"{key}={steps}"]
        fcfg = fidelity_config(make_cfg(given), given, tmp_path / "out")
        assert OmegaConf.select(fcfg, key) == steps
        settings = row_settings(fcfg, found)
        assert (key in settings) == (steps > 0)
        if steps:
            with pytest.raises(CheckpointError, match=f"{key}=0"):
                check_fingerprint(state, fcfg)  # what a search resume would say
        module = load_search_module(fcfg, found, torch.device("cpu"))
        archs = module.uniform_archs(2, torch.Generator().manual_seed(1))
        # by the loss: on this tiny validation split 3 steps need not flip a prediction
        return module.score(archs, get_reward("loss"), keys=[0, 1]).tolist()

    assert scores(3) != scores(0)


def test_fidelity_compares_the_weights_fingerprint_only(make_cfg) -> None:
    plain, tuned = make_cfg([]), make_cfg(["search.derive_finetune_steps=5"])
    checkpoint = {"enas": {"fingerprint": space_fingerprint(plain)}}
    check_fingerprint(checkpoint, tuned, ignore=DERIVATION_KEYS)
    other = make_cfg(["search.derive_finetune_steps=5", "search.bn_affine=false"])
    with pytest.raises(CheckpointError, match="search.bn_affine"):
        check_fingerprint(checkpoint, other, ignore=DERIVATION_KEYS)


def test_off_by_default_and_in_every_preset() -> None:
    from enas_lightning.precheck import compose

    for preset in ("micro_search", "macro_search", "quickstart"):
        cfg = compose([f"experiment={preset}"]).search
        assert cfg.derive_finetune_steps == 0 and cfg.derive_uniform_steps == 0, preset
    assert compose([]).search.derive_finetune_steps == 0
    assert compose([]).search.derive_uniform_steps == 0


@pytest.mark.slow
def test_fidelity_command_with_finetuning(tmp_path: Path, cli_env) -> None:
    """task=fidelity search.derive_finetune_steps=3 on a plain search: other shared-weight
    scores than without, said so, recorded; another value in the same directory is refused."""
    from tests.test_fidelity import FIDELITY, SEARCH, cli, read_csv

    run = tmp_path / "search"
    cli([*SEARCH, f"hydra.run.dir={run}"], cli_env)
    args = [*FIDELITY, f"fidelity.run={run}", "fidelity.num_archs=2", "fidelity.epochs=1"]
    cli([*args, f"hydra.run.dir={tmp_path / 'plain'}"], cli_env)
    tuned = cli(
        [*args, f"hydra.run.dir={tmp_path / 'ft'}", "search.derive_finetune_steps=3"], cli_env
    )
    assert "after 3 fine-tuning steps per architecture" in tuned.stdout
    plain_rows, ft_rows = (read_csv(tmp_path / d / "fidelity.csv") for d in ("plain", "ft"))
    assert [r["arch"] for r in plain_rows] == [r["arch"] for r in ft_rows]
    assert [r["shared_acc"] for r in plain_rows] != [r["shared_acc"] for r in ft_rows]
    settings = json.loads((tmp_path / "ft" / "fidelity_settings.json").read_text())
    assert settings["search.derive_finetune_steps"] == 3
    summary = json.loads((tmp_path / "ft" / "fidelity.json").read_text())
    assert summary["config"]["search"]["derive_finetune_steps"] == 3
    refused = enas(
        [
            *args,
            f"hydra.run.dir={tmp_path / 'ft'}",
            "resume=true",
            "search.derive_finetune_steps=5",
        ],
        REPO,
        cli_env,
        300,
    )
    assert refused.returncode == 2 and refused.stderr.strip().count("\n") == 0
    assert "search.derive_finetune_steps=5 is not allowed" in refused.stderr

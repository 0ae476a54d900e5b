"""The search module: SGDR schedule, gradient clipping, frozen controller during the child
phase, the baseline in checkpoints."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from enas_lightning.build import build_controller, build_trainer
from enas_lightning.data.datasets import load_splits
from enas_lightning.data.device import DeviceSplits
from enas_lightning.search.module import SearchModule


class LinearSupernet(nn.Module):
    """A stand-in supernet: a linear classifier that ignores the architecture."""

    def __init__(self, in_features: int, classes: int, scale: float = 1.0) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(in_features, classes)
        self.scale = scale

    def forward(self, x, arch):
        return self.scale * self.fc(x.flatten(1))


def make_module(cfg, scale: float = 1.0) -> SearchModule:
    splits = load_splits(cfg.dataset, holdout=True)
    c, h, w = splits.image_shape
    data = DeviceSplits(splits, pad=cfg.dataset.pad, flip=cfg.dataset.flip)
    net = LinearSupernet(c * h * w, splits.num_classes, scale)
    return SearchModule(net, build_controller(cfg), data, cfg)


def fit(module: SearchModule, cfg, tmp_path, epochs: int = 1):
    trainer = build_trainer(cfg, "search", tmp_path, epochs, [], False)
    trainer.fit(module)
    return trainer


def sgdr(epoch: int, lr_max: float, lr_min: float, t0: int = 10, t_mul: int = 2) -> float:
    start, period = 0, t0
    while epoch >= start + period:
        start, period = start + period, period * t_mul
    t = epoch - start
    return lr_min + 0.5 * (lr_max - lr_min) * (1 + math.cos(math.pi * t / period))


def test_sgdr_schedule(tiny_cfg) -> None:
    module = make_module(tiny_cfg)
    (child, _), (sched,) = module.configure_optimizers()
    lrs = []
    for _ in range(151):
        lrs.append(child.param_groups[0]["lr"])
        sched.step()
    lr_max, lr_min = 0.05, 5e-4
    assert tiny_cfg.search.optim.lr_max == lr_max and tiny_cfg.search.optim.lr_min == lr_min
    for e in range(151):
        assert lrs[e] == pytest.approx(sgdr(e, lr_max, lr_min), rel=1e-6), e
    assert lrs[0] == pytest.approx(lr_max)
    assert lrs[9] == pytest.approx(lr_min + 0.5 * (lr_max - lr_min) * (1 + math.cos(0.9 * math.pi)))
    for restart in (10, 30, 70, 150):
        assert lrs[restart] == pytest.approx(lr_max)
        assert lrs[restart - 1] < 0.05 * lr_max
    assert lrs[29] == pytest.approx(
        lr_min + 0.5 * (lr_max - lr_min) * (1 + math.cos(math.pi * 19 / 20))
    )


def test_scheduler_steps_once_per_epoch(make_cfg, tmp_path) -> None:
    cfg = make_cfg(["controller=random", "search.child_batches=2", "search.optim.t0=1"])
    module = make_module(cfg)
    fit(module, cfg, tmp_path, epochs=2)
    # T_0 = 1: epoch 0 at lr_max, the restart at epoch 1 at lr_max again, the summaries record it
    assert [h.lr for h in module.history] == pytest.approx([0.05, 0.05])
    cfg = make_cfg(["controller=random", "search.child_batches=1", "search.optim.t0=4"])
    module = make_module(cfg)
    fit(module, cfg, tmp_path, epochs=3)
    assert [h.lr for h in module.history] == pytest.approx(
        [sgdr(e, 0.05, 5e-4, 4) for e in range(3)]
    )


def one_plain_sgd_step(lr: float) -> list[str]:
    """One child step of plain SGD (no momentum, no decay) at ``lr``: the update is -lr * grad."""
    return [
        "controller=random",
        "search.epochs=1",
        "search.child_batches=1",
        f"search.optim.lr_max={lr}",
        "search.optim.momentum=0",
        "search.optim.nesterov=false",
        "search.optim.l2_reg=0",
    ]


def test_gradient_clipping_clips_the_applied_update(make_cfg, tmp_path) -> None:
    lr = 0.1
    cfg = make_cfg([*one_plain_sgd_step(lr), "search.optim.grad_clip_mode=global"])
    module = make_module(cfg, scale=1e4)  # a huge loss scale: gradient norm far above 5
    before = [p.detach().clone() for p in module.supernet.parameters()]
    fit(module, cfg, tmp_path)
    delta = torch.cat(
        [
            (p.detach() - b).flatten()
            for p, b in zip(module.supernet.parameters(), before, strict=True)
        ]
    )
    assert delta.norm() == pytest.approx(lr * 5.0, rel=1e-4)
    # without the bound the same step is far larger
    cfg.search.optim.grad_clip = 0.0
    module = make_module(cfg, scale=1e4)
    fit(module, cfg, tmp_path)
    delta = torch.cat(
        [
            (p.detach() - b).flatten()
            for p, b in zip(module.supernet.parameters(), before, strict=True)
        ]
    )
    assert delta.norm() > 100 * lr * 5.0


def test_per_tensor_clipping_bounds_each_tensors_applied_update(make_cfg, tmp_path) -> None:
    """grad_clip_mode=norm (the default, the authors' clip_mode="norm"): the weight's and the
    bias's gradients are each clipped to norm 5, so each one's SGD update has norm lr * 5."""
    lr = 0.1
    cfg = make_cfg(one_plain_sgd_step(lr))
    assert cfg.search.optim.grad_clip_mode == "norm"
    module = make_module(cfg, scale=1e4)  # both gradients far above norm 5
    before = [p.detach().clone() for p in module.supernet.parameters()]
    fit(module, cfg, tmp_path)
    for p, b in zip(module.supernet.parameters(), before, strict=True):
        assert float((p.detach() - b).norm()) == pytest.approx(lr * 5.0, rel=1e-4)


class DropoutSupernet(nn.Module):
    """A stand-in whose prediction only dropout decides (equal logits, some dropped: the
    argmax is the first kept class); records its own mode per call."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.classes = classes
        self.drop = nn.Dropout(0.5)
        self.modes: list[bool] = []

    def forward(self, x, arch):
        self.modes.append(self.training)  # True would mean the aux head is computed too
        return self.drop(torch.ones(len(x), self.classes, device=x.device))


@pytest.mark.parametrize("reward_dropout", [True, False])
def test_reward_scoring_dropout_follows_the_setting(make_cfg, reward_dropout: bool) -> None:
    """As the authors' micro search (build_valid_rl runs the child with is_training=True):
    dropout is on while rewards are scored unless search.reward_dropout=false; the supernet
    itself stays in eval mode (no aux head) and is back in train mode afterwards."""
    cfg = make_cfg([f"search.reward_dropout={str(reward_dropout).lower()}"])
    module = make_module(cfg)
    module.supernet = DropoutSupernet(module.data.splits.num_classes)
    module.val_shard = torch.arange(len(module.data.val_y))
    archs = module.controller.sample_archs(8, torch.Generator().manual_seed(0))

    def score(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)  # dropout's masks
        return module.rewards(archs, torch.Generator().manual_seed(0))

    first, again, other = score(1), score(1), score(2)
    assert torch.equal(first, again)  # seeded: the same masks
    assert torch.equal(first, other) != reward_dropout  # other masks change the scores
    assert module.supernet.modes == [False] * 24
    assert module.supernet.training and module.supernet.drop.training


def test_every_child_step_trains_in_train_mode(tiny_cfg, tmp_path) -> None:
    """The child step calls ``train()`` only when the supernet is not in train mode (a walk
    over every module is costly): child forwards still run in train mode after the controller
    phase's scoring, and after something left the supernet in eval mode."""
    import pytorch_lightning as pl

    module = make_module(tiny_cfg)
    modes: list[tuple[bool, bool]] = []  # (grad enabled: a child step, every module training)

    def record(net: nn.Module, args) -> None:
        modes.append((torch.is_grad_enabled(), all(m.training for m in net.modules())))

    module.supernet.register_forward_pre_hook(record)

    class LeaveInEval(pl.Callback):
        def on_train_epoch_start(self, trainer, pl_module) -> None:
            pl_module.supernet.eval()

    trainer = build_trainer(tiny_cfg, "search", tmp_path, 2, [LeaveInEval()], False)
    trainer.fit(module)
    child = [training for grad, training in modes if grad]
    scored = [training for grad, training in modes if not grad]
    assert len(child) == 2 * module.loader.child_batches and all(child)
    assert scored and not any(scored)  # the controller phase scored in eval mode


def test_child_phase_leaves_the_controller_alone(make_cfg, tmp_path) -> None:
    # train_every=2: no controller phase after epoch 0
    cfg = make_cfg(["search.child_batches=3", "controller.train_every=2"])
    module = make_module(cfg)
    ctrl = [p.detach().clone() for p in module.controller.parameters()]
    net = [p.detach().clone() for p in module.supernet.parameters()]
    fit(module, cfg, tmp_path)
    for p, b in zip(module.controller.parameters(), ctrl, strict=True):
        assert torch.equal(p, b) and p.grad is None
    assert any(
        not torch.equal(p, b) for p, b in zip(module.supernet.parameters(), net, strict=True)
    )
    assert float(module.baseline) == 0.0


def test_controller_phase_moves_baseline_into_the_checkpoint(tiny_cfg, tmp_path) -> None:
    module = make_module(tiny_cfg)
    assert "baseline" in module.state_dict()
    ctrl = [p.detach().clone() for p in module.controller.parameters()]
    trainer = fit(module, tiny_cfg, tmp_path)
    rewards = [s["reward"] for s in module.epoch_samples]
    assert len(rewards) == tiny_cfg.controller.train_steps * tiny_cfg.controller.num_aggregate
    # b <- b - (1 - 0.99)(b - r), once per rewarded architecture, in order, from 0
    b = 0.0
    for r in rewards:
        b -= 0.01 * (b - r)
    assert float(module.baseline) == pytest.approx(b, rel=1e-5)
    assert float(module.baseline) > 0
    assert any(
        not torch.equal(p, q) for p, q in zip(module.controller.parameters(), ctrl, strict=True)
    )
    path = tmp_path / "search.ckpt"
    trainer.save_checkpoint(path)
    state = torch.load(path, weights_only=False)["state_dict"]
    assert torch.equal(state["baseline"], module.baseline)
    fresh = make_module(tiny_cfg)
    fresh.load_state_dict(state)
    assert float(fresh.baseline) == float(module.baseline)


def test_each_sample_is_judged_against_the_baseline_after_its_own_update(
    tiny_cfg, tmp_path
) -> None:
    """The controller loss is mean(-log p_i (r_i - b_i)), b_i the baseline after sample i's
    update (the reference's per-sample controller step), not one baseline for the batch."""
    module = make_module(tiny_cfg)
    samples, losses = [], []
    real_forward, real_backward = module.controller.forward, module.manual_backward

    def forward(*args, **kwargs):
        out = real_forward(*args, **kwargs)
        if out.log_prob.requires_grad:  # the controller phase, not the frozen child sampling
            samples.append(out)
        return out

    def manual_backward(loss, *args, **kwargs):
        losses.append(loss.detach())
        return real_backward(loss, *args, **kwargs)

    module.controller.forward = forward
    module.manual_backward = manual_backward
    fit(module, tiny_cfg, tmp_path)
    n = tiny_cfg.controller.num_aggregate
    steps = tiny_cfg.controller.train_steps
    ctrl_losses = losses[-steps:]
    assert len(samples) == steps and len(module.epoch_samples) == steps * n
    b = 0.0
    for k in range(steps):
        rewards = [s["reward"] for s in module.epoch_samples[k * n : (k + 1) * n]]
        log_p = samples[k].log_prob.detach().tolist()
        terms = []
        for r, lp in zip(rewards, log_p, strict=True):
            b -= 0.01 * (b - r)
            terms.append(-lp * (r - b))
        assert float(ctrl_losses[k]) == pytest.approx(sum(terms) / n, rel=1e-5, abs=1e-9)
        # one baseline for the whole update (the last one) gives a different loss
        shared = sum(-lp * (r - b) for r, lp in zip(rewards, log_p, strict=True)) / n
        assert float(ctrl_losses[k]) != pytest.approx(shared, rel=1e-5, abs=1e-9)
    assert float(module.baseline) == pytest.approx(b, rel=1e-5)


def test_controller_phase_every_other_epoch_runs_after_a_shorter_epoch(make_cfg, tmp_path) -> None:
    """An epoch without a controller phase is shorter; the next one still gets its phase
    (Lightning takes a loader's length once per load, so the search reloads it per epoch)."""
    cfg = make_cfg(["search.child_batches=2", "controller.train_every=2"])
    module = make_module(cfg)
    trainer = fit(module, cfg, tmp_path, epochs=2)
    assert len(module.epoch_samples) == cfg.controller.train_steps * cfg.controller.num_aggregate
    assert [h.controller_ran for h in module.history] == [False, True]
    assert trainer.global_step > 0 and float(module.baseline) != 0.0


def assert_children_are_uniform(module: SearchModule, cfg) -> None:
    """Epoch 1's children were the uniform distribution's draws (controller=random's), not the
    controller's own, from the same per-epoch generator."""
    ops = tuple(cfg.search_space.ops)
    children = [a.to_ints(ops) for a in module.child_archs(1)]
    gen = module.generator(0, 1, -1)
    uniform = module.controller.sample_archs(len(children), gen, uniform=True)
    gen = module.generator(0, 1, -1)
    own = module.controller.sample_archs(len(children), gen)
    assert children == [a.to_ints(ops) for a in uniform]
    assert children != [a.to_ints(ops) for a in own]


def test_warmup_epochs_sample_uniformly_and_leave_the_controller_alone(make_cfg, tmp_path) -> None:
    cfg = make_cfg(["search.warmup_epochs=2"])
    module = make_module(cfg)
    ctrl = {k: v.clone() for k, v in module.controller.state_dict().items()}
    trainer = fit(module, cfg, tmp_path, epochs=2)
    for k, v in module.controller.state_dict().items():
        assert torch.equal(v, ctrl[k]), k
    assert all(p.grad is None for p in module.controller.parameters())
    assert float(module.baseline) == 0.0 and module.epoch_samples == []
    assert not trainer.optimizers[1].state  # Adam never stepped
    assert [(h.epoch, h.warmup) for h in module.history] == [(0, True), (1, True)]
    assert not any(h.controller_ran for h in module.history)  # no controller phase ran
    assert_children_are_uniform(module, cfg)


def test_uniform_children_train_uniform_draws_while_the_controller_learns(
    make_cfg, tmp_path
) -> None:
    """``search.uniform_children``: every child phase trains the uniform distribution's draws,
    and the controller phase still updates the controller (unlike the warm-up)."""
    cfg = make_cfg(["search.uniform_children=true"])
    module = make_module(cfg)
    ctrl = {k: v.clone() for k, v in module.controller.state_dict().items()}
    trainer = fit(module, cfg, tmp_path, epochs=2)
    assert any(not torch.equal(v, ctrl[k]) for k, v in module.controller.state_dict().items())
    assert trainer.optimizers[1].state  # Adam stepped
    assert float(module.baseline) != 0.0 and module.epoch_samples
    assert all(h.controller_ran and not h.warmup for h in module.history)
    assert_children_are_uniform(module, cfg)


def test_epoch_line_marks_warmup_epochs() -> None:
    from types import SimpleNamespace

    from enas_lightning.search.history import EpochSummary
    from enas_lightning.search.progress import EpochLine

    trainer = SimpleNamespace(max_epochs=3, callback_metrics={})
    summary = {"epoch": 0, "baseline": 0.0, "lr": 0.05}
    line = EpochLine.line(trainer, None, EpochSummary(**summary, warmup=True), 1.0)
    assert line.startswith("epoch 1/3 (warm-up) | ")
    line = EpochLine.line(trainer, None, EpochSummary(**summary, warmup=False), 1.0)
    assert line.startswith("epoch 1/3 | ")


def test_negative_warmup_is_refused(make_cfg) -> None:
    from enas_lightning.build import validate
    from enas_lightning.errors import ConfigError

    with pytest.raises(ConfigError, match=r"search.warmup_epochs=-1 is not allowed: at least 0"):
        validate(make_cfg(["search.warmup_epochs=-1"]))


def test_uniform_sampling_is_uniform_whatever_the_controller_learned(make_cfg) -> None:
    """``sample_archs(uniform=True)`` ignores the learned logits (and the op bias), and leaves
    the controller as it was."""
    cfg = make_cfg()
    controller = build_controller(cfg)
    with torch.no_grad():
        controller.b_soft.fill_(0.0)
        controller.b_soft[0, 0] = 50.0  # the first op at its largest (bounded) logit
    gen = torch.Generator().manual_seed(0)
    learned = controller.sample_archs(200, gen)
    uniform = controller.sample_archs(200, gen, uniform=True)
    assert not controller.uniform

    def op_share(archs) -> torch.Tensor:
        ops = torch.tensor([a.to_ints(tuple(cfg.search_space.ops)) for a in archs])
        ops = ops.view(len(archs), 2, -1, 4)[..., 1::2]  # op decisions of both cells
        return torch.bincount(ops.flatten(), minlength=5).float() / ops.numel()

    assert op_share(learned)[0] > 0.27  # about 0.3 with the logits bounded by 1.1 / 2.5
    share = op_share(uniform)
    assert torch.allclose(share, torch.full((5,), 0.2), atol=0.03), share


@pytest.mark.parametrize("controller", ["enas", "random"])
def test_derivation_scores_a_uniform_reference_on_the_same_weights(
    controller, make_cfg, tmp_path
) -> None:
    """K uniformly sampled architectures (their own seeded draw, also under controller=random)
    are scored like the candidates, and every output labels which is which."""
    import csv
    import json

    from enas_lightning.build import build_supernet
    from enas_lightning.tasks.search import write_derivation

    k = 3
    cfg = make_cfg(
        [f"controller={controller}", "search.child_batches=2", f"search.derive_samples={k}"]
    )
    splits = load_splits(cfg.dataset, holdout=True)
    data = DeviceSplits(splits, pad=cfg.dataset.pad, flip=cfg.dataset.flip)
    module = SearchModule(build_supernet(cfg, splits), build_controller(cfg), data, cfg)
    fit(module, cfg, tmp_path)
    d = module.derive()
    learns = controller == "enas"
    assert len(d.candidates) == k + learns and len(d.uniform) == len(d.uniform_accuracies) == k
    # the same scoring function on the same shared weights
    for arch, acc in zip(d.uniform, d.uniform_accuracies, strict=True):
        assert acc == module.accuracy(arch)
    for arch, acc in zip(d.candidates, d.accuracies, strict=True):
        assert acc == module.accuracy(arch)
    ops = tuple(cfg.search_space.ops)
    ints = [a.to_ints(ops) for a in d.uniform]
    gen = module.generator(10**6 + 1, module.current_epoch)
    assert ints == [a.to_ints(ops) for a in module.controller.sample_archs(k, gen, uniform=True)]
    assert ints != [a.to_ints(ops) for a in d.candidates[learns:]]  # not the candidates' draw
    assert d.uniform_mean_acc == pytest.approx(sum(d.uniform_accuracies) / k)
    assert d.controller_mean_acc == pytest.approx(sum(d.accuracies[learns:]) / k)
    assert d.best_acc == max(d.accuracies) and d.best in d.candidates  # never a uniform one
    assert (d.greedy_acc is not None) == learns
    # labelled outputs: the printed rows, best_arch.json, arch_candidates.csv
    report = "\n".join(d.report())
    for label in ("best ", "greedy ", "controller mean ", "uniform mean ", "shared-weight"):
        assert label in report
    assert "random (mean)" not in report
    write_derivation(d, tmp_path, ops)
    saved = json.loads((tmp_path / "best_arch.json").read_text())
    assert saved["val_acc"] == d.best_acc
    assert saved["uniform_mean_val_acc"] == pytest.approx(d.uniform_mean_acc)
    assert saved["controller_mean_val_acc"] == pytest.approx(d.controller_mean_acc)
    assert saved["greedy_val_acc"] == d.greedy_acc and saved["uniform_samples"] == k
    assert "random_mean_val_acc" not in saved and "supernet was trained on" in saved["note"]
    with (tmp_path / "arch_candidates.csv").open() as f:
        rows = list(csv.DictReader(f))
    sources = [r["source"] for r in rows]
    assert sorted(sources) == sorted(["greedy"] * learns + ["controller"] * k + ["uniform"] * k)
    by_source = {
        s: sorted(float(r["val_acc"]) for r in rows if r["source"] == s) for s in set(sources)
    }
    assert by_source["uniform"] == pytest.approx(sorted(d.uniform_accuracies), abs=1e-6)
    derived = next(r for r in rows if r["source"] != "uniform")
    assert derived["arc"] == " ".join(map(str, d.best.to_ints(ops)))


def test_real_supernet_child_phase_runs_with_sparse_gradients(make_cfg, tmp_path) -> None:
    """Each child leaves most supernet weights without a gradient, so their optimizer state
    appears one step at a time; the child optimizer must take that (a fused SGD did not)."""
    from enas_lightning.build import build_supernet

    cfg = make_cfg(["search.child_batches=6", "controller.train_every=2"])
    splits = load_splits(cfg.dataset, holdout=True)
    data = DeviceSplits(splits, pad=cfg.dataset.pad, flip=cfg.dataset.flip)
    module = SearchModule(build_supernet(cfg, splits), build_controller(cfg), data, cfg)
    before = [p.detach().clone() for p in module.supernet.parameters()]
    fit(module, cfg, tmp_path)
    changed = [
        not torch.equal(p, b) for p, b in zip(module.supernet.parameters(), before, strict=True)
    ]
    # some weights trained, and not all of them (the children are subgraphs)
    assert any(changed) and not all(changed)


def test_last_ckpt_is_written_after_every_epoch(make_cfg, tmp_path) -> None:
    """``checkpoints/last.ckpt`` exists (and is the previous epoch's) when each epoch starts."""
    import pytorch_lightning as pl

    from enas_lightning.tasks.search import run_search

    seen: list[int | None] = []
    last = tmp_path / "checkpoints" / "last.ckpt"

    class Probe(pl.Callback):
        def on_train_epoch_start(self, trainer, module) -> None:
            seen.append(
                torch.load(last, map_location="cpu", weights_only=False)["epoch"]
                if last.is_file()
                else None
            )

    cfg = make_cfg(["search.epochs=3", "search.child_batches=2"])
    run_search(cfg, tmp_path, extra_callbacks=(Probe(),))
    assert seen == [None, 0, 1]  # the checkpoint of the epoch that just ended


def test_derivation_runs_on_the_device_the_search_ran_on() -> None:
    """Lightning's teardown leaves the module on the CPU after ``fit``; the derivation must
    not score its 2K+1 children there when the search ran on an accelerator."""
    from types import SimpleNamespace

    from enas_lightning.tasks.search import derive_where_searched

    class Module(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.zeros(2))

        def derive(self) -> str:
            return self.w.device.type

    trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("meta")))
    assert derive_where_searched(trainer, Module()) == "meta"


def test_derivation_batches_are_seeded_random_samples_of_a_class_ordered_split(tiny_cfg) -> None:
    """BatchNorm normalises with each batch's statistics, so a derivation batch must be a random
    sample of the validation split even where the split lists its images class by class (an
    image_folder split does): every image once, mixed classes, the same batches for every
    candidate; a split that fits in one batch keeps its order."""
    from enas_lightning.build import build_supernet
    from enas_lightning.search.scoring import DerivationScoring

    tiny_cfg.search.eval_batch_size = 8
    splits = load_splits(tiny_cfg.dataset, holdout=True)
    data = DeviceSplits(splits, pad=0, flip=False)
    order = torch.argsort(data.val_y, stable=True)  # class by class
    data.val_x, data.val_y = data.val_x[order], data.val_y[order]
    n = len(data.val_y)
    assert n > 2 * 8 and data.val_y.unique().numel() > 1
    module = SearchModule(
        build_supernet(tiny_cfg, splits), build_controller(tiny_cfg), data, tiny_cfg
    )

    def batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
        with DerivationScoring(module) as view:
            return list(view.batches())

    first = batches()
    xs, ys = torch.cat([x for x, _ in first]), torch.cat([y for _, y in first])
    assert len(ys) == n and torch.equal(
        xs.sum((1, 2, 3)).sort().values, data.val_x.sum((1, 2, 3)).sort().values
    )
    assert all(y.unique().numel() > 1 for _, y in first[:2])  # in file order: one class each
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, batches(), strict=True))
    tiny_cfg.search.derive_batches = 1  # the first batch of the same permutation
    assert torch.equal(batches()[0][1], first[0][1])
    tiny_cfg.search.derive_batches = 0
    tiny_cfg.search.eval_batch_size = n
    (whole,) = batches()
    assert torch.equal(whole[1], data.val_y)


def test_controller_plots_are_drawn_every_n_epochs_and_at_the_last(tmp_path, monkeypatch) -> None:
    """``logger.plot_every_n_epochs=2`` on a 5-epoch search redraws the plots after epochs 2, 4
    and 5 (the last); the W&B/TensorBoard images follow the same epochs; 0 is refused."""
    from types import SimpleNamespace

    from enas_lightning.app import run
    from enas_lightning.build import validate
    from enas_lightning.errors import ConfigError
    from enas_lightning.search import artifacts
    from tests.conftest import compose_cfg

    drawn: list[int] = []  # the epochs (1-based) whose history the op-probability plot got
    plot = artifacts.plot_op_probs
    monkeypatch.setattr(
        artifacts, "plot_op_probs", lambda h, *a, **k: (drawn.append(len(h)), plot(h, *a, **k))
    )
    cfg = compose_cfg(tmp_path, ["search.epochs=5", "logger.plot_every_n_epochs=2"])
    run(cfg)
    assert drawn == [2, 4, 5]
    assert (tmp_path / "plots" / "op_probs.png").is_file()
    assert (tmp_path / "plots" / "controller.png").is_file()

    def due(epoch: int, stop: bool = False) -> bool:
        trainer = SimpleNamespace(current_epoch=epoch, max_epochs=5, should_stop=stop)
        return artifacts.plots_due(trainer, 2)

    assert [e for e in range(5) if due(e)] == [1, 3, 4]
    assert due(0, stop=True)  # a search that stops early plots its last epoch
    with pytest.raises(ConfigError, match=r"logger.plot_every_n_epochs=0 is not allowed: at least"):
        validate(compose_cfg(tmp_path / "bad", ["logger.plot_every_n_epochs=0"]))

"""The weight-sharing search: one LightningModule owning the supernet and the controller.

Manual optimisation interleaves the two players. One epoch is one stream of steps
(:class:`~enas_lightning.search.loader.SearchEpoch`): first the child phase, one shared-weight
SGD step per training minibatch, each on a child chosen by the search strategy; then, when due,
the strategy's controller phase (ENAS: ``train_steps`` REINFORCE updates of ``num_aggregate``
sampled children each, rewarded on validation minibatches). The search ends with the
derivation: the strategy's candidates and a uniform reference, scored on the validation split
(each fine-tuned first from the shared weights under ``search.derive_finetune_steps``:
:mod:`enas_lightning.search.finetune`) and, under ``search.derive_prune_keep``, picked again
among the best of them on a copy trained on those alone (:meth:`SearchModule.prune`).
The strategy (:mod:`enas_lightning.strategies`, ``controller.name``) decides what the child
phase trains, what the controller phase does and what the derivation scores; the reward
(:mod:`enas_lightning.rewards`, ``reward.name``) scores children for both the controller phase
and the derivation. In the first ``search.warmup_epochs`` epochs (a supernet warm-up) the
children are sampled uniformly and no controller phase runs, whatever the strategy.

Randomness is counter-based: every step seeds its own generators from
``(seed, rank, epoch, step)``. A resumed run therefore draws exactly the numbers the
uninterrupted run would have drawn without carrying generator states around, and every rank has
its own reproducible stream.

Distributed data parallel (see ``docs/ddp.md``): Lightning wraps this module in
``DistributedDataParallel`` with ``find_unused_parameters=True``. Each rank trains its own
sampled child, so each step uses a different subgraph per rank. Under manual optimisation
Lightning disables DDP's own post-forward hook and instead calls ``prepare_for_backward(loss)``
inside :meth:`manual_backward`, so exactly one DDP backward (one reduction) happens per
``training_step``. DDP then walks the autograd graph from the loss to find the parameters this
rank did not use and contributes zeros for them, so after the all-reduce every rank holds the
average over ranks of each rank's gradient: the gradient of the mean loss over all ranks'
children. Parameters no rank used (a bitmap all-reduced with the gradients) keep ``grad=None``,
and SGD skips them (no weight decay, no momentum update), the same on every rank. The cost: one
graph traversal per step plus an all-reduce of the *whole* supernet's gradient buckets (zeros
for unused parameters), not only of the child's. ``static_graph`` cannot be used (the graph
changes every step) and neither is SyncBatchNorm needed: search BatchNorm keeps no running
statistics. A controller step runs through the same machinery (see
:mod:`enas_lightning.strategies.enas` for how ENAS keeps its baseline identical on every rank).
``tests/test_ddp.py`` checks all of this bit for bit on two CPU processes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from enas_lightning.build import build_reward, build_search_strategy
from enas_lightning.checkpointing import check_fingerprint, space_fingerprint
from enas_lightning.config import Config
from enas_lightning.controller.base import Controller
from enas_lightning.data.device import DeviceSplits
from enas_lightning.data.loader import EpochBatches
from enas_lightning.grad_layout import match_grad_strides
from enas_lightning.optim import (
    clip_gradients_,
    ensure_momentum_buffers,
    fill_missing_gradients_,
    fused_supported,
    optimizer_grads,
    sgd_with_sgdr,
)
from enas_lightning.rewards import Reward, get_reward
from enas_lightning.search.derivation import Derivation, budget_of
from enas_lightning.search.finetune import ChildFineTuning, pruned_copy, uniformly_trained
from enas_lightning.search.history import EpochSummary
from enas_lightning.search.loader import CHILD, SearchEpoch
from enas_lightning.search.nonfinite import NonFiniteCount
from enas_lightning.search.scoring import ControllerScoring, DerivationScoring
from enas_lightning.seeding import seed_step, step_seed
from enas_lightning.spaces import ArchRecord, Cost, get_space
from enas_lightning.strategies import SearchStrategy
from enas_lightning.tracking import log_step_and_epoch


class SearchModule(pl.LightningModule):
    """A search with shared weights: the supernet's training, the strategy's controller phase,
    the derivation.

    Args:
        supernet: ``forward(x [B, C, H, W], arch) -> logits [B, classes]`` (or ``(logits, aux)``).
        controller: the space's controller: samples architectures (uniformly too); the ENAS
            strategy trains it.
        data: the splits, moved to the training device at fit start.
        cfg: the whole config (the ``search``, ``controller``, ``search_space``, ``final`` and
            ``seed`` parts are used).
        strategy: the search strategy; ``None``: the one ``controller.name`` names.
        reward: the reward; ``None``: the one ``reward.name`` names.
    """

    def __init__(
        self,
        supernet: nn.Module,
        controller: Controller,
        data: DeviceSplits,
        cfg: Config,
        strategy: SearchStrategy | None = None,
        reward: Reward | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.supernet = supernet
        self.controller = controller
        self.space = get_space(cfg.search_space.name)
        # not "strategy": Lightning's (DDP) strategy is trainer.strategy
        self.search_strategy = strategy if strategy is not None else build_search_strategy(cfg)
        self.reward = reward if reward is not None else build_reward(cfg)
        self.data = data
        self.cfg = cfg
        self.seed = int(cfg.seed)
        self.history: list[EpochSummary] = []  # one summary per epoch (rank 0's view)
        self.epoch_samples: list[dict[str, Any]] = []  # this epoch's rewarded architectures
        # child steps skipped for a non-finite gradient, counted on the device
        self.nonfinite = NonFiniteCount(cfg.search.max_nonfinite)
        self.loader: SearchEpoch | None = None
        self.derivation: Derivation | None = None
        self._child_archs: tuple[int, list[ArchRecord]] | None = None  # (epoch, archs) cache
        # search.derive_uniform_steps: the uniformly trained copy the derivation scores with, and
        # the (epoch, steps, lr) it was trained for (a plain attribute: never checkpointed)
        self._uniform_copy: tuple[tuple[int, int, float], nn.Module] | None = None
        self._epoch_stats: dict[str, Tensor] = {}
        self.archs_per_update = 0  # archs rewarded by the last controller update, all ranks
        self._resumed_epoch_state: dict[str, Any] | None = None
        self._costs: dict[Any, Cost] = {}
        self._latencies: dict[Any, float] = {}
        self._latency_table: Any = None  # loaded on the first latency asked for
        self.search_strategy.attach(self)

    # ----------------------------------------------------------------- set-up
    def configure_optimizers(self):
        o = self.cfg.search.optim
        # fused (one kernel, and it can skip a non-finite step on the device: see child_step)
        # wherever torch has the kernels; the momentum buffers are made up front in
        # on_train_start because each child leaves most supernet weights without a gradient
        fused = fused_supported(self.supernet.parameters())
        child, sgdr = sgd_with_sgdr(
            self.supernet.parameters(), o, **({"fused": True} if fused else {"foreach": True})
        )
        return [child, *self.search_strategy.optimizers(self)], [sgdr]

    def child_optimizer(self) -> Any:
        """The supernet's SGD (Lightning's wrapper; ``.optimizer`` is torch's)."""
        opts = self.optimizers()
        return opts[0] if isinstance(opts, list) else opts  # a list only when there are several

    def configure_model(self) -> None:
        """Lightning hook, before the strategy moves and wraps the module (DDP lays out its
        gradient buckets after the parameters) and builds the optimizers."""
        if self.cfg.search.channels_last:
            self.supernet.to(memory_format=torch.channels_last)
        if self.trainer.world_size > 1:  # DDP's buckets take the gradients as is (grad_layout)
            match_grad_strides(self.supernet)

    def on_fit_start(self) -> None:
        self.data.to(self.device, channels_last=self.cfg.search.channels_last)
        n_val = len(self.data.val_y)
        world = self.trainer.world_size
        # each rank rewards its children on its own shard of the validation split
        self.val_shard = torch.arange(self.global_rank, n_val, world, device=self.device)

    def train_dataloader(self) -> SearchEpoch:
        s = self.cfg.search
        child = EpochBatches(
            len(self.data.train_y),
            s.batch_size,
            seed=self.seed,
            rank=self.global_rank,
            world_size=self.trainer.world_size,
            setting="search.batch_size",
        )
        # called again every epoch (the stream's length depends on the epoch), so it starts at
        # the current one
        self.loader = SearchEpoch(
            child,
            self.search_strategy.controller_steps(self.cfg),
            self.cfg.controller.train_every,
            s.child_batches,
            warmup_epochs=s.warmup_epochs,
            epoch=self.current_epoch,
        )
        return self.loader

    def generator(self, *keys: int) -> torch.Generator:
        g = torch.Generator(device=self.device)
        g.manual_seed(step_seed(self.seed, *keys))
        return g

    def uniform_archs(self, n: int, generator: torch.Generator) -> list[ArchRecord]:
        """``n`` architectures sampled uniformly from the space (every decision uniform)."""
        return self.controller.sample_archs(n, generator, uniform=True)

    # ----------------------------------------------------------------- steps
    def training_step(self, batch: tuple[int, Tensor], batch_idx: int) -> None:
        phase, payload = batch
        epoch = self.current_epoch
        # this step's generator, and torch's global one for dropout
        gen = seed_step(self.device, self.seed, self.global_rank, epoch, batch_idx)
        if phase == CHILD:
            self.child_step(payload, batch_idx, gen)
        else:
            self.controller_step(int(payload), gen)
        assert self.loader is not None
        self.loader.consumed = batch_idx + 1

    def child_archs(self, epoch: int) -> list[ArchRecord]:
        """This rank's children for every child step of ``epoch``, chosen in one batch.

        The strategy's (the frozen controller's samples for ENAS), asked once per epoch: one
        host-device transfer per epoch instead of one per step. Seeded per (rank, epoch): a
        resumed epoch gets the same children. In a warm-up epoch (``search.warmup_epochs``),
        and in every epoch under ``search.uniform_children``, they are sampled uniformly.
        """
        if self._child_archs is None or self._child_archs[0] != epoch:
            assert self.loader is not None
            gen = self.generator(self.global_rank, epoch, -1)
            n = self.loader.child_batches
            if self.loader.warmup(epoch) or self.cfg.search.uniform_children:
                archs = self.uniform_archs(n, gen)
            else:
                archs = self.search_strategy.child_archs(self, n, gen)
            self._child_archs = (epoch, archs)
        return self._child_archs[1]

    def all_ranks_agree(self, ok: Tensor) -> bool:
        """``True`` when ``ok`` holds on every rank (one collective under DDP)."""
        if self.trainer.world_size > 1:
            ok = self.trainer.strategy.reduce(ok.float(), reduce_op="min") > 0
        return bool(ok)

    def child_step(self, idx: Tensor, batch_idx: int, gen: torch.Generator) -> None:
        """One shared-weight SGD step of this step's child.

        Nothing here waits for the device (on a GPU the host queues step after step): a step
        whose gradient is non-finite is skipped *on the device* by the fused SGD kernel's
        ``found_inf`` flag, counted on the device, and the count is checked against
        ``search.max_nonfinite`` every ``trainer.log_every_n_steps`` child steps and at the end
        of the child phase (:class:`~enas_lightning.search.nonfinite.NonFiniteCount`). The
        gradient norm is taken after DDP's all-reduce, so every rank skips the same steps
        without another collective.
        """
        x, y = self.data.train_batch(idx, gen)
        arch = self.child_archs(self.current_epoch)[batch_idx]
        if not self.supernet.training:
            # Only where something left it in eval mode (the scoring views put it back in train
            # mode on exit): train() walks every module of the supernet, about 4,000 in the
            # quickstart's micro one, which cost 0.05 s a child step on a 2-core CPU.
            self.supernet.train()
        loss, logits = self.child_loss(self.supernet, x, y, arch)
        child_opt = self.child_optimizer()
        child_opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        sgd = child_opt.optimizer
        skip = ~torch.isfinite(self.clip_child_gradients(sgd))
        if self.cfg.search.optim.dense_weight_decay:  # decay and momentum for unsampled weights
            fill_missing_gradients_(sgd)
        self.nonfinite.count(skip)
        if sgd.defaults.get("fused"):
            sgd.found_inf = skip.float()  # read by torch's fused SGD: no update where 1
            child_opt.step()
        elif not bool(skip):  # no fused kernels for this device: the host has to decide
            child_opt.step()
        acc = (logits.detach().argmax(1) == y).float().mean()
        n = len(y)
        # not prog_bar=True: Lightning turns progress-bar values into Python numbers after every
        # step, a host-device wait per child step; SearchProgressBar shows these two instead,
        # read at the logging interval
        log_step_and_epoch(self, "child/loss", loss.detach(), batch_size=n)
        log_step_and_epoch(self, "child/acc", acc, batch_size=n)
        self.log(
            "child/nonfinite_total", self.nonfinite.device_total.float(), on_step=True, batch_size=n
        )
        assert self.loader is not None
        if self.loader.host_reads_due(batch_idx, self.trainer.log_every_n_steps):
            self.nonfinite.check(self.current_epoch)

    def child_loss(
        self, network: nn.Module, x: Tensor, y: Tensor, arch: ArchRecord
    ) -> tuple[Tensor, Tensor]:
        """The child's training loss (0-dim: cross-entropy, plus ``search_space.aux_weight``
        times the aux head's) and its logits ``[B, classes]``, of ``network`` (the supernet, or
        a candidate's fine-tuned copy) on images ``x [B, C, H, W]`` with labels ``y [B]``."""
        out = network(x, arch)
        logits, aux = out if isinstance(out, tuple) else (out, None)
        loss = F.cross_entropy(logits, y)
        if aux is not None:
            loss = loss + self.cfg.search_space.aux_weight * F.cross_entropy(aux, y)
        return loss, logits

    def clip_child_gradients(self, sgd: torch.optim.Optimizer) -> Tensor:
        """Clip the supernet's gradients to ``search.optim.grad_clip`` in the mode
        ``search.optim.grad_clip_mode`` (``norm``: each tensor on its own, the default).

        Returns the total gradient norm before clipping (a 0-dim device tensor). The clip is
        done here, not by Lightning's ``clip_gradients``: that refuses fused optimizers under
        mixed precision, and bf16-mixed has no loss scale to undo first. The clipped gradients
        are the ones ``step()`` applies (the reference computed clipped gradients and then
        applied the unclipped ones).
        """
        o = self.cfg.search.optim
        return clip_gradients_(optimizer_grads(sgd), o.grad_clip, o.grad_clip_mode)

    def controller_step(self, k: int, gen: torch.Generator) -> None:
        """Step ``k`` of the controller phase: the strategy's."""
        self.search_strategy.controller_step(self, k, gen)

    @torch.no_grad()
    def rewards(self, archs: list[ArchRecord], generator: torch.Generator) -> Tensor:
        """The reward ``[n]`` of each child in the controller phase (on the device): each on
        its own random validation minibatch of this rank's shard, drawn with ``generator``
        (see :mod:`enas_lightning.search.scoring` for the network's mode)."""
        with ControllerScoring(self, generator) as shared:
            return self.reward(archs, shared)

    def record_update(
        self, k: int, archs: list[ArchRecord], rewards: Tensor, stats: dict[str, Tensor]
    ) -> None:
        """Keep controller update ``k``'s rewarded architectures (``sampled_archs.csv``) and
        its statistics (0-dim tensors; ``op_probs`` ``[D, num_ops]``), averaged over the
        epoch's updates into its :class:`~enas_lightning.search.history.EpochSummary`
        (``reward``, ``entropy``, ``op_probs`` and the rest as space statistics)."""
        for key, value in stats.items():
            self._epoch_stats[key] = self._epoch_stats.get(key, 0) + value
        self._epoch_stats["n"] = self._epoch_stats.get("n", 0) + 1
        self.epoch_samples += [
            {"epoch": self.current_epoch, "update": k, "arch": a, "reward": float(r)}
            for a, r in zip(archs, rewards.tolist(), strict=True)
        ]
        kind = self.reward.cost_name(self.cfg)
        if kind is not None and archs:
            # the mean cost of the update's children (this rank's), next to the reward
            mean = sum(self.cost_value(a, kind) for a in archs) / len(archs)
            value = torch.tensor(float(mean), device=self.device)
            log_step_and_epoch(self, f"ctrl/cost_{kind}", value)
            self._epoch_stats[f"cost_{kind}"] = self._epoch_stats.get(f"cost_{kind}", 0) + value

    # ----------------------------------------------------------------- epochs
    def on_train_start(self) -> None:
        # after the optimizer states were restored (resume): buffers where still missing, and
        # laid out like their parameters (a checkpoint may come from a contiguous run)
        child_opt = self.child_optimizer().optimizer
        if child_opt.defaults.get("fused"):
            ensure_momentum_buffers(child_opt)
        self.nonfinite.start(self.device)
        # Lightning skips on_train_epoch_start when it resumes in the middle of an epoch: put
        # back what the first part of that epoch recorded (saved by on_save_checkpoint)
        state, self._resumed_epoch_state = self._resumed_epoch_state, None
        if state is not None and state["epoch"] == self.current_epoch:
            self.epoch_samples = state["samples"]
            self._epoch_stats = {
                k: v.to(self.device) if isinstance(v, Tensor) else v
                for k, v in state["stats"].items()
            }

    def on_train_epoch_start(self) -> None:
        self.epoch_samples = []
        self._epoch_stats = {}

    def on_train_epoch_end(self) -> None:
        # SGDR moves the learning rate once per epoch: logged here, not per step (a Python
        # number logged per step is a host-to-device copy that waits for the device)
        # the same on every rank; sync_dist keeps Lightning from warning under DDP
        lr = self.child_optimizer().param_groups[0]["lr"]
        self.log("lr", lr, on_step=False, on_epoch=True, sync_dist=True)
        self.summarize_epoch()
        self.lr_schedulers().step()

    def summarize_epoch(self) -> None:
        """Append this epoch's :class:`~enas_lightning.search.history.EpochSummary` to
        ``history`` (once per epoch): the controller phase's means of its per-update
        statistics, when one ran, and the strategy's baseline and greedy architecture."""
        if self.history and self.history[-1].epoch == self.current_epoch:
            return
        assert self.loader is not None
        baseline = self.search_strategy.baseline(self)
        lr = self.child_optimizer().param_groups[0]["lr"]
        op_probs: dict[str, list[float]] | None = None
        stats: dict[str, float] = {}
        n = self._epoch_stats.pop("n", 0)
        if n:
            probs = self._epoch_stats.pop("op_probs", None)
            if probs is not None:
                labels = self.controller.op_labels()
                op_probs = dict(zip(labels, (probs / n).tolist(), strict=True))
            stats = {k: float(v / n) for k, v in self._epoch_stats.items()}
        summary = EpochSummary(
            epoch=self.current_epoch,
            # uniform children and no controller phase (search.warmup_epochs)
            warmup=self.loader.warmup(self.current_epoch),
            baseline=baseline,
            lr=lr,
            op_probs=op_probs,
            reward=stats.pop("reward", None),
            entropy=stats.pop("entropy", None),
            space_stats=stats,  # what is left: the space's own (e.g. skip_rate)
            greedy_arch=self.search_strategy.greedy_arch(self),
        )
        self.history.append(summary)

    # ----------------------------------------------------------------- derivation
    @torch.no_grad()
    def score(
        self,
        archs: list[ArchRecord],
        reward: Reward | None = None,
        keys: list[int] | None = None,
        source: nn.Module | None = None,
    ) -> Tensor:
        """The derivation's score ``[n]`` of each architecture with the shared weights (float64
        for the built-in rewards): the configured reward, or ``reward``, on the derivation's
        validation batches (``search.derive_batches``, batch-statistics BN, no dropout).
        ``source``: other weights of the supernet's layout to score on instead (a trained copy,
        as the experiments' probes make); default :meth:`scoring_supernet`.

        With ``search.derive_uniform_steps`` > 0 they are scored on a copy of the shared weights
        trained that much more on uniform children (:meth:`scoring_supernet`). With
        ``search.derive_finetune_steps`` > 0 each architecture is scored on its own copy of
        those weights, fine-tuned first (:mod:`enas_lightning.search.finetune`) with the
        minibatches of its key in ``keys`` (default: its position). The shared weights stay as
        they are.
        """
        reward = reward or self.reward
        source = self.scoring_supernet() if source is None else source
        if self.cfg.search.derive_finetune_steps == 0:
            with DerivationScoring(self, source) as shared:
                return reward(archs, shared)
        keys = list(range(len(archs))) if keys is None else keys
        finetune = ChildFineTuning(self, source)
        scores = []
        for arch, key in zip(archs, keys, strict=True):
            with DerivationScoring(self, finetune(arch, key)) as shared:
                scores.append(reward([arch], shared))
        return torch.cat(scores)

    def scoring_supernet(self) -> nn.Module:
        """The weights the derivation scores with: the supernet, or under
        ``search.derive_uniform_steps`` > 0 its uniformly trained copy
        (:func:`~enas_lightning.search.finetune.uniformly_trained`), trained once per epoch and
        setting and kept: the derivation and ``task=fidelity`` score many candidates on it."""
        s = self.cfg.search
        if s.derive_uniform_steps == 0:
            return self.supernet
        key = (self.current_epoch, int(s.derive_uniform_steps), float(s.derive_uniform_lr))
        if self._uniform_copy is None or self._uniform_copy[0] != key:
            self._uniform_copy = None  # free the old copy before training a new one
            self._uniform_copy = (key, uniformly_trained(self))
        return self._uniform_copy[1]

    def accuracy(self, arch: ArchRecord, key: int = 0) -> float:
        """Validation accuracy of one child with the shared weights, scored as the derivation
        scores (whatever the configured reward; fine-tuned first with the minibatches of
        ``key`` under ``search.derive_finetune_steps``)."""
        return float(self.score([arch], get_reward("accuracy"), keys=[key])[0])

    def cost(self, arch: ArchRecord) -> Cost:
        """Parameters and multiply-adds of ``arch``'s standalone network (``final.*``),
        counted once per architecture."""
        key = tuple(arch.to_ints(tuple(self.cfg.search_space.ops)))
        if key not in self._costs:
            splits = self.data.splits
            f = self.space.standalone_final(self.cfg.final, arch, self.cfg.search_space)
            self._costs[key] = self.space.cost(f, arch, splits.num_classes, splits.image_shape)
        return self._costs[key]

    def cost_value(self, arch: ArchRecord, kind: str) -> float:
        """``params``, ``madds`` or ``latency`` (predicted ms, from the latency table) of
        ``arch``'s standalone network, each counted once per architecture."""
        if kind != "latency":
            return float(getattr(self.cost(arch), kind))
        key = tuple(arch.to_ints(tuple(self.cfg.search_space.ops)))
        if key not in self._latencies:
            from enas_lightning.data.datasets import data_shape
            from enas_lightning.latency.table import load_table, predict_ms

            classes, shape = data_shape(self.cfg.dataset)
            if self._latency_table is None:
                self._latency_table = load_table(self.cfg, shape, classes)
            self._latencies[key] = predict_ms(self._latency_table, self.cfg, arch, shape)
        return self._latencies[key]

    @torch.no_grad()
    def derive(self) -> Derivation:
        """Score the strategy's candidates (K samples plus the greedy one for ENAS) with the
        reward, keep the best; score K uniformly sampled architectures the same way as the
        random reference (each fine-tuned first under ``search.derive_finetune_steps``).

        The reference has its own seed (for ``controller=random`` the candidates are uniform
        too, but another draw). Every rank samples the same architectures (shared seeds),
        scores its share of them on the whole validation split, and the scores are summed
        across ranks, so every rank derives the same architecture.
        """
        self.data.to(self.device, channels_last=self.cfg.search.channels_last)
        k = self.cfg.search.derive_samples
        gen = self.generator(10**6, self.current_epoch)  # same on every rank
        candidates, greedy_index = self.search_strategy.candidates(self, k, gen)
        gen = self.generator(10**6 + 1, self.current_epoch)
        uniform = self.uniform_archs(k, gen)
        scored = [*candidates, *uniform]
        # keyed by position: a candidate's fine-tuning is the same on whichever rank
        values = self.score_on_ranks(scored, list(range(len(scored))))
        n = len(candidates)
        latency = self.uses_latency()
        costs = [self.cost_row(a, latency) for a in scored]
        self.derivation = Derivation(
            candidates,
            values[:n],
            greedy_index,
            uniform,
            values[n:],
            metric=self.reward.metric,
            finetune_steps=self.cfg.search.derive_finetune_steps,
            finetune_lr=float(self.cfg.search.derive_finetune_lr),
            uniform_steps=self.cfg.search.derive_uniform_steps,
            uniform_lr=float(self.cfg.search.derive_uniform_lr),
            costs=costs[:n],
            uniform_costs=costs[n:],
            budget=budget_of(self.cfg.get("derive")),
            param_free_adjust=self.cfg.search.param_free_adjust,
        )
        if self.cfg.search.derive_prune_keep > 0:
            self.derivation = self.prune(self.derivation)
        return self.derivation

    def score_on_ranks(
        self, archs: list[ArchRecord], keys: list[int], source: nn.Module | None = None
    ) -> list[float]:
        """:meth:`score` of ``archs`` (fine-tuning keys ``keys``), each rank scoring its share
        and the scores summed across ranks, so every rank holds them all."""
        world = self.trainer.world_size if self._trainer is not None else 1
        rank = self.global_rank if self._trainer is not None else 0
        scores = torch.zeros(len(archs), device=self.device)
        mine = list(range(rank, len(archs), world))
        if mine:
            picked = [archs[i] for i in mine]
            scores[mine] = self.score(picked, keys=[keys[i] for i in mine], source=source).to(
                scores
            )
        if world > 1:
            scores = self.trainer.strategy.reduce(scores, reduce_op="sum")
        return scores.tolist()

    @torch.no_grad()
    def prune(self, derivation: Derivation) -> Derivation:
        """``derivation`` with its pick made again among its best candidates
        (``search.derive_prune_keep``; Ning et al. 2021): the ``derive_prune_keep`` best by
        their first scores (within any budget, :meth:`Derivation.order`) stay, a copy of the
        weights they were scored on trains ``search.derive_prune_steps`` SGD steps on uniform
        draws from them (:func:`~enas_lightning.search.finetune.pruned_copy`), they are scored
        again on it by the same reward and the best there is derived. The shared weights, the
        optimizers and the run's random streams stay as they were; every rank trains the same
        copy and derives the same architecture."""
        s = self.cfg.search
        kept = derivation.order()[: int(s.derive_prune_keep)]
        archs = [derivation.candidates[i] for i in kept]
        steps, lr = int(s.derive_prune_steps), float(s.derive_prune_lr)
        net = pruned_copy(self, self.scoring_supernet(), archs, steps, lr)
        second = self.score_on_ranks(archs, kept, source=net)
        return dataclasses.replace(
            derivation, pruned=kept, pruned_scores=second, prune_steps=steps, prune_lr=lr
        )

    def uses_latency(self) -> bool:
        """Whether the derivation reports predicted latency: it is asked for (``reward.cost``,
        ``derive.max_latency_ms``) or a table for these settings exists."""
        derive = self.cfg.get("derive")
        if self.reward.cost_name(self.cfg) == "latency" or (
            derive is not None and derive.get("max_latency_ms") is not None
        ):
            return True
        if self._latency_table is not None:
            return True
        from enas_lightning.data.datasets import data_shape
        from enas_lightning.latency.table import table_path

        classes, shape = data_shape(self.cfg.dataset)
        return table_path(self.cfg, shape, classes).is_file()

    def cost_row(self, arch: ArchRecord, latency: bool) -> dict[str, float]:
        """``{"params", "madds"}`` of ``arch``'s standalone network, and ``"latency_ms"``
        (predicted) with ``latency``."""
        c = self.cost(arch)
        row: dict[str, float] = {"params": c.params, "madds": c.madds}
        if latency:
            row["latency_ms"] = self.cost_value(arch, "latency")
        return row

    # ----------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.nonfinite.sync()
        checkpoint["enas"] = {
            "fingerprint": space_fingerprint(self.cfg),
            "history": [h.to_dict() for h in self.history],
            "nonfinite_in_a_row": self.nonfinite.in_a_row,
            "nonfinite_total": self.nonfinite.total,
            # a checkpoint saved mid-epoch (SIGTERM) carries the epoch's partial summaries
            "epoch_state": {
                "epoch": self.current_epoch,
                "samples": [{**s, "arch": s["arch"].to_dict()} for s in self.epoch_samples],
                "stats": dict(self._epoch_stats),
            },
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["enas"]
        check_fingerprint(checkpoint, self.cfg)
        from enas_lightning.arch.io import arch_from_dict

        self.history = [
            EpochSummary.from_dict(h, lambda v: arch_from_dict(v, self.space.name))
            for h in state["history"]
        ]
        self.nonfinite.in_a_row = state["nonfinite_in_a_row"]
        self.nonfinite.total = state["nonfinite_total"]
        epoch_state = state.get("epoch_state")
        if epoch_state is not None:
            epoch_state["samples"] = [
                {**s, "arch": arch_from_dict(s["arch"], self.space.name)}
                for s in epoch_state["samples"]
            ]
        self._resumed_epoch_state = epoch_state

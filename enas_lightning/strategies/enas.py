"""``controller=enas``: the LSTM controller trained with REINFORCE (Pham et al. 2018).

The child phase trains children sampled from the frozen controller. The controller phase is
``controller.train_steps`` REINFORCE updates of ``controller.num_aggregate`` sampled children
each (per rank), rewarded by the configured reward (accuracy on one validation minibatch) plus
``controller.entropy_weight`` times their entropy, against a moving-average baseline; the
space's own penalty (the macro skip penalty) is added to the loss with
``Space.penalty_weight`` (the macro space's ``controller.skip_weight``). The derivation scores the controller's greedy architecture and
``search.derive_samples`` of its samples. Under ``search.param_free_adjust`` each child is judged
against a baseline that is a moving-average line in its parameter-free share
(:func:`~enas_lightning.search.baseline.linear_baseline`) instead of the plain one, which is still
kept and logged.

Under DDP (``docs/ddp.md``) the controller step runs through the module's DDP wrapper (the
supernet is not in its graph, so only controller gradients are reduced): its gradients are
averaged across ranks; the rewards of all ranks are gathered in rank order and every rank runs
the same sequential baseline update over them (one moving-average step per sampled child, as
the reference does, see ``search/baseline.py``), so the baseline and the controller stay
identical on every rank.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from enas_lightning.optim import step_kwargs
from enas_lightning.search.baseline import MOMENTS, linear_baseline, sequential_baseline
from enas_lightning.spaces import ArchRecord
from enas_lightning.strategies import register_strategy
from enas_lightning.strategies.base import SearchStrategy
from enas_lightning.tracking import log_step_and_epoch

if TYPE_CHECKING:
    from enas_lightning.config import Config
    from enas_lightning.search.module import SearchModule


class Enas(SearchStrategy):
    """REINFORCE on the LSTM controller (``module.controller``) with a moving-average baseline
    (the module's ``baseline`` buffer, checkpointed with it)."""

    name = "enas"

    def attach(self, module: SearchModule) -> None:
        module.register_buffer("baseline", torch.zeros(()))
        if module.cfg.search.param_free_adjust:
            # the line in the parameter-free share (search/baseline.py); only under the
            # setting, so other runs' checkpoints keep the state they always had
            module.register_buffer("baseline_moments", torch.zeros(MOMENTS))

    def optimizers(self, module: SearchModule) -> list[torch.optim.Optimizer]:
        c = module.cfg.controller
        params = module.controller.parameters()
        precision = getattr(module._trainer, "precision", None)
        kwargs = step_kwargs(module.controller.parameters(), precision)
        return [torch.optim.Adam(params, lr=c.lr, betas=tuple(c.betas), eps=c.eps, **kwargs)]

    def controller_steps(self, cfg: Config) -> int:
        return cfg.controller.train_steps

    def child_archs(
        self, module: SearchModule, n: int, generator: torch.Generator
    ) -> list[ArchRecord]:
        # the controller is frozen during the child phase, so sampling all of an epoch's
        # children up front is the same as sampling one per step
        return module.controller.sample_archs(n, generator)

    def controller_step(self, module: SearchModule, k: int, generator: torch.Generator) -> None:
        c = module.cfg.controller
        ctrl_opt = module.optimizers()[1]
        sample = module.controller(c.num_aggregate, generator=generator)
        archs = module.controller.to_archs(sample.arcs)
        reward = module.rewards(archs, generator) + c.entropy_weight * sample.entropy.detach()
        # every rank's rewards in rank order (one all-gather): each rank runs the same
        # sequential baseline over the same numbers, so the baselines are bit-identical
        rewards = reward
        world = module.trainer.world_size
        if world > 1:
            rewards = module.trainer.strategy.all_gather(reward).reshape(-1)
        module.archs_per_update = len(rewards)
        # the gathered rewards are the same on every rank, so every rank skips alike
        if not bool(torch.isfinite(rewards).all()):
            module.log("ctrl/skipped", 1.0, on_step=True)
            return
        # one moving-average update per sampled child, in order, each before its own loss term
        # as in the reference (search/baseline.py); this rank's children sit at its rank's slots
        baselines = sequential_baseline(rewards, module.baseline, c.baseline_decay)
        module.baseline.copy_(baselines[-1])
        if module.cfg.search.param_free_adjust:
            # each child judged against the children of its parameter-free share (the plain
            # baseline above is still kept and logged)
            shares = torch.tensor(
                [module.space.param_free_share(a) for a in archs], device=reward.device
            )
            if world > 1:
                shares = module.trainer.strategy.all_gather(shares).reshape(-1)
            baselines, moments = linear_baseline(
                rewards, shares, module.baseline_moments, c.baseline_decay
            )
            module.baseline_moments.copy_(moments)
        n, rank = len(reward), module.global_rank
        advantage = reward - baselines[rank * n : (rank + 1) * n]
        penalty = module.space.penalty_weight(c) * sample.penalty.mean()
        loss = (-sample.log_prob * advantage).mean() + penalty
        ctrl_opt.zero_grad(set_to_none=True)
        module.manual_backward(loss)
        grads = [p.grad for p in module.controller.parameters() if p.grad is not None]
        finite = torch.stack([torch.isfinite(g).all() for g in grads]).all()
        if not module.all_ranks_agree(finite):
            ctrl_opt.zero_grad(set_to_none=True)
            module.log("ctrl/skipped", 1.0, on_step=True)
            return
        ctrl_opt.step()

        log_step_and_epoch(module, "ctrl/reward", reward.mean(), prog_bar=True)
        module.log("ctrl/baseline", module.baseline.clone(), on_step=True, prog_bar=True)
        entropy = sample.entropy.mean().detach()
        log_step_and_epoch(module, "ctrl/entropy", entropy, prog_bar=True)
        log_step_and_epoch(module, "ctrl/loss", loss.detach())
        module.log("ctrl/archs_per_update", float(module.archs_per_update), on_step=True)
        stats = {
            "reward": reward.mean().detach(),
            "entropy": entropy,
            "op_probs": sample.op_probs.mean(0),
        }
        # the space's own statistics (e.g. a skip rate), logged and kept like the others
        for key, value in module.space.sample_stats(module.controller, sample).items():
            log_step_and_epoch(module, f"ctrl/{key}", value)
            stats[key] = value
        module.record_update(k, archs, reward, stats)

    def candidates(
        self, module: SearchModule, k: int, generator: torch.Generator
    ) -> tuple[list[ArchRecord], int | None]:
        samples = module.controller.sample_archs(k, generator)
        return [module.controller.sample_archs(1, greedy=True)[0], *samples], 0

    def greedy_arch(self, module: SearchModule) -> ArchRecord | None:
        return module.controller.sample_archs(1, greedy=True)[0]

    def baseline(self, module: SearchModule) -> float:
        return float(module.baseline)


register_strategy(Enas())

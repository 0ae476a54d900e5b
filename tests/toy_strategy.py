"""A toy search strategy, registered by the tests and shown in docs/new_strategy.md.

``best_seen``: remember the best architecture any controller step has scored. Each controller
step scores ``controller.num_aggregate`` uniformly sampled architectures with the reward and
keeps the best so far; the child phase trains that best one at every other step (uniform
children otherwise), and the derivation scores it (as its "greedy" candidate) with
``search.derive_samples`` uniform ones. It learns nothing by gradient, so it has no optimizer;
its memory is two buffers on the module (checkpointed with it). Not for DDP: each rank would
remember its own best.
"""

from __future__ import annotations

import torch

from enas_lightning.strategies import SearchStrategy, register_strategy


class BestSeen(SearchStrategy):
    name = "best_seen"

    def attach(self, module) -> None:
        # the best architecture in the controller's integer layout, and its reward
        one = module.controller.sample_archs(1, torch.Generator().manual_seed(0), uniform=True)
        module.register_buffer("best_arc", torch.zeros_like(module.controller.from_archs(one)))
        module.register_buffer("best_reward", torch.tensor(float("-inf")))

    def best(self, module):
        if not torch.isfinite(module.best_reward):
            return None
        return module.controller.to_archs(module.best_arc)[0]

    def controller_steps(self, cfg) -> int:
        return cfg.controller.train_steps

    def child_archs(self, module, n, generator):
        archs = module.controller.sample_archs(n, generator, uniform=True)
        best = self.best(module)
        return archs if best is None else [best if i % 2 else a for i, a in enumerate(archs)]

    def controller_step(self, module, k, generator) -> None:
        archs = module.controller.sample_archs(
            module.cfg.controller.num_aggregate, generator, uniform=True
        )
        reward = module.rewards(archs, generator)
        i = int(reward.argmax())
        if reward[i] > module.best_reward:
            module.best_reward.copy_(reward[i])
            module.best_arc.copy_(module.controller.from_archs([archs[i]]))
        module.log("ctrl/reward", reward.mean(), on_step=True, on_epoch=True)
        module.record_update(k, archs, reward, {"reward": reward.mean()})

    def candidates(self, module, k, generator):
        uniform = module.controller.sample_archs(k, generator, uniform=True)
        best = self.best(module)
        return (uniform, None) if best is None else ([best, *uniform], 0)

    def greedy_arch(self, module):
        return self.best(module)


register_strategy(BestSeen())

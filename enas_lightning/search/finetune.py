"""Fine-tuning each candidate from the shared weights before it is scored.

``search.derive_finetune_steps`` (0 = off, the paper): the derivation and ``task=fidelity``
train every architecture they score for that many SGD minibatch steps on the training split
before its score is taken. Zhang et al. 2020 ("Deeper Insights into Weight Sharing in Neural
Architecture Search") found that a few such steps per child lift the rank correlation between
shared-weight and retrained accuracy; see ``docs/faithfulness.md``.

Each candidate starts from the shared weights as the search left them, on a copy: the supernet,
its optimizers and the random streams the rest of the run reads are untouched. The copy is made
once (:class:`ChildFineTuning`) and reloaded from the supernet before every candidate. A
candidate's minibatches and augmentation come from a generator seeded by ``(seed, key)`` and its
dropout from torch's global generator, seeded the same way inside ``fork_rng`` and given back
afterwards, so a candidate's fine-tuning depends on its key only, not on which candidates (or
which rank) came before it.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import torch
from torch import nn

from enas_lightning.optim import clip_gradients_, optimizer_grads
from enas_lightning.seeding import step_seed
from enas_lightning.spaces import ArchRecord

if TYPE_CHECKING:
    from enas_lightning.search.module import SearchModule

# the first key of every fine-tuning seed (the derivation's own draws use 10**6 and 10**6 + 1)
FINETUNE_KEY = 10**6 + 2


class ChildFineTuning:
    """A network of its own that trains one candidate at a time from the shared weights.

    Args:
        module: the search module whose supernet holds the shared weights (read only) and whose
            data, config (``search.derive_finetune_*``, ``search.batch_size``,
            ``search.optim``) and seed are used.
    """

    def __init__(self, module: SearchModule) -> None:
        self.module = module
        s = module.cfg.search
        self.steps = int(s.derive_finetune_steps)
        self.lr = float(s.derive_finetune_lr)
        # a deep copy keeps the supernet's layout (device, memory format, requires_grad);
        # the supernet itself is never trained here
        self.network: nn.Module = copy.deepcopy(module.supernet)

    def __call__(self, arch: ArchRecord, key: int) -> nn.Module:
        """The copy holding the shared weights after ``search.derive_finetune_steps`` steps of
        ``arch`` on training minibatches of ``search.batch_size``, drawn from the generator of
        ``(seed, key)``. Left in training mode; the caller puts it in its scoring mode."""
        m = self.module
        o = m.cfg.search.optim
        net = self.network
        net.load_state_dict(m.supernet.state_dict())  # weights and buffers, copied in place
        # plain SGD with the search's momentum, Nesterov and weight decay (the authors' l2_reg
        # convention, as sgd_with_sgdr), its momentum starting at zero for every candidate
        sgd = torch.optim.SGD(
            net.parameters(),
            lr=self.lr,
            momentum=o.momentum,
            nesterov=o.nesterov,
            weight_decay=2.0 * o.l2_reg,
        )
        gen = m.generator(FINETUNE_KEY, key, 0)
        n = len(m.data.train_y)
        b = min(m.cfg.search.batch_size, n)
        devices = list(range(torch.cuda.device_count())) if m.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.enable_grad():
            torch.manual_seed(step_seed(m.seed, FINETUNE_KEY, key, 1))  # dropout's draws
            net.train()
            for _ in range(self.steps):
                pick = torch.randperm(n, generator=gen, device=m.device)[:b]
                x, y = m.data.train_batch(pick, gen)
                loss, _ = m.child_loss(net, x, y, arch)
                sgd.zero_grad(set_to_none=True)
                loss.backward()
                norm = clip_gradients_(optimizer_grads(sgd), o.grad_clip, o.grad_clip_mode)
                # a host read per step: few steps, and a non-finite one must not poison the copy
                if bool(torch.isfinite(norm)):
                    sgd.step()
        sgd.zero_grad(set_to_none=True)
        return net

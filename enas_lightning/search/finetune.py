"""Training a copy of the shared weights before candidates are scored.

Three settings, all off in the paper presets (``docs/faithfulness.md``):

- ``search.derive_uniform_steps``: one copy of the whole supernet trains that many more SGD
  steps on uniformly sampled children before the derivation and ``task=fidelity`` score any
  candidate (:func:`uniformly_trained`). ENAS trains the shared weights on the children its
  controller samples, which by the end of a search are the few it favours; issue 20 measured
  that a uniform finish of 2,000 steps lifts the rank correlation of the shared-weight scores
  with retrained accuracy (experiments/RESULTS.md, "A uniform finish").
- ``search.derive_finetune_steps`` (per candidate): every architecture the derivation or
  ``task=fidelity`` scores first trains that many SGD minibatch steps on the training split
  (:class:`ChildFineTuning`). Zhang et al. 2020 ("Deeper Insights into Weight Sharing in Neural
  Architecture Search") found that a few such steps per child lift the rank correlation between
  shared-weight and retrained accuracy.
- ``search.derive_prune_keep`` (with ``_steps`` and ``_lr``): after the candidates are scored,
  a copy of the scoring weights trains that many SGD steps on uniform draws from the best
  ``derive_prune_keep`` of them (:func:`pruned_copy`), the kept ones are scored again on it and
  the derivation picks among them (Ning et al. 2021, "Evaluating Efficient Performance
  Estimators of Neural Architectures": prune to the top architectures, then keep training).

All three train copies: the supernet, its optimizers and the random streams the rest of the run
reads are untouched. The per-candidate copy is made once and reloaded from its source (the
supernet, or the uniformly trained copy when both are on) before every candidate. A candidate's
minibatches and augmentation come from a generator seeded by ``(seed, key)`` and its dropout
from torch's global generator, seeded the same way inside ``fork_rng`` and given back
afterwards, so a candidate's fine-tuning depends on its key only, not on which candidates (or
which rank) came before it.
"""

from __future__ import annotations

import copy
import math
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
UNIFORM_KEY = 10**6 + 3  # the uniform finish's children, minibatches and dropout
# the pruned copy's draws of the kept candidates, minibatches and dropout (the key
# experiments/prune.py used when it measured the pruning, so its picks are reproduced)
PRUNE_KEY = 10**6 + 17


def train_steps(
    module: SearchModule,
    net: nn.Module,
    archs: list[ArchRecord],
    lrs: list[float],
    gen: torch.Generator,
    dropout_seed: int,
) -> None:
    """Train ``net`` (a copy of the supernet) one SGD step per architecture of ``archs``, step
    ``i`` at learning rate ``lrs[i]``, on training minibatches of ``search.batch_size`` drawn
    with ``gen``; torch's global generator (dropout) seeded with ``dropout_seed`` inside
    ``fork_rng`` and given back afterwards, so the rest of the run draws what it would have.

    Plain SGD with the search's momentum (starting at zero), Nesterov, weight decay (the
    authors' l2_reg convention, as sgd_with_sgdr) and gradient clipping. A step with a
    non-finite gradient is skipped: a host read per step, affordable for a copy trained once.
    """
    m = module
    o = m.cfg.search.optim
    sgd = torch.optim.SGD(
        net.parameters(),
        lr=lrs[0] if lrs else 0.0,
        momentum=o.momentum,
        nesterov=o.nesterov,
        weight_decay=2.0 * o.l2_reg,
    )
    n = len(m.data.train_y)
    b = min(m.cfg.search.batch_size, n)
    devices = list(range(torch.cuda.device_count())) if m.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.enable_grad():
        torch.manual_seed(dropout_seed)
        net.train()
        for arch, lr in zip(archs, lrs, strict=True):
            for group in sgd.param_groups:
                group["lr"] = lr
            pick = torch.randperm(n, generator=gen, device=m.device)[:b]
            x, y = m.data.train_batch(pick, gen)
            loss, _ = m.child_loss(net, x, y, arch)
            sgd.zero_grad(set_to_none=True)
            loss.backward()
            norm = clip_gradients_(optimizer_grads(sgd), o.grad_clip, o.grad_clip_mode)
            if bool(torch.isfinite(norm)):
                sgd.step()
    sgd.zero_grad(set_to_none=True)


def cosine_lrs(steps: int, lr: float, lr_min: float) -> list[float]:
    """``steps`` learning rates falling from ``lr`` to ``lr_min`` on a half cosine."""
    last = max(steps - 1, 1)
    return [lr_min + 0.5 * (lr - lr_min) * (1 + math.cos(math.pi * i / last)) for i in range(steps)]


def uniformly_trained(module: SearchModule) -> nn.Module:
    """A copy of ``module``'s supernet after ``search.derive_uniform_steps`` SGD steps, each on a
    uniformly sampled child, at learning rates falling on a half cosine from
    ``search.derive_uniform_lr`` to ``search.optim.lr_min`` (:func:`train_steps`).

    The children, minibatches and dropout come from generators seeded by the run's seed alone,
    so every rank and every rescoring of the same checkpoint trains the same copy. The supernet,
    its optimizers and the random streams the rest of the run reads are untouched. Left in
    training mode.
    """
    m = module
    s = m.cfg.search
    steps = int(s.derive_uniform_steps)
    # a deep copy keeps the supernet's layout (device, memory format, requires_grad)
    net: nn.Module = copy.deepcopy(m.supernet)
    gen = m.generator(UNIFORM_KEY, 0)
    archs = m.uniform_archs(steps, gen)
    lrs = cosine_lrs(steps, float(s.derive_uniform_lr), float(s.optim.lr_min))
    train_steps(m, net, archs, lrs, gen, step_seed(m.seed, UNIFORM_KEY, 1))
    return net


def pruned_copy(
    module: SearchModule, source: nn.Module, archs: list[ArchRecord], steps: int, lr: float
) -> nn.Module:
    """A copy of ``source`` (the weights the candidates were scored on) after ``steps`` SGD
    steps, each on one of ``archs`` (the kept candidates) drawn uniformly, at learning rates
    falling on a half cosine from ``lr`` to ``search.optim.lr_min`` (:func:`train_steps`).

    The draws, minibatches and dropout come from generators seeded by the run's seed alone, so
    every rank trains the same copy and a rescoring of the same checkpoint gives the same pick.
    ``source`` is untouched. Left in training mode.
    """
    m = module
    net: nn.Module = copy.deepcopy(source)
    gen = m.generator(PRUNE_KEY, 0)
    which = torch.randint(len(archs), (steps,), generator=gen, device=gen.device).tolist()
    lrs = cosine_lrs(steps, lr, float(m.cfg.search.optim.lr_min))
    train_steps(m, net, [archs[i] for i in which], lrs, gen, step_seed(m.seed, PRUNE_KEY, 1))
    return net


class ChildFineTuning:
    """A network of its own that trains one candidate at a time from the shared weights.

    Args:
        module: the search module whose data, config (``search.derive_finetune_*``,
            ``search.batch_size``, ``search.optim``) and seed are used.
        source: the weights every candidate starts from (read only): the supernet, or its
            uniformly trained copy (``search.derive_uniform_steps``); default the supernet.
    """

    def __init__(self, module: SearchModule, source: nn.Module | None = None) -> None:
        self.module = module
        self.source = module.supernet if source is None else source
        s = module.cfg.search
        self.steps = int(s.derive_finetune_steps)
        self.lr = float(s.derive_finetune_lr)
        # a deep copy keeps the source's layout (device, memory format, requires_grad); the
        # source itself is never trained here
        self.network: nn.Module = copy.deepcopy(self.source)

    def __call__(self, arch: ArchRecord, key: int) -> nn.Module:
        """The copy holding the source's weights after ``search.derive_finetune_steps`` steps of
        ``arch`` at ``search.derive_finetune_lr`` on training minibatches of
        ``search.batch_size``, drawn from the generator of ``(seed, key)`` (:func:`train_steps`).
        Left in training mode; the caller puts it in its scoring mode."""
        m = self.module
        net = self.network
        net.load_state_dict(self.source.state_dict())  # weights and buffers, copied in place
        gen = m.generator(FINETUNE_KEY, key, 0)
        dropout_seed = step_seed(m.seed, FINETUNE_KEY, key, 1)
        train_steps(m, net, [arch] * self.steps, [self.lr] * self.steps, gen, dropout_seed)
        return net

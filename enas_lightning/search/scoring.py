"""The shared weights as the controller phase and the derivation score architectures with them.

Both are :class:`~enas_lightning.rewards.SharedWeights` views that the configured reward is
called with. Each is a context manager that puts the supernet in its phase's mode and back in
training mode afterwards.

BatchNorm normalises with the minibatch's statistics in both (search BatchNorm keeps none:
running statistics shared by all children describe none of them). The supernet is in eval mode
so that no aux head is computed; with ``search.reward_dropout`` (default, as the authors' micro
search: ``build_valid_rl`` runs the child with ``is_training=True``) the dropout layers are on
while the controller phase scores.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from enas_lightning.spaces import ArchRecord, Cost

if TYPE_CHECKING:
    from enas_lightning.search.module import SearchModule


def set_training(network: nn.Module, mode: bool, on: tuple[type[nn.Module], ...] = ()) -> None:
    """``network.train(mode)``, then ``train()`` on every module of the types ``on``.

    Written by hand because ``nn.Module.train`` costs about 7 microseconds a module (a
    recursion through ``children()`` setting the flag through ``Module.__setattr__``): the
    quickstart's micro supernet has 4,049 modules, and the controller phase flips them into
    eval mode and back for every update, 70 ms of its 420 ms on a 2-core CPU (2026-12-06).
    This sets the same ``training`` flags in one walk, 4.5x faster. A module whose class
    overrides ``train`` gets its own ``train(mode)`` call for its whole subtree (it may do more
    than set flags); only the modules of the types ``on`` below it are switched on after it.
    """
    stack = [network]
    while stack:
        m = stack.pop()
        if type(m).train is not nn.Module.train:
            m.train(mode)
            if on and not mode:
                for sub in m.modules():
                    if isinstance(sub, on):
                        sub.train()
            continue
        # what nn.Module.train's ``self.training = mode`` stores, without __setattr__'s checks
        m.__dict__["training"] = mode or isinstance(m, on)
        stack.extend(c for c in m._modules.values() if c is not None)


class _Scoring:
    phase: str

    def __init__(self, module: SearchModule, network: nn.Module | None = None) -> None:
        self.module = module
        self.cfg = module.cfg
        self.space = module.space
        self.device = module.device
        # the supernet, or a fine-tuned copy of it (search.derive_finetune_steps)
        self.network = module.supernet if network is None else network

    def __enter__(self) -> _Scoring:
        set_training(self.network, False)
        return self

    def __exit__(self, *exc: Any) -> None:
        set_training(self.network, True)

    def logits(self, arch: ArchRecord, x: Tensor) -> Tensor:
        with torch.no_grad():
            return self.network(x, arch)

    def cost(self, arch: ArchRecord) -> Cost:
        return self.module.cost(arch)

    def cost_value(self, arch: ArchRecord, kind: str) -> float:
        return self.module.cost_value(arch, kind)


class ControllerScoring(_Scoring):
    """The controller phase's view: each call of :meth:`batches` draws its own random
    minibatches of ``search.batch_size`` from this rank's validation shard with ``generator``
    (the controller step's)."""

    phase = "controller"

    def __init__(self, module: SearchModule, generator: torch.Generator) -> None:
        super().__init__(module)
        self.generator = generator

    def __enter__(self) -> ControllerScoring:
        # eval mode with the dropout layers on, in one walk over the modules
        on = (nn.Dropout,) if self.cfg.search.reward_dropout else ()
        set_training(self.network, False, on=on)
        return self

    def batches(self, count: int = 1) -> Iterator[tuple[Tensor, Tensor]]:
        m = self.module
        b = self.cfg.search.batch_size
        for _ in range(count):
            pick = torch.randperm(len(m.val_shard), generator=self.generator, device=m.device)[:b]
            yield m.data.val_batch(m.val_shard[pick])

    def mean(self, values: list[Tensor]) -> Tensor:
        # on the device: the rewards feed the controller's loss without a host read
        return torch.cat(values).mean()


class DerivationScoring(_Scoring):
    """The derivation's view: the first ``search.derive_batches`` batches of
    ``search.eval_batch_size`` of the whole validation split (0 = all of them), of the
    supernet, or of ``network``, a candidate's fine-tuned copy of it
    (:mod:`enas_lightning.search.finetune`).

    Where the split needs more than one batch, the batches are taken from one permutation of it
    seeded with ``dataset.seed``: the same batches for every candidate and every search seed
    on the same data. Why: BatchNorm normalises with each batch's own statistics, which are
    the split's only if the batch is a random sample of it, and a split can be ordered (an
    image_folder split lists its images class by class; scored in file order, a batch of
    Fashion-MNIST held six classes and the next the other four). One batch holding the whole
    split keeps its order: its statistics are the split's whatever the order.
    """

    phase = "derivation"

    def __init__(self, module: SearchModule, network: nn.Module | None = None) -> None:
        super().__init__(module, network)
        n, b = len(module.data.val_y), self.cfg.search.eval_batch_size
        key = (n, b, self.cfg.dataset.seed, str(self.device))
        # kept on the module: one host-to-device copy per run, not one per candidate
        cached = getattr(module, "_derivation_order", None)
        if cached is None or cached[0] != key:
            if n <= b:
                order = torch.arange(n)
            else:
                order = torch.randperm(n, generator=torch.Generator().manual_seed(key[2]))
            cached = module._derivation_order = (key, order.to(self.device))
        self.order: Tensor = cached[1]

    def batches(self, count: int = 1) -> Iterator[tuple[Tensor, Tensor]]:
        m = self.module
        s = self.cfg.search
        n = len(self.order)
        starts = range(0, n, s.eval_batch_size)
        if s.derive_batches > 0:
            starts = starts[: s.derive_batches]
        for start in starts:
            yield m.data.val_batch(self.order[start : start + s.eval_batch_size])

    def mean(self, values: list[Tensor]) -> Tensor:
        # summed on the device, divided on the host: the score of a count (a number of right
        # answers) is the exact ratio, whatever the device's division rounds
        total = torch.zeros((), device=self.module.device)
        seen = 0
        for v in values:
            total += v.sum()
            seen += len(v)
        return torch.tensor(float(total) / max(seen, 1), dtype=torch.float64, device=self.device)

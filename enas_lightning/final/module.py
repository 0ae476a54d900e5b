"""Training a found architecture from scratch: the final-training LightningModule.

One standalone network (built by the search space: :meth:`Space.build_network
<enas_lightning.spaces.base.Space.build_network>`) is trained on the whole training split
with automatic optimisation, and evaluated on the test split (the "validation" loop of Lightning
runs over the TEST split: final training has no held-out validation split, as in the paper).

Design choices:

* Data lives on the device (:class:`~enas_lightning.data.device.DeviceSplits`); the loaders yield
  index batches (:class:`~enas_lightning.data.loader.EpochBatches`) and the training step gathers
  and augments the images there.
* Every training step reseeds both its augmentation generator and torch's global RNG (dropout,
  drop path) from ``(seed, rank, epoch, batch_idx)``. A step's randomness therefore depends only
  on its position, so a run resumed from a checkpoint replays exactly the steps an uninterrupted
  run takes, bit for bit (given deterministic kernels).
* Gradient clipping is done by :meth:`FinalModule.configure_gradient_clipping` with the module's
  own ``cfg.optim.grad_clip`` and ``grad_clip_mode`` (per tensor by default), not with the Trainer's ``gradient_clip_val``: the bound is a
  setting of the final config, it keeps working whatever Trainer the caller builds, and the
  project keeps ``gradient_clip_val`` out of its Trainer configs. Lightning calls the hook after
  the precision plugin has unscaled the gradients (16-mixed), so the bound is on true gradients.
* SGDR (``CosineAnnealingWarmRestarts``) is stepped once per epoch, as in the reference.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from enas_lightning.data.device import DeviceSplits
from enas_lightning.data.loader import EpochBatches
from enas_lightning.final.compile import compile_mode, should_compile, use_persistent_cache
from enas_lightning.grad_layout import match_grad_strides
from enas_lightning.optim import clip_gradients_, optimizer_grads, sgd_with_sgdr, step_kwargs
from enas_lightning.seeding import step_seed
from enas_lightning.tracking import log_step_and_epoch

log = logging.getLogger(__name__)


class FinalModule(pl.LightningModule):
    """Trains ``network`` from scratch on ``data``'s training split; evaluates on its test split.

    Args:
        network: the standalone network; ``forward(x [B, C, H, W])`` returns logits
            ``[B, num_classes]``, or ``(logits, aux_logits)`` in training mode with an aux head.
            Reachable as ``self.network`` (eager, also when ``cfg.compile`` is set) for export.
        data: the splits (moved to the module's device in :meth:`on_fit_start`) and augmentation.
        cfg: the ``final`` section of the config (:class:`~enas_lightning.config.FinalConfig`, or an
            OmegaConf node with the same fields).
        seed: seeds the epoch orders and every step's augmentation, dropout and drop path.

    Logged: ``train/loss``, ``train/acc``, ``lr`` (per step and epoch); ``test/loss``,
    ``test/acc`` (per evaluation, synced across ranks). ``best_test_acc`` is the best ``test/acc``
    of the evaluations so far (checkpointed).
    """

    def __init__(self, network: nn.Module, data: DeviceSplits, cfg: Any, seed: int = 0) -> None:
        super().__init__()
        self.network = network
        self.data = data
        self.cfg = cfg
        self.seed = int(seed)
        num_classes = int(data.splits.num_classes)
        # validate_args=False: the check runs torch.unique on every batch, which waits for the
        # GPU once per training step; the labels were checked when the data was loaded
        self.train_acc = MulticlassAccuracy(num_classes, average="micro", validate_args=False)
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        self.best_test_acc = 0.0
        self.last_test_acc: float | None = None
        self._train_loader: EpochBatches | None = None
        self._generator: torch.Generator | None = None
        # The compiled forward is kept out of the module tree (object.__setattr__) so that the
        # state dict holds the weights once, under ``network.``; the eager module stays the one
        # that is checkpointed and exported.
        object.__setattr__(self, "_compiled", None)

    # ------------------------------------------------------------------------------------------
    # Setup

    def configure_model(self) -> None:
        """Lightning hook (once per ``fit``/``validate``, before the strategy moves and wraps
        the module and builds the optimizer): memory format, then compile the forward if asked.
        """
        if self.cfg.channels_last:
            # here, not in on_fit_start: DDP lays out its gradient buckets after the parameters
            self.network.to(memory_format=torch.channels_last)
        if self.trainer.world_size > 1:  # DDP's buckets take the gradients as is (grad_layout)
            match_grad_strides(self.network)
        self.maybe_compile()

    def maybe_compile(self) -> None:
        """Use ``torch.compile(self.network)`` for the forward passes with ``cfg.compile=true``,
        or with ``auto`` when the run has more than ``cfg.compile_min_steps`` optimizer steps
        (:mod:`enas_lightning.final.compile`)."""
        if self._compiled is not None:
            return
        mode = compile_mode(self.cfg.compile)
        if mode == "false":
            return
        steps = self.total_steps()
        min_steps = int(self.cfg.compile_min_steps)
        if not should_compile(mode, steps, min_steps):
            log.info("final.compile=auto: eager (%d steps <= final.compile_min_steps)", steps)
            return
        if mode == "auto":
            log.info("final.compile=auto: compiling (%d steps > %d)", steps, min_steps)
            # auto is a speed setting a preset turns on: a backend that cannot compile here (no
            # C++ compiler, an unsupported op) falls back to eager with dynamo's warning instead
            # of failing the run; final.compile=true keeps the error
            torch._dynamo.config.suppress_errors = True
        use_persistent_cache()
        object.__setattr__(self, "_compiled", torch.compile(self.network))

    def total_steps(self) -> int:
        """Optimizer steps of the whole training on a rank: ``epochs`` x batches per epoch."""
        world = self._trainer.world_size if self._trainer is not None else 1
        per_epoch = len(
            EpochBatches(len(self.data.splits.train_y), self.cfg.batch_size, self.seed, 0, world)
        )
        return int(self.cfg.epochs) * per_epoch

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        """``[B, C, H, W]`` images -> logits ``[B, K]`` (or ``(logits, aux)`` when training)."""
        net = self._compiled if self._compiled is not None else self.network
        return net(x)

    def on_fit_start(self) -> None:
        self.data.to(self.device, channels_last=self.cfg.channels_last)

    def on_validation_start(self) -> None:
        # trainer.validate() without fit: the data may still be on the CPU.
        self.data.to(self.device, channels_last=self.cfg.channels_last)

    def train_dataloader(self) -> EpochBatches:
        """This rank's shuffled index batches ``[batch_size]`` of the training split."""
        self._train_loader = EpochBatches(
            len(self.data.splits.train_y),
            self.cfg.batch_size,
            self.seed,
            rank=self.global_rank,
            world_size=self.trainer.world_size,
            setting="final.batch_size",
        )
        return self._train_loader

    def val_dataloader(self) -> EpochBatches:
        """This rank's shard of the TEST split in order, index batches ``[<= eval_batch_size]``.

        The batch is capped at the shard size (``EpochBatches`` rejects a batch larger than its
        split; without ``drop_last`` a larger batch would mean the same single batch anyway).
        Under DDP the ``len(test) % world_size`` last test images are left out so that every rank
        has a shard of the same size.
        """
        n = len(self.data.splits.test_y)
        world = self.trainer.world_size
        batch = max(1, min(int(self.cfg.eval_batch_size), n // world))
        loader = EpochBatches(
            n,
            batch,
            self.seed,
            rank=self.global_rank,
            world_size=world,
            shuffle=False,
            drop_last=False,
            setting="final.eval_batch_size",
        )
        return loader

    def configure_optimizers(self) -> dict[str, Any]:
        """SGD (Nesterov) with weight decay on every weight; SGDR stepped once per epoch."""
        optimizer, scheduler = sgd_with_sgdr(
            self.network.parameters(),
            self.cfg.optim,
            # one fused (or multi-tensor) kernel per update instead of one per parameter
            **step_kwargs(self.network.parameters(), getattr(self._trainer, "precision", None)),
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch", "frequency": 1},
        }

    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """Clip the gradients to ``cfg.optim.grad_clip`` (0 = off) in the mode
        ``cfg.optim.grad_clip_mode`` (``norm``: each tensor on its own; ``global``; ``none``).

        Lightning calls this hook after the precision plugin has unscaled the gradients
        (16-mixed), and the final optimizer is never fused under mixed precision
        (:func:`~enas_lightning.optim.step_kwargs`), so clipping them here directly is safe.
        A Trainer ``gradient_clip_val`` (not used by this project) takes precedence if given.
        """
        bound = gradient_clip_val if gradient_clip_val else float(self.cfg.optim.grad_clip)
        clip_gradients_(optimizer_grads(optimizer), bound, str(self.cfg.optim.grad_clip_mode))

    # ------------------------------------------------------------------------------------------
    # Training

    def set_drop_path_progress(self, batch_idx: int) -> None:
        """Drop path grows linearly with training progress, step by step: the reference's
        ``_apply_drop_path`` uses ``min(1, (global_step + 1) / num_train_steps)`` with
        ``num_train_steps = epochs * batches per epoch``. A plain Python number (no device
        tensor), a function of the step's position, so a resumed run sets the same values."""
        if not hasattr(self.network, "drop_path_progress"):
            return
        per_epoch = self.trainer.num_training_batches
        if not math.isfinite(per_epoch):  # a loader without a length
            per_epoch = len(self._train_loader) if self._train_loader is not None else 1
        steps = max(1, int(self.cfg.epochs) * int(per_epoch))
        step = self.current_epoch * int(per_epoch) + batch_idx + 1
        self.network.drop_path_progress = min(1.0, step / steps)

    def on_train_epoch_end(self) -> None:
        # SGDR moves the learning rate once per epoch: logged here, not per step (a Python
        # number logged per step is a host-to-device copy that waits for the device)
        # the same on every rank; sync_dist keeps Lightning from warning under DDP
        lr = self.optimizers().param_groups[0]["lr"]
        self.log("lr", lr, on_step=False, on_epoch=True, sync_dist=True)

    def _step_generator(self, seed: int) -> torch.Generator:
        """The augmentation generator on the data's device, reseeded for this step."""
        if self._generator is None or self._generator.device != self.data.device:
            self._generator = torch.Generator(device=self.data.device)
        return self._generator.manual_seed(seed)

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        """One SGD step on the augmented images of the index batch ``batch`` ``[B]``."""
        seed = step_seed(self.seed, self.global_rank, self.current_epoch, batch_idx)
        torch.manual_seed(seed)  # dropout and drop path: a function of the step's position
        self.set_drop_path_progress(batch_idx)
        x, y = self.data.train_batch(batch, self._step_generator(seed))  # [B, C, H, W], [B]
        out = self(x)
        if isinstance(out, tuple):
            logits, aux = out
            loss = F.cross_entropy(logits, y) + self.cfg.aux_weight * F.cross_entropy(aux, y)
        else:
            logits = out
            loss = F.cross_entropy(logits, y)
        self.train_acc(logits.detach().argmax(1), y)
        b = len(y)
        log_step_and_epoch(self, "train/loss", loss.detach(), batch_size=b)
        self.log("train/acc", self.train_acc, on_step=True, on_epoch=True, batch_size=b)
        if self._train_loader is not None:
            # Where the epoch stands, for the loader's state_dict (mid-epoch resume).
            self._train_loader.consumed = batch_idx + 1
        return loss

    # ------------------------------------------------------------------------------------------
    # Test evaluation (Lightning's validation loop over the test split)

    def validation_step(self, batch: Tensor, batch_idx: int) -> None:
        """Accumulate accuracy and loss over the test index batch ``batch`` ``[B]``."""
        idx = batch.to(self.data.device)
        x, y = self.data.test_x[idx], self.data.test_y[idx]  # [B, C, H, W], [B]
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        self.test_acc.update(logits.argmax(1), y)
        self.log("test/loss", loss, on_step=False, on_epoch=True, sync_dist=True, batch_size=len(y))

    def on_validation_epoch_end(self) -> None:
        # compute() syncs the counts across ranks, so every rank sees the whole test accuracy.
        acc = self.test_acc.compute()
        self.test_acc.reset()
        self.log("test/acc", acc, sync_dist=True)
        if self.trainer.sanity_checking:
            return
        self.last_test_acc = float(acc)
        self.best_test_acc = max(self.best_test_acc, self.last_test_acc)
        self.log("test/best_acc", self.best_test_acc, sync_dist=True)

    # ------------------------------------------------------------------------------------------
    # Checkpoints

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The loader position and the optimizer/scheduler are saved by Lightning; the RNGs need
        # nothing (each step reseeds them). Only the best test accuracy is the module's own.
        checkpoint["final"] = {"best_test_acc": self.best_test_acc}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.best_test_acc = float(checkpoint.get("final", {}).get("best_test_acc", 0.0))

"""A rich progress bar for the search: the epoch bar plus a bar for the controller phase.

One search epoch is one stream of steps (child minibatches, then controller updates; see
``search/loader.py``), so Lightning's epoch bar counts both. The child's loss and accuracy and the
controller's reward, baseline and entropy appear next to it (``prog_bar=True`` in the module);
this bar adds a second line, ``controller``, that counts the controller updates of the epoch
(total ``controller.train_steps``) and stays empty in epochs without a controller phase.

The numbers next to the bar are read every ``trainer.log_every_n_steps`` child steps (and after
every controller update), not after every child step: reading a logged tensor makes the host
wait for the device, and the child phase is meant to run without such waits. For the same reason
the child's loss and accuracy are not logged with ``prog_bar=True`` (Lightning would convert them
after every step); this bar takes them from the callback metrics when it reads.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import RichProgressBar

from enas_lightning.search.loader import CONTROLLER


class SearchProgressBar(RichProgressBar):
    controller_description = "controller"
    child_metrics = ("child/loss", "child/acc")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.controller_progress_bar_id: Any = None
        self.controller_totals: list[int] = []  # the controller bar's total, per epoch with one
        self._metrics_due = True

    def _reset_progress_bar_ids(self) -> None:
        super()._reset_progress_bar_ids()
        self.controller_progress_bar_id = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        if self.is_disabled or self.progress is None:
            return
        loader = getattr(pl_module, "loader", None)
        due = loader is not None and loader.controller_due(trainer.current_epoch)
        total = loader.controller_steps if due else 0
        if self.controller_progress_bar_id is None:
            self.controller_progress_bar_id = self._add_task(total, self.controller_description)
        else:
            self.progress.reset(self.controller_progress_bar_id, total=total, visible=True)
        if due:
            self.controller_totals.append(total)
        self.refresh()

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        loader = getattr(pl_module, "loader", None)
        self._metrics_due = loader is None or loader.host_reads_due(
            batch_idx, trainer.log_every_n_steps
        )
        try:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        finally:
            self._metrics_due = True
        if self.is_disabled or int(batch[0]) != CONTROLLER:
            return
        # the k-th controller update of the epoch is done: k + 1 of train_steps
        self._update(self.controller_progress_bar_id, int(batch[1]) + 1)

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        logged = trainer.callback_metrics
        for key in self.child_metrics:
            for name in (f"{key}_step", f"{key}_epoch"):
                if name in logged:
                    metrics[name] = float(logged[name])
        return metrics

    def _update_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._metrics_due:
            super()._update_metrics(trainer, pl_module)


def search_progress_bar(enabled: bool) -> list[pl.Callback]:
    """``[SearchProgressBar()]`` when the progress bar is on and ``rich`` is importable."""
    if not enabled:
        return []
    try:
        import rich  # noqa: F401
    except ImportError:
        return []
    return [SearchProgressBar()]

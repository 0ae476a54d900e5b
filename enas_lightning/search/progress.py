"""A rich progress bar for the search: the epoch bar plus a bar for the controller phase.

One search epoch is one stream of steps (child minibatches, then controller updates; see
``search/loader.py``), so Lightning's epoch bar counts both. The child's loss and accuracy and the
controller's reward, baseline and entropy appear next to it (``prog_bar=True`` in the module);
this bar adds a second line, ``controller``, that counts the controller updates of the epoch
(total ``controller.train_steps``) and stays empty in epochs without a controller phase.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import RichProgressBar

from enas_lightning.search.loader import CONTROLLER


class SearchProgressBar(RichProgressBar):
    controller_description = "controller"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.controller_progress_bar_id: Any = None
        self.controller_totals: list[int] = []  # the controller bar's total, per epoch with one

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
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if self.is_disabled or int(batch[0]) != CONTROLLER:
            return
        # the k-th controller update of the epoch is done: k + 1 of train_steps
        self._update(self.controller_progress_bar_id, int(batch[1]) + 1)


def search_progress_bar(enabled: bool) -> list[pl.Callback]:
    """``[SearchProgressBar()]`` when the progress bar is on and ``rich`` is importable."""
    if not enabled:
        return []
    try:
        import rich  # noqa: F401
    except ImportError:
        return []
    return [SearchProgressBar()]

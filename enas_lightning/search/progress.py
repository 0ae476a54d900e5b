"""What the search shows while it runs: a rich progress bar and one line per epoch.

One search epoch is one stream of steps (child minibatches, then controller updates; see
``search/loader.py``), so Lightning's epoch bar counts both. Three numbers appear next to it, the
child's ``loss`` and ``acc`` and the controller's mean ``reward`` (more wrap into a tall column
of truncated names in a narrow terminal or a log file); this bar adds a second line,
``controller``, that counts the controller updates of the epoch (total
``controller.train_steps``) and stays empty in epochs without a controller phase.

:class:`EpochLine` prints and logs (``app.log``) one line at the end of every epoch with the
rest: epoch/total, child loss and accuracy, mean reward, baseline, entropy (under
``reward=cost_aware`` the children's mean cost), learning rate,
seconds, and the controller's greedy architecture in the authors' integer format.

The numbers next to the bar are read every ``trainer.log_every_n_steps`` child steps (and after
every controller update), not after every child step: reading a logged tensor makes the host
wait for the device, and the child phase is meant to run without such waits. For the same reason
the child's loss and accuracy are not logged with ``prog_bar=True`` (Lightning would convert them
after every step); this bar takes them from the callback metrics when it reads.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import RichProgressBar

from enas_lightning.search.history import EpochSummary
from enas_lightning.search.loader import CONTROLLER

log = logging.getLogger("enas_lightning.search")

# The numbers next to the bar: shown name -> logged metrics, the first one logged wins.
BAR_METRICS = {
    "loss": ("child/loss_step", "child/loss_epoch"),
    "acc": ("child/acc_step", "child/acc_epoch"),
    "reward": ("ctrl/reward_step", "ctrl/reward_epoch", "ctrl/reward"),
}


class SearchProgressBar(RichProgressBar):
    controller_description = "controller"

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

    def configure_columns(self, trainer: pl.Trainer) -> list:
        """Lightning's columns less the it/s column (the epoch line gives the seconds per epoch),
        with an 8-character bar: bar and three numbers fit in 80 columns."""
        columns = [
            c
            for c in super().configure_columns(trainer)
            if type(c).__name__ != "ProcessingSpeedColumn"
        ]
        for c in columns:
            if hasattr(c, "bar_width"):
                c.bar_width = 8
        return columns

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        """The three numbers of :data:`BAR_METRICS` (none of Lightning's others, no ``v_num``)."""
        logged = {**trainer.callback_metrics, **trainer.progress_bar_metrics}
        metrics: dict[str, Any] = {}
        for shown, names in BAR_METRICS.items():
            name = next((n for n in names if n in logged), None)
            if name is not None:
                metrics[shown] = float(logged[name])
        return metrics

    def _update_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._metrics_due:
            super()._update_metrics(trainer, pl_module)


def _number(value: Any, fmt: str) -> str:
    return "-" if value is None else format(float(value), fmt)


class EpochLine(pl.Callback):
    """One line per search epoch, printed and logged (rank 0; see the module docstring).

    It reads the epoch's summary, ``SearchModule.history[-1]``, and the child's epoch means that
    Lightning has aggregated by the time epoch-end hooks run: one host read per epoch.
    """

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.lines: list[str] = []  # every line written, for tests and callers

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start = time.monotonic()  # a resumed run may start inside an epoch

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start = time.monotonic()

    def on_train_epoch_end(self, trainer: pl.Trainer, module: Any) -> None:
        module.summarize_epoch()  # idempotent; the module's own hook runs after callbacks'
        if not trainer.is_global_zero or not module.history:
            return
        self.write(self.line(trainer, module, module.history[-1], time.monotonic() - self.start))

    def write(self, line: str) -> None:
        self.lines.append(line)
        log.info(line)

    @staticmethod
    def line(trainer: pl.Trainer, module: Any, summary: EpochSummary, seconds: float) -> str:
        logged = trainer.callback_metrics
        loss = logged.get("child/loss_epoch")
        acc = logged.get("child/acc_epoch")
        greedy = summary.greedy_arch
        arc = "-"
        if greedy is not None:
            arc = " ".join(map(str, greedy.to_ints(tuple(module.controller.ops))))
        warmup = " (warm-up)" if summary.warmup else ""  # search.warmup_epochs
        # reward=cost_aware: the mean cost of the controller phase's children
        cost = "".join(
            f" | mean {k[len('cost_') :]} {v:.4g}"
            for k, v in summary.space_stats.items()
            if k.startswith("cost_")
        )
        return (
            f"epoch {summary.epoch + 1}/{trainer.max_epochs}{warmup}"
            f" | child loss {_number(loss, '.4f')} acc {_number(acc, '.4f')}"
            f" | reward {_number(summary.reward, '.4f')}"
            f" baseline {_number(summary.baseline, '.4f')}"
            f" entropy {_number(summary.entropy, '.3f')}{cost}"
            f" | lr {_number(summary.lr, '.3g')} | {seconds:.1f} s"
            f" | greedy: {arc}"
        )


def search_progress_bar(enabled: bool) -> list[pl.Callback]:
    """``[SearchProgressBar()]`` when the progress bar is on and ``rich`` is importable."""
    if not enabled:
        return []
    try:
        import rich  # noqa: F401
    except ImportError:
        return []
    return [SearchProgressBar()]

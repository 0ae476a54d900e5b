"""The child phase never waits for the device between logging intervals.

On a GPU, reading a device tensor on the host (``.item()``, ``.tolist()``, ``bool(t)``,
``float(t)``, ...) blocks the host until the device has caught up, so the host can no longer
queue the next step while the device computes this one. A CPU cannot tell such a wait from any
other call, so this test counts the calls themselves: every tensor-to-Python conversion made
anywhere (our module, Lightning's loop, its logger connector, the progress bar) between the
start of one training step and the start of the next.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytorch_lightning as pl
import torch

from enas_lightning.search.loader import CHILD
from enas_lightning.tasks.search import run_search

CONVERSIONS = ("item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__")


class StepConversions(pl.Callback):
    """Conversions counted from each training step's start to the next one's."""

    def __init__(self, counter: Counter) -> None:
        self.counter = counter
        self.steps: list[tuple[int, int, int, int]] = []  # (epoch, batch_idx, phase, count)
        self._open: tuple[int, int, int, int] | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._close()
        self._open = (trainer.current_epoch, batch_idx, int(batch[0]), self.counter.total())

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._close()  # epoch-end work (summaries, checkpoints) is not a step's

    def _close(self) -> None:
        if self._open is not None:
            epoch, batch_idx, phase, start = self._open
            self.steps.append((epoch, batch_idx, phase, self.counter.total() - start))
            self._open = None


def test_child_steps_between_logging_intervals_read_nothing_back(make_cfg, monkeypatch):
    counter: Counter = Counter()
    for name in CONVERSIONS:
        real = getattr(torch.Tensor, name)

        def counted(self, *args, _real=real, _name=name, **kwargs):
            counter[_name] += 1
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    # 128 fake training images / 16 = 8 child steps an epoch; logs (and checks) every 4 steps;
    # with the progress bar, whose numbers are read at the same interval
    cfg = make_cfg(
        [
            "search.batch_size=16",
            "trainer.log_every_n_steps=4",
            "trainer.enable_progress_bar=true",
            "search.epochs=2",
        ]
    )
    probe = StepConversions(counter)
    run_search(cfg, Path(cfg.output_dir), extra_callbacks=(probe,))

    child = [(e, b, n) for e, b, phase, n in probe.steps if phase == CHILD]
    assert len(child) == 16
    due = {0, 3, 7}  # the epoch's batched sampling of its children; intervals; phase end
    quiet = {(e, b): n for e, b, n in child if b not in due}
    assert quiet and all(n == 0 for n in quiet.values()), quiet
    # the counter does see conversions: the logging steps read the logged values back
    assert sum(n for e, b, n in child if b in (3, 7)) > 0

"""The child phase (and final training) never waits for the device between logging intervals.

On a GPU, reading a device tensor on the host (``.item()``, ``.tolist()``, ``bool(t)``,
``float(t)``, ...) blocks the host until the device has caught up, so the host can no longer
queue the next step while the device computes this one. A CPU cannot tell such a wait from any
other call, so this test counts the calls themselves: every tensor-to-Python conversion and
every op with a data-dependent output shape (``unique``, ``nonzero``, ``masked_select``) made
anywhere (our module, Lightning's loop, its logger connector, the progress bar, torchmetrics)
between the start of one training step and the start of the next. Beneath Python, the ATen ops
that wait on a GPU are counted too (:class:`HostWaits`): a tensor made from Python data inside
a step is copied to the device from pageable memory, which waits. A Python list used as an
index in the micro cell's output did that in every cell: 8 waits per child step, counted with
CUDA's sync debug mode (``bench/search_epoch.py``'s ``SyncCounter``) on an H200 (2026-12-04),
invisible to the conversions.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from enas_lightning.search.loader import CHILD
from enas_lightning.tasks.search import run_search

CONVERSIONS = ("item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__")
# ops whose output shape depends on the data: on a GPU they wait for the device without any
# conversion in sight
DATA_DEPENDENT = ("unique", "nonzero", "masked_select")
# the ATen ops behind those waits, and lift_fresh: a tensor from Python data (a list index too)
ATEN_WAITS = (
    "_local_scalar_dense",
    "nonzero",
    "masked_select",
    "_unique2",
    "unique_dim",
    "is_nonzero",
    "repeat_interleave",
    "lift_fresh",
)


class HostWaits(TorchDispatchMode):
    """Counts the ATen ops of ``ATEN_WAITS`` (as ``aten.<name>``) into ``counter``."""

    def __init__(self, counter: Counter) -> None:
        super().__init__()
        self.counter = counter

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func.overloadpacket).rsplit(".", 1)[-1]
        if name in ATEN_WAITS:
            self.counter[f"aten.{name}"] += 1
        return func(*args, **(kwargs or {}))


class StepConversions(pl.Callback):
    """Conversions counted from each training step's start to the next one's, per kind (the
    ``counter``'s keys: method names, and ``aten.<op>`` under :class:`HostWaits`)."""

    def __init__(self, counter: Counter) -> None:
        self.counter = counter
        self.steps: list[tuple[int, int, int, Counter]] = []  # (epoch, batch_idx, phase, counts)
        self._open: tuple[int, int, int, Counter] | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._close()
        self._open = (trainer.current_epoch, batch_idx, int(batch[0]), Counter(self.counter))

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._close()  # epoch-end work (summaries, checkpoints) is not a step's

    def _close(self) -> None:
        if self._open is not None:
            epoch, batch_idx, phase, start = self._open
            self.steps.append((epoch, batch_idx, phase, self.counter - start))
            self._open = None


def count_conversions(monkeypatch) -> Counter:
    """Count every tensor-to-Python conversion from now on (per method name)."""
    counter: Counter = Counter()
    targets = [(torch.Tensor, n) for n in (*CONVERSIONS, *DATA_DEPENDENT)]
    targets += [(torch, n) for n in DATA_DEPENDENT]
    for owner, name in targets:
        real = getattr(owner, name)

        def counted(*args, _real=real, _name=name, **kwargs):
            counter[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(owner, name, counted)
    return counter


@pytest.mark.parametrize("space", ["micro", "macro"])
def test_child_steps_between_logging_intervals_read_nothing_back(make_cfg, monkeypatch, space):
    counter = count_conversions(monkeypatch)
    # 128 fake training images / 16 = 8 child steps an epoch; logs (and checks) every 4 steps;
    # with the progress bar, whose numbers are read at the same interval
    cfg = make_cfg(
        [
            f"search_space={space}",
            "search.batch_size=16",
            "trainer.log_every_n_steps=4",
            "trainer.enable_progress_bar=true",
            "search.epochs=2",
        ]
    )
    probe = StepConversions(counter)
    with HostWaits(counter):
        run_search(cfg, Path(cfg.output_dir), extra_callbacks=(probe,))

    child = [(e, b, c.total()) for e, b, phase, c in probe.steps if phase == CHILD]
    assert len(child) == 16
    due = {0, 3, 7}  # the epoch's batched sampling of its children; intervals; phase end
    quiet = {(e, b): n for e, b, n in child if b not in due}
    assert quiet and all(n == 0 for n in quiet.values()), quiet
    # the counter does see conversions: the logging steps read the logged values back
    assert sum(n for e, b, n in child if b in (3, 7)) > 0


def test_final_training_steps_between_logging_intervals_read_nothing_back(monkeypatch, tmp_path):
    import enas_lightning.tracking as tracking
    from enas_lightning.final import train_final
    from tests.test_final import AUTHORS_MICRO, QUIET
    from tests.test_final import make_cfg as final_cfg

    counter = count_conversions(monkeypatch)
    probe = StepConversions(counter)
    real = tracking.final_callbacks
    monkeypatch.setattr(tracking, "final_callbacks", lambda cfg: [*real(cfg), probe])
    cfg = final_cfg(epochs=2)
    cfg.trainer.log_every_n_steps = 3
    with HostWaits(counter):
        train_final(cfg, AUTHORS_MICRO, tmp_path, trainer_kwargs=QUIET)
    steps = [(e, b, c) for e, b, _, c in probe.steps]
    per_epoch = 1 + max(b for _, b, _ in steps)
    assert per_epoch >= 4, "too few steps to have steps between logging intervals"
    # Lightning's interval counts steps across epochs; an epoch's last step also holds the
    # test evaluation and the checkpoints. In the run's first step Lightning's logger connector
    # makes each logged value's running state (a tensor from a Python number, once per value
    # and run): aten.lift_fresh is excused there, and only there
    quiet = {
        (e, b): c - Counter({"aten.lift_fresh": c["aten.lift_fresh"] if (e, b) == (0, 0) else 0})
        for e, b, c in steps
        if (e * per_epoch + b + 1) % 3 != 0 and b != per_epoch - 1
    }
    assert quiet and all(c.total() == 0 for c in quiet.values()), quiet

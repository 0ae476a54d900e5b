"""A debugging aid for distributed runs: every rank dumps what must agree across ranks.

Set ``ENAS_LIGHTNING_DUMP_RANK_STATE=<dir>`` (an environment variable, so Lightning's per-rank
relaunches inherit it and the config stays free of debug switches) and a search writes
``<dir>/rank{r}_state.pt`` from every rank ``r`` once it has derived its architecture::

    {
      "rank", "world_size": ints,
      "module": the module's state_dict (supernet, controller, baseline),
      "optimizers": [child SGD state_dict, controller Adam state_dict],
      "archs_per_update": archs rewarded by the last controller update, summed over ranks,
      "epoch0_child_arcs": this rank's child architectures of epoch 0 (integer arcs, one a step),
      "derived": the derived best architecture (integer arc), "derived_accs": all candidates'
        accuracies, "uniform_accs": the uniform reference's accuracies,
      "last_epoch_rewards": this rank's rewards of the last epoch's controller phase, one list
        of num_aggregate per update,
      "history_baselines": the baseline at the end of every epoch,
    }

``tests/test_ddp.py`` compares the files of two CPU ranks bit for bit.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

ENV = "ENAS_LIGHTNING_DUMP_RANK_STATE"


class RankStateDump(pl.Callback):
    """Records epoch 0's children during the fit; :meth:`save` writes the file after derivation."""

    def __init__(self, out_dir: Path) -> None:
        self.dir = Path(out_dir)
        self.epoch0_arcs: list[list[int]] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, module: Any) -> None:
        if trainer.current_epoch == 0:
            ops = tuple(module.controller.ops)
            self.epoch0_arcs = [a.to_ints(ops) for a in module.child_archs(0)]

    def save(self, trainer: pl.Trainer, module: Any, derivation: Any) -> Path:
        ops = tuple(module.controller.ops)
        state = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "module": {k: v.detach().cpu().clone() for k, v in module.state_dict().items()},
            "optimizers": [o.state_dict() for o in trainer.optimizers],
            "archs_per_update": module.archs_per_update,
            "epoch0_child_arcs": self.epoch0_arcs,
            "derived": derivation.best.to_ints(ops),
            "derived_accs": list(derivation.accuracies),
            "uniform_accs": list(derivation.uniform_accuracies),
            "last_epoch_rewards": rewards_per_update(module.epoch_samples),
            "history_baselines": [h.baseline for h in module.history],
        }
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f"rank{trainer.global_rank}_state.pt"
        torch.save(state, path)
        return path


def rewards_per_update(samples: list[dict[str, Any]]) -> list[list[float]]:
    """The rewards of ``module.epoch_samples``, grouped by controller update, in order."""
    out: dict[int, list[float]] = {}
    for s in samples:
        out.setdefault(s["update"], []).append(s["reward"])
    return [out[k] for k in sorted(out)]


def rank_state_dump() -> RankStateDump | None:
    """The dump callback when the environment variable asks for it, else ``None``."""
    out = os.environ.get(ENV)
    return RankStateDump(Path(out)) if out else None

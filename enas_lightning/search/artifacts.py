"""What a search leaves in its run directory while it runs (rank 0 only).

- ``sampled_archs.csv``: every architecture the controller phase rewarded (epoch, update, arc in
  the authors' integer format, reward);
- ``history.json``: per-epoch controller summary (reward, baseline, entropy, op probabilities,
  skip rate, greedy architecture);
- ``pictures/greedy_epoch{N}.dot|png|svg``: the controller's greedy architecture each epoch;
- ``plots/op_probs.png``, ``plots/controller.png``: the controller converging (or collapsing).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from enas_lightning.viz import arch_dot, plot_curves, plot_op_probs, render


def history_json(history: list[dict[str, Any]], ops: tuple[str, ...]) -> list[dict[str, Any]]:
    return [
        {k: (v.to_dict(ops) if k == "greedy_arch" else v) for k, v in h.items()} for h in history
    ]


class SearchArtifacts(pl.Callback):
    """Writes the files above at the end of every search epoch."""

    def __init__(self, output_dir: Path, pictures: bool = True) -> None:
        self.dir = Path(output_dir)
        self.pictures = pictures

    def on_train_epoch_end(self, trainer: pl.Trainer, module: Any) -> None:
        # Lightning runs callbacks' epoch-end hooks before the module's, so make sure the
        # module has summarised the epoch (idempotent) before writing it out
        module.summarize_epoch()
        self.write(trainer, module)

    def write(self, trainer: pl.Trainer, module: Any) -> None:
        if not trainer.is_global_zero:
            return
        ops = tuple(module.controller.ops)
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / "sampled_archs.csv"
        new = not path.exists()
        with path.open("a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(["epoch", "update", "arc", "reward"])
            for s in module.epoch_samples:
                arc = " ".join(map(str, s["arch"].to_ints(ops)))
                w.writerow([s["epoch"], s["update"], arc, f"{s['reward']:.6f}"])
        (self.dir / "history.json").write_text(
            json.dumps(history_json(module.history, ops), indent=1) + "\n"
        )
        if not module.history:
            return
        last = module.history[-1]
        if self.pictures and "greedy_arch" in last:
            pics = self.dir / "pictures"
            pics.mkdir(exist_ok=True)
            render(arch_dot(last["greedy_arch"]), pics / f"greedy_epoch{last['epoch']}")
        if any("op_probs" in h for h in module.history):
            plots = self.dir / "plots"
            plots.mkdir(exist_ok=True)
            plot_op_probs(module.history, plots / "op_probs.png", op_names=list(ops))
            plot_curves(
                module.history,
                ["reward", "baseline", "entropy", "skip_rate"],
                plots / "controller.png",
                title="controller",
            )

"""What a search leaves in its run directory while it runs (rank 0 only).

- ``sampled_archs.csv``: every architecture the controller phase rewarded (epoch, update, arc in
  the authors' integer format, reward);
- ``history.json``: per-epoch controller summary (reward, baseline, entropy, op probabilities,
  skip rate, greedy architecture);
- ``pictures/greedy_epoch{N}.dot|png|svg``: the controller's greedy architecture each epoch;
- ``plots/op_probs.png``, ``plots/controller.png``: the controller converging (or collapsing),
  redrawn every ``logger.plot_every_n_epochs`` epochs and at the last one.

The CSV rows and ``history.json`` land whole or not at all (:mod:`enas_lightning.files`); a
picture or a plot that cannot be written costs one warning line, not the search.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from enas_lightning.files import appending, optional, write_text
from enas_lightning.search.history import EpochSummary
from enas_lightning.viz import arch_dot, plot_curves, plot_op_probs, render


def history_json(history: list[EpochSummary], ops: tuple[str, ...]) -> list[dict[str, Any]]:
    """The epoch summaries as ``history.json`` holds them (greedy architectures written with
    the space's op names ``ops``): one dict per epoch, see :meth:`EpochSummary.to_dict`."""
    return [h.to_dict(ops) for h in history]


def plots_due(trainer: pl.Trainer, every: int) -> bool:
    """Whether the epoch ending now redraws the controller plots: every ``every``-th epoch
    (counting from 1) and the search's last, also when it stops early."""
    epoch = trainer.current_epoch + 1
    last = trainer.max_epochs is not None and epoch >= trainer.max_epochs
    return epoch % every == 0 or last or trainer.should_stop


class SearchArtifacts(pl.Callback):
    """Writes the files above at the end of every search epoch (the plots every
    ``plot_every`` epochs and at the last)."""

    def __init__(self, output_dir: Path, pictures: bool = True, plot_every: int = 1) -> None:
        self.dir = Path(output_dir)
        self.pictures = pictures
        self.plot_every = plot_every
        # the last greedy architecture drawn and the files drawn for it
        self._drawn: tuple[Any, list[Path]] | None = None

    def on_train_epoch_end(self, trainer: pl.Trainer, module: Any) -> None:
        # Lightning runs callbacks' epoch-end hooks before the module's, so make sure the
        # module has summarised the epoch (idempotent) before writing it out
        module.summarize_epoch()
        self.write(trainer, module)

    def draw(self, arch: Any, stem: Path) -> None:
        """``stem``.dot/png/svg of the greedy architecture ``arch``: copies of the previous
        epoch's files when it drew the same architecture (the greedy architecture often stays
        for many epochs, and a Graphviz drawing took 0.13 s an epoch in the quickstart, a
        copy a millisecond), else drawn (:func:`~enas_lightning.viz.render`)."""
        if self._drawn is not None and self._drawn[0] == arch:
            copies = [stem.with_name(stem.name + f.suffix) for f in self._drawn[1]]
            try:
                for src, dst in zip(self._drawn[1], copies, strict=True):
                    shutil.copyfile(src, dst)
            except OSError:  # an earlier picture removed meanwhile: draw it again
                pass
            else:
                self._drawn = (arch, copies)
                return
        self._drawn = None
        self._drawn = (arch, render(arch_dot(arch), stem))

    def write(self, trainer: pl.Trainer, module: Any) -> None:
        if not trainer.is_global_zero:
            return
        ops = tuple(module.controller.ops)
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / "sampled_archs.csv"
        new = not path.exists()
        with appending(path) as f:
            w = csv.writer(f)
            if new:
                w.writerow(["epoch", "update", "arc", "reward"])
            for s in module.epoch_samples:
                arc = " ".join(map(str, s["arch"].to_ints(ops)))
                w.writerow([s["epoch"], s["update"], arc, f"{s['reward']:.6f}"])
        history: list[EpochSummary] = module.history
        as_json = history_json(history, ops)
        write_text(self.dir / "history.json", json.dumps(as_json, indent=1) + "\n")
        if not history:
            return
        last = history[-1]
        if self.pictures and last.greedy_arch is not None:
            pics = self.dir / "pictures"
            with optional(pics / f"greedy_epoch{last.epoch}.png"):
                pics.mkdir(exist_ok=True)
                self.draw(last.greedy_arch, pics / f"greedy_epoch{last.epoch}")
        if any(h.controller_ran for h in history) and plots_due(trainer, self.plot_every):
            plots = self.dir / "plots"
            with optional(plots / "op_probs.png"):
                plots.mkdir(exist_ok=True)
                # the plots read the plain dicts of history.json (the format they document)
                plot_op_probs(as_json, plots / "op_probs.png", op_names=list(ops))
            with optional(plots / "controller.png"):
                plot_curves(
                    as_json,
                    # and the space's own statistics (sorted: the same panels on every run)
                    [
                        "reward",
                        "baseline",
                        "entropy",
                        *sorted({k for h in history for k in h.space_stats}),
                    ],
                    plots / "controller.png",
                    title="controller",
                )

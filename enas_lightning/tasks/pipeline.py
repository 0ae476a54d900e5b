"""``task=pipeline``: search, derivation and final training in one run directory.

``<run>/search`` holds the search (``best_arch.json`` among others), ``<run>/final`` the final
training of the derived architecture; ``<run>/pipeline.json`` sums up both.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from enas_lightning.config import Config
from enas_lightning.files import write_text
from enas_lightning.rewards import get_reward
from enas_lightning.tasks import Task, register_task
from enas_lightning.tasks.common import check_search
from enas_lightning.tasks.final import run_final_arch
from enas_lightning.tasks.search import run_search

# best_arch.json's scores besides the derived architecture's: <prefix>_<metric>
DERIVATION_KEYS = ("greedy", "controller_mean", "uniform_mean")


def run_pipeline(cfg: Config, output_dir: Path) -> float | None:
    start = time.time()
    val_acc, arch, arch_path = run_search(cfg, output_dir / "search")
    # every rank holds the same derived record, so no rank waits for rank 0's file
    metrics = run_final_arch(cfg, arch, output_dir / "final", in_pipeline=True)
    if metrics:
        # rank 0 wrote it before the final training, whose collectives every rank has passed
        path = Path(arch_path)
        derived = json.loads(path.read_text()) if path.is_file() else {}
        metric = get_reward(cfg.reward.name).metric  # val_acc, or the reward's score
        summary = {
            f"search_{metric}": val_acc,  # the derived architecture's, with the shared weights
            # the random reference and the controller's own: see Derivation
            **{f"search_{k}_{metric}": derived.get(f"{k}_{metric}") for k in DERIVATION_KEYS},
            "arch": str(arch_path),
            "test_acc": metrics["test_acc"],
            "best_test_acc": metrics["best_test_acc"],
            "params": metrics["params"],
            "wall_time_s": time.time() - start,
        }
        write_text(output_dir / "pipeline.json", json.dumps(summary, indent=2) + "\n")
        print(f"pipeline finished in {summary['wall_time_s']:.0f} s: {output_dir}", flush=True)
        return metrics["test_acc"]
    return None


register_task(Task("pipeline", run=run_pipeline, check=check_search))

"""Child-training throughput of the search on 1 and 2 CPU processes (DDP, gloo).

    PYTHONPATH=. python bench/ddp_scaling.py [--steps 30] [--batch-size 32] [--devices 1 2]

Each setting runs in its own subprocess (``--worker``), which Lightning relaunches per rank as
it does for the CLI. The controller is the uniform one (``controller=random``), so every step is
a child step: the number is shared-weight training images per second over all ranks, the same
per-rank batch for every process count, after ``--warmup`` steps. Prints a table and appends it,
with the machine, torch version and config, to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "RESULTS.md"
HEADER = "# Benchmarks\n\nAppended by the scripts in `bench/`; newest last.\n"


def overrides(a: argparse.Namespace, devices: int, out: str) -> list[str]:
    return [
        "dataset=fake",
        f"dataset.train_size={a.batch_size * a.steps * max(a.devices) + 64}",
        f"dataset.image_size={a.image_size}",
        "trainer=cpu",
        f"trainer.devices={devices}",
        "controller=random",
        "search.epochs=1",
        f"search.batch_size={a.batch_size}",
        f"search.child_batches={a.steps}",
        f"search_space.layers={a.layers}",
        f"search_space.channels={a.channels}",
        "logger=none",
        f"output_dir={out}",
    ]


def worker(a: argparse.Namespace) -> None:
    """One fit; rank 0 writes ``{"images_per_s", "world", "threads"}`` to ``a.result``."""
    import pytorch_lightning as pl
    import torch
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from enas_lightning.app import CONF_DIR  # registers the structured configs
    from enas_lightning.build import build_controller, build_supernet, build_trainer
    from enas_lightning.data.datasets import load_splits
    from enas_lightning.data.device import DeviceSplits
    from enas_lightning.search.module import SearchModule

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=overrides(a, a.worker_devices, a.out))
        OmegaConf.resolve(cfg)
    # a plain script, not a Hydra app: Lightning must relaunch rank 1 as `python <script> argv`
    HydraConfig.instance().cfg = None
    splits = load_splits(cfg.dataset, holdout=True)
    data = DeviceSplits(splits, pad=cfg.dataset.pad, flip=cfg.dataset.flip)
    module = SearchModule(build_supernet(cfg, splits), build_controller(cfg), data, cfg)

    class Clock(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == a.warmup:
                self.t0 = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if batch_idx == a.steps - 1:
                self.t1 = time.perf_counter()

    clock = Clock()
    trainer = build_trainer(
        cfg, "search", Path(a.out), 1, [clock], False, enable_checkpointing=False
    )
    trainer.fit(module)
    if trainer.is_global_zero:
        images = (a.steps - a.warmup) * a.batch_size * trainer.world_size
        result = {
            "images_per_s": images / (clock.t1 - clock.t0),
            "world": trainer.world_size,
            "threads": torch.get_num_threads(),
        }
        Path(a.result).write_text(json.dumps(result))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devices", type=int, nargs="+", default=[1, 2])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--channels", type=int, default=8)
    p.add_argument("--image-size", type=int, default=16)
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads per process (OMP_NUM_THREADS); 0: Lightning's cpus / processes",
    )
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--worker-devices", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--out", default="", help=argparse.SUPPRESS)
    p.add_argument("--result", default="", help=argparse.SUPPRESS)
    a, _ = p.parse_known_args()  # a relaunched rank may get extra (Hydra) arguments
    if a.worker:
        worker(a)
        return
    import torch

    load = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in a.devices:
            result = Path(tmp) / f"result{n}.json"
            cmd = [sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]]
            cmd += ["--worker", f"--worker-devices={n}", f"--out={tmp}/run{n}"]
            cmd += [f"--result={result}"]
            env = {**os.environ, "PYTHONPATH": str(REPO)}
            if a.threads:
                env["OMP_NUM_THREADS"] = str(a.threads)
            subprocess.run(cmd, check=True, env=env, cwd=REPO, capture_output=True)
            rows.append(json.loads(result.read_text()))
    base = rows[0]["images_per_s"] / rows[0]["world"]
    lines = [
        "| processes | torch threads / process | images/s (all ranks) | speed-up | efficiency |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        speedup = r["images_per_s"] / rows[0]["images_per_s"]
        eff = r["images_per_s"] / (base * r["world"])
        lines.append(
            f"| {r['world']} | {r['threads']} | {r['images_per_s']:.1f} | {speedup:.2f}x "
            f"| {eff:.0%} |"
        )
    table = "\n".join(lines)
    print(table)
    cfg = " ".join(overrides(a, 0, "-")[:-1]).replace("trainer.devices=0 ", "")
    section = (
        f"\n## DDP scaling, child training ({time.strftime('%Y-%m-%d %H:%M')})\n\n"
        f"- machine: `{platform.platform()}`, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs; load average before the run {load:.1f} (other work on the "
        "machine skews the numbers)\n"
        f"- torch {torch.__version__}, gloo backend, DDP with find_unused_parameters\n"
        f"- config: `{cfg}`; {a.steps} steps, first {a.warmup} not timed; same per-rank batch "
        f"({a.batch_size}) for every process count\n\n{table}\n"
    )
    if not RESULTS.exists():
        RESULTS.write_text(HEADER)
    with RESULTS.open("a") as f:
        f.write(section)


if __name__ == "__main__":
    main()

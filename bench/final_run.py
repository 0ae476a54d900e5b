"""Whole final-training runs, compile time included: today's default against the CPU levers.

``bench/cpu_levers.py`` times final-training *steps*; a user waits for a whole run. This script
runs ``python -m enas_lightning task=final`` itself, one subprocess per run, on the same seeded
architecture and fake CIFAR-size data (``cpu_levers.py``'s ``cifar`` shapes: micro 6+2 cells of
20 channels with the presets' drop path and aux head, macro 12 layers of 36 channels; batch 32;
``--steps`` optimizer steps in ``--epochs`` epochs), and times each from process start to exit:
imports, data, model building, compiling (when the variant compiles), every training step and
the test evaluation. Variants (``--variants``):

- ``default``: ``trainer=cpu`` as it ships (fp32, NCHW, eager; one thread);
- ``channels_last``: ``final.channels_last=true`` (what the paper presets set);
- ``channels_last+compile``: plus ``final.compile=true`` with an **empty** inductor cache (cold:
  a first run of this network on the machine);
- ``channels_last+compile warm``: the same, the cache the cold run filled (a second run, e.g. a
  second seed of the same architecture, finds it under ``~/.cache/enas_lightning/inductor``);
- ``bf16``/``channels_last+bf16``: ``trainer.precision=bf16-mixed`` (on a CPU without native
  bf16 it only measures the emulation).

Rounds alternate the order (A B .. B A) so that a linear drift of the machine cancels; the table
gives medians over rounds and the speed-up of each variant's whole run over ``default``'s. The
compile time is in the compiled runs' wall time, not subtracted: how much it weighs depends on
``--steps`` (``cpu_levers.py`` gives the break-even).

    PYTHONPATH=. python bench/final_run.py [--space micro|macro|both] [--steps 400]
        [--epochs 2] [--rounds 1] [--variants default channels_last ...] [--quick] [--no-append]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

from cpu_levers import FINAL_VARIANTS, SIZES  # noqa: E402  (bench/ is on the path above)

# name: (config overrides, inductor cache: None | "cold" | "warm"); the overrides are
# cpu_levers.py's final variants, so both benches measure the same settings
VARIANTS = {
    "default": (FINAL_VARIANTS["fp32"], None),
    "channels_last": (FINAL_VARIANTS["channels_last"], None),
    "channels_last+compile": (FINAL_VARIANTS["channels_last+compile"], "cold"),
    "channels_last+compile warm": (FINAL_VARIANTS["channels_last+compile"], "warm"),
    "bf16": (FINAL_VARIANTS["bf16"], None),
    "channels_last+bf16": (FINAL_VARIANTS["channels_last+bf16"], None),
}
# cpu_levers.py's cifar final shapes; drop path and aux head as the presets run them
SHAPES = {
    space: [o for o in opts if o.startswith(("final.layers=", "final.channels="))]
    for space, opts in SIZES["cifar"].items()
}
BATCH = 32
HEADER = [
    "space",
    "variant",
    "steps",
    "process s",
    "training s",
    "speed-up vs default (process)",
    "s per round",
    "test acc",
    "error",
]


TINY = {  # --quick: a smoke test of the script (8x8 images, 3 layers of 4 channels)
    space: ["final.layers=3", "final.channels=4", "dataset.image_size=8", "dataset.pad=1"]
    for space in SHAPES
}


def overrides(space: str, steps: int, epochs: int, quick: bool = False) -> list[str]:
    """The run's Hydra overrides: fake 32x32x3 data with ``steps / epochs`` batches an epoch."""
    per_epoch = -(-steps // epochs)
    return [
        f"search_space={space}",
        "trainer=cpu",
        "dataset=fake",
        "dataset.image_size=32",
        "dataset.channels=3",
        "dataset.num_classes=10",
        "dataset.pad=4",
        f"dataset.train_size={per_epoch * BATCH}",
        "dataset.test_size=64" if quick else "dataset.test_size=500",
        "logger=none",
        "trainer.enable_progress_bar=false",
        f"final.epochs={epochs}",
        f"final.test_every={epochs}",  # the test split once, at the end, as a run does
        f"final.batch_size={BATCH}",
        *(TINY if quick else SHAPES)[space],
    ]


def seeded_arch(space: str, path: Path, quick: bool = False) -> Path:
    """The architecture every variant trains: the search space's controller, seed 0 (macro:
    as many layers as the final network has)."""
    import torch
    from search_epoch import compose_cfg

    from enas_lightning.arch.io import save_arch
    from enas_lightning.build import build_controller

    layers = [o.replace("final.", "search_space.") for o in (TINY if quick else SHAPES)[space]]
    extra = [o for o in layers if o.startswith("search_space.layers=")] if space == "macro" else []
    cfg = compose_cfg(space, ["dataset.num_classes=10", *extra], str(path.parent))
    arch = build_controller(cfg).sample_archs(1, torch.Generator().manual_seed(0))[0]
    save_arch(arch, path, tuple(cfg.search_space.ops))
    return path


def run_one(space: str, name: str, a: argparse.Namespace, arch: Path, cache_dir: Path) -> dict:
    """One whole ``task=final`` run in its own process; its seconds and metrics. A compiling
    variant keeps inductor's cache in ``cache_dir`` (empty for the cold run of a round)."""
    extra, cache = VARIANTS[name]
    tag = name.replace(" ", "_").replace("+", "_")
    out = cache_dir.parent / f"{space}-{tag}-{time.monotonic_ns()}"
    cmd = [sys.executable, "-m", "enas_lightning", "task=final", f"arch={arch}"]
    cmd += [*overrides(space, a.steps, a.epochs, a.quick), *extra, f"hydra.run.dir={out}"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    if cache is not None:
        env["TORCHINDUCTOR_CACHE_DIR"] = str(cache_dir)
    t = time.perf_counter()
    try:
        p = subprocess.run(
            cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=a.timeout
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timeout > {a.timeout:.0f} s"}
    wall = time.perf_counter() - t
    metrics = out / "metrics.json"
    if p.returncode != 0 or not metrics.exists():
        return {"error": (p.stderr.strip().splitlines() or ["no output"])[-1][:160]}
    m = json.loads(metrics.read_text())
    print(f"  {space} {name}: {wall:.1f} s (training {m['wall_time_s']:.1f} s)", flush=True)
    return {"process_s": wall, "training_s": m["wall_time_s"], "test_acc": m["test_acc"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", choices=["micro", "macro", "both"], default="both")
    p.add_argument("--steps", type=int, default=400, help="optimizer steps per run")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS)[:4])
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per run")
    p.add_argument("--quick", action="store_true", help="tiny shapes (a smoke test)")
    p.add_argument("--no-append", action="store_true")
    a = p.parse_args()
    if a.steps < a.epochs or a.epochs < 1:
        p.error(f"--steps={a.steps} --epochs={a.epochs}: need 1 <= epochs <= steps")
    names = ["default", *[n for n in a.variants if n != "default"]]
    if "channels_last+compile warm" in names and "channels_last+compile" not in names:
        p.error(
            "--variants: 'channels_last+compile warm' needs 'channels_last+compile' (its cache)"
        )
    from _common import load_average, report, table

    spaces = ("micro", "macro") if a.space == "both" else (a.space,)
    before = load_average()
    start = time.perf_counter()
    runs: dict[tuple[str, str], list[dict]] = {(s, n): [] for s in spaces for n in names}
    errors: dict[tuple[str, str], str] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        archs = {s: seeded_arch(s, tmp / f"arch-{s}.json", a.quick) for s in spaces}
        # the warm run reads the cache its cold run just filled: the pair stays in that order
        units = [n for n in names if n != "channels_last+compile warm"]
        for r in range(a.rounds):
            print(f"round {r + 1}/{a.rounds}", flush=True)
            order = [(sp, n) for sp in spaces for n in units]
            for sp, n in order if r % 2 == 0 else order[::-1]:
                pair = [n, f"{n} warm"] if f"{n} warm" in names else [n]
                for name in pair:
                    out = run_one(sp, name, a, archs[sp], tmp / f"inductor-{sp}-{r}")
                    if "error" in out:
                        errors[sp, name] = out["error"]
                        print(f"  {sp} {name}: {out['error']}", flush=True)
                    else:
                        runs[sp, name].append(out)
    rows = []
    for s in spaces:
        base = [x["process_s"] for x in runs[s, "default"]]
        for n in names:
            got = runs[s, n]
            proc = statistics.median(x["process_s"] for x in got) if got else float("nan")
            train = statistics.median(x["training_s"] for x in got) if got else float("nan")
            acc = statistics.median(x["test_acc"] for x in got) if got else float("nan")
            speed = statistics.median(base) / proc if base and got else float("nan")
            per_round = " ".join(f"{x['process_s']:.0f}" for x in got)
            rows.append([s, n, a.steps, proc, train, speed, per_round, acc, errors.get((s, n), "")])
    config = {
        "spaces": "/".join(spaces),
        "steps": a.steps,
        "epochs": a.epochs,
        "batch": BATCH,
        "rounds": a.rounds,
        "threads": 1,
        "wall": f"{time.perf_counter() - start:.0f} s",
        **{f"{s} overrides": " ".join(overrides(s, a.steps, a.epochs, a.quick)) for s in spaces},
    }
    notes = [
        "Whole `task=final` runs, each its own process (process s: start to exit, compile and "
        "the test evaluation included; training s: the run's own wall_time_s). The compiled "
        "runs' compile time is inside their seconds. Test accuracy is on fake data (a check "
        "that the run trained, not a measure).",
    ]
    report(
        "Whole final-training runs (CPU)",
        config,
        table(HEADER, rows),
        notes,
        append=not a.no_append,
        load_before=before,
    )


if __name__ == "__main__":
    main()

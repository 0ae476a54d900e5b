"""The CPU speed levers, measured: channels_last, bf16-mixed, both, torch.compile, and DDP ranks
against threads.

For each space (micro, macro) and size:

- ``quick``: the quickstart's shapes (conf/experiment/quickstart.yaml: 8x8x1 images, search
  3 layers x 8 channels, batch 32; final 3 layers x 16 channels, batch 64), on fake data of
  that shape (timings depend on shapes, not pixels);
- ``cifar``: 32x32x3 images with the micro/macro search presets' widths (micro 6 layers x 20
  channels, 5 nodes; macro 12 layers x 36 channels), batch 32 and a few hundred images so that
  an epoch is short; the final network at the same widths, batch 32, without drop path;

it times

- ``search``: one whole search epoch, child phase + controller phase (``bench/search_epoch.py``'s
  ``one_epoch``: SearchModule in a pl.Trainer), under fp32 NCHW, ``search.channels_last``,
  ``trainer.precision=bf16-mixed`` and both;
- ``final``: ``--steps`` training steps of the standalone network (FinalModule in a pl.Trainer,
  as ``task=final`` builds it, no test evaluation) under the same four and ``final.compile=true``
  (fp32 NCHW). Seconds per step: the median of the steps after the first ``--warmup``. The
  compile time is the compiled run's first ``--warmup`` steps less as many compiled steps; its
  break-even is compile s / (eager - compiled s per step), the step count past which compiling
  pays (``final.compile=auto`` compiles past ``final.compile_min_steps``, to be set from it).
  Round 1 compiles with an empty inductor cache (cold), later rounds (``--compile-rounds`` > 1)
  reuse it (warm: what a second run finds in ``~/.cache/enas_lightning/inductor``); measured
  once (micro at the quickstart's size, a loaded 2-core machine): 330 s cold, 170 s warm, the
  compiled step no faster than eager. The test evaluation (an eval-mode
  graph, compiled once more) is not counted. The "graphs compiled" column counts dynamo's
  graphs: more than two (the first call's, then one with the growing drop-path keep probability
  symbolic) would mean it recompiles per step;
- ``ddp``: the whole search epoch on 1 process x 2 threads against 2 DDP ranks x 1 thread
  (gloo, Lightning relaunching this script per rank, as ``bench/ddp_scaling.py`` does), each
  rank with half the child steps and half of ``controller.num_aggregate``, so that both do the
  same child steps and controller updates of as many architectures.

Every measurement runs in its own subprocess (no thread pool, dynamo or allocator state carried
over; only inductor's on-disk cache, on purpose), the variants interleaved in rounds, round-robin, every other round in reverse
order (2 rounds by default: A B ... B A, a linear drift of the machine cancels); the table
gives the median over rounds. Prints a table and appends it, with the machine,
its CPU flags (avx512_bf16, amx) and the config, to ``bench/RESULTS.md``.

    PYTHONPATH=. python bench/cpu_levers.py [--space micro|macro|both] [--size quick|cifar|both]
        [--rounds 2] [--only search final ddp] [--variants fp32 compile ...] [--steps 10]
        [--threads 1] [--compile-rounds 1] [--compile-timeout 300] [--quick] [--no-append]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

SEARCH_VARIANTS = {  # name: config overrides
    "fp32": [],
    "channels_last": ["search.channels_last=true"],
    "bf16": ["trainer.precision=bf16-mixed"],
    "channels_last+bf16": ["search.channels_last=true", "trainer.precision=bf16-mixed"],
}
FINAL_VARIANTS = {
    "fp32": [],
    "channels_last": ["final.channels_last=true"],
    "bf16": ["trainer.precision=bf16-mixed"],
    "channels_last+bf16": ["final.channels_last=true", "trainer.precision=bf16-mixed"],
    "compile": ["final.compile=true"],
    "channels_last+compile": ["final.channels_last=true", "final.compile=true"],
}
SEARCH_HEADER = [
    "space",
    "size",
    "variant",
    "child s",
    "controller s",
    "epoch s",
    "speed-up vs fp32",
    "error",
]
FINAL_HEADER = [
    "space",
    "size",
    "variant",
    "s/step",
    "speed-up vs fp32",
    "compile s cold",
    "compile s warm",
    "break-even steps cold",
    "break-even steps warm",
    "graphs compiled",
    "error",
]
DDP_HEADER = [
    "space",
    "size",
    "layout",
    "child s",
    "controller s",
    "epoch s",
    "speed-up vs 1 process",
    "error",
]
DDP_VARIANTS = {"1proc-2threads": (1, 2), "2ranks-1thread": (2, 1)}  # (processes, threads)

# the quickstart's shapes (conf/experiment/quickstart.yaml), fake data of the digits' shape
QUICK_DATA = [
    "dataset.image_size=8",
    "dataset.channels=1",
    "dataset.pad=1",
    "dataset.flip=false",
    "dataset.train_size=1437",  # digits' 1797 less its 360 test images; 300 of them validation
    "dataset.val_size=300",
]
SIZES: dict[str, dict[str, list[str]]] = {
    "quick": {
        "micro": [
            *QUICK_DATA,
            "search_space.layers=3",
            "search_space.channels=8",
            "search_space.num_nodes=4",
            "search_space.aux_weight=0",
            "search.batch_size=32",
            "search.eval_batch_size=300",
            "controller.train_steps=10",
            "controller.num_aggregate=10",
            "final.layers=3",
            "final.channels=16",
            "final.batch_size=64",
            "final.aux_weight=0",
            "final.drop_path_keep=1.0",
            "final.cutout=0",
        ],
        "macro": [
            *QUICK_DATA,
            "search_space.layers=3",
            "search_space.channels=8",
            "search.batch_size=32",
            "search.eval_batch_size=300",
            "controller.train_steps=10",
            "controller.num_aggregate=10",
            "final.layers=3",
            "final.channels=16",
            "final.batch_size=64",
            "final.cutout=0",
        ],
    },
    "cifar": {  # the presets' widths (search_space=micro|macro defaults), fewer images
        space: [
            "dataset.train_size=320",  # 256 training images: 8 child steps of 32
            "dataset.val_size=64",
            "search.batch_size=32",
            "search.eval_batch_size=64",
            "controller.train_steps=2",
            f"final.layers={layers}",
            f"final.channels={channels}",
            "final.batch_size=32",
            # drop path as the presets run it (micro 0.6; macro has none): it compiles into
            # one graph (spaces/ops.drop_path)
        ]
        for space, layers, channels in (("micro", 6, 20), ("macro", 12, 36))
    },
    # --quick: tiny shapes, a smoke test of the script
    "tiny": {
        space: [
            "dataset.image_size=8",
            "dataset.train_size=96",
            "dataset.val_size=32",
            "search_space.layers=3",
            "search_space.channels=4",
            *(["search_space.num_nodes=2"] if space == "micro" else []),
            "search.batch_size=16",
            "search.eval_batch_size=32",
            "controller.train_steps=2",
            "controller.num_aggregate=2",
            "final.layers=3",
            "final.channels=4",
            "final.batch_size=16",
        ]
        for space in ("micro", "macro")
    },
}


# ------------------------------------------------------------------------------- the machine
def cpu_flags() -> dict[str, str]:
    """The CPU features that decide the levers' worth, and what torch makes of them."""
    import torch

    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    info = {
        name: ("yes" if name in flags else "no")
        for name in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    }
    info["torch cpu capability"] = torch.backends.cpu.get_cpu_capability()
    info["mkldnn"] = str(torch.backends.mkldnn.is_available())
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    info["mkldnn bf16"] = str(check()) if check is not None else "n/a"
    return info


# ----------------------------------------------------------------------------- the workers
def compose(space: str, size: str, variant: list[str], out: str, extra: list[str]):
    from search_epoch import compose_cfg

    return compose_cfg(
        space,
        [
            "trainer=cpu",
            "dataset.num_classes=10",
            "search.derive_samples=1",  # one_epoch derives: keep it short, it is not timed here
            *SIZES[size][space],
            *variant,
            *extra,
        ],
        out,
    )


def search_worker(a: argparse.Namespace, variant: list[str], extra: list[str]) -> dict:
    """One search epoch; rank 0's phase seconds (``one_epoch``)."""
    from hydra.core.hydra_config import HydraConfig
    from search_epoch import one_epoch

    with tempfile.TemporaryDirectory() as out:
        cfg = compose(a.space, a.size, variant, out, extra)
        HydraConfig.instance().cfg = None  # a plain script: Lightning relaunches `python argv`
        r = one_epoch(cfg, time_data=False)
    import torch.distributed as dist

    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    return {**r, "rank": rank, "epoch_s": r["child_s"] + r["ctrl_s"]}


def final_worker(a: argparse.Namespace, variant: list[str]) -> dict:
    """``a.steps`` final-training steps of a seeded architecture; seconds of every step."""
    import pytorch_lightning as pl
    import torch

    from enas_lightning.build import build_controller, build_trainer, validate
    from enas_lightning.data.datasets import load_splits
    from enas_lightning.data.device import DeviceSplits
    from enas_lightning.final.module import FinalModule
    from enas_lightning.final.train import build_final_network

    if a.compile_backend != "inductor":  # --quick: the same path without inductor's minutes
        compile_ = torch.compile
        torch.compile = lambda model, **kw: compile_(model, backend=a.compile_backend, **kw)

    class StepClock(pl.Callback):
        def __init__(self) -> None:
            self.seconds: list[float] = []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            self.t = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.seconds.append(time.perf_counter() - self.t)

    with tempfile.TemporaryDirectory() as out:
        batch = int(next(o for o in SIZES[a.size][a.space] if o.startswith("final.batch_size=")).split("=")[1])  # fmt: skip
        size = [f"dataset.train_size={batch * a.steps + 300}"]  # a.steps batches, holdout=False
        cfg = compose(a.space, a.size, variant, out, size)
        validate(cfg)
        arch = build_controller(cfg).sample_archs(1, torch.Generator().manual_seed(0))[0]
        splits = load_splits(cfg.dataset, holdout=False)
        d = cfg.dataset
        data = DeviceSplits(splits, pad=d.pad, flip=d.flip, cutout=cfg.final.cutout)
        pl.seed_everything(cfg.seed, verbose=False)
        module = FinalModule(build_final_network(cfg, arch, splits), data, cfg.final, cfg.seed)
        clock = StepClock()
        trainer = build_trainer(
            cfg,
            "final",
            Path(out),
            1,
            [clock],
            False,
            enable_checkpointing=False,
            limit_train_batches=a.steps,
            limit_val_batches=0,
        )
        trainer.fit(module)
    from torch._dynamo.utils import counters

    # more graphs than one per mode means recompiles (a guard failed: e.g. on a Python float)
    return {"step_s": clock.seconds, "rank": 0, "graphs": counters["stats"]["unique_graphs"]}


def worker(a: argparse.Namespace) -> None:
    variant = json.loads(a.variant)
    threads = [f"trainer.num_threads={a.threads}"]  # trainer=cpu's 1 unless --threads
    if a.kind == "search":
        r = search_worker(a, variant, threads)
    elif a.kind == "final":
        r = final_worker(a, [*variant, *threads])
    else:
        devices, threads = variant
        half = [
            f"controller.num_aggregate={n // devices}" for n in [num_aggregate(a.space, a.size)]
        ]
        r = search_worker(
            a, [], [f"trainer.devices={devices}", f"trainer.num_threads={threads}", *half]
        )
    if r["rank"] == 0:
        Path(a.result).write_text(json.dumps(r, default=str))


def num_aggregate(space: str, size: str) -> int:
    given = [o for o in SIZES[size][space] if o.startswith("controller.num_aggregate=")]
    if given:
        return int(given[-1].split("=")[1])
    return {"micro": 10, "macro": 20}[space]  # the presets' (conf/search_space/*.yaml)


# ------------------------------------------------------------------------------- the driver
def run_one(
    a, kind: str, space: str, size: str, name: str, variant, tmp: Path, cache: Path
) -> dict:
    """One measurement in its own subprocess; its result, or ``{"error": ...}``."""
    result = tmp / f"{kind}-{space}-{size}-{name}.json".replace(" ", "_")
    result.unlink(missing_ok=True)
    threads = variant[1] if kind == "ddp" else a.threads
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", f"--kind={kind}"]
    cmd += [f"--space={space}", f"--size={size}", f"--variant={json.dumps(variant)}"]
    cmd += [f"--result={result}", f"--steps={a.steps}", f"--compile-backend={a.compile_backend}"]
    cmd += [f"--threads={a.threads}"]
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "OMP_NUM_THREADS": str(threads),
        "TORCHINDUCTOR_CACHE_DIR": str(cache),
    }
    limit = a.compile_timeout if "compile" in name else a.timeout
    t = time.perf_counter()
    try:
        p = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout > {limit:.0f} s"}
    wall = time.perf_counter() - t
    if p.returncode != 0 or not result.exists():
        return {"error": (p.stderr.strip().splitlines() or ["no output"])[-1][:160]}
    r = json.loads(result.read_text())
    r["wall_s"] = wall
    print(f"  {kind} {space} {size} {name}: {wall:.1f} s", flush=True)
    return r


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def summarise_final(runs: list[dict], warmup: int) -> dict[str, float]:
    """Median s/step over rounds (steps after ``warmup``); compile overhead per round: the first
    ``warmup`` steps less as many steady steps."""
    ok = [r for r in runs if "step_s" in r]
    per_step = [median(r["step_s"][warmup:]) for r in ok]
    overhead = [sum(r["step_s"][:warmup]) - warmup * s for r, s in zip(ok, per_step, strict=True)]
    return {
        "s_per_step": median(per_step),
        "overhead_cold": overhead[0] if overhead else float("nan"),
        "overhead_warm": median(overhead[1:]),
    }


def break_even(compile_s: float, saved_per_step: float) -> float | str:
    """Steps after which compiling has paid for itself (compile s / s saved per step)."""
    if math.isnan(compile_s) or math.isnan(saved_per_step):
        return "n/a"
    return compile_s / saved_per_step if saved_per_step > 0 else "never (no gain)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--space", choices=("micro", "macro", "both"), default="both")
    # tiny: --quick's shapes
    p.add_argument("--size", choices=("quick", "cifar", "both", "tiny"), default="both")
    # 2 rounds, the second in reverse order (ABBA): a linear drift of the machine cancels out
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--only", choices=("search", "final", "ddp"), nargs="*", default=None)
    p.add_argument(
        "--variants",
        nargs="*",
        default=None,
        help="only these variants (e.g. fp32 compile); the baselines fp32 and 1proc-2threads "
        "are always run",
    )
    p.add_argument("--steps", type=int, default=10, help="final-training steps per run")
    p.add_argument("--warmup", type=int, default=3, help="first final steps not in s/step")
    p.add_argument("--threads", type=int, default=1, help="torch threads (search, final)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per subprocess")
    p.add_argument(
        "--compile-rounds",
        type=int,
        default=1,
        help="rounds that run the compiled variant (each compile takes minutes on 2 cores; "
        "round 1 cold, later ones with the cache warm)",
    )
    p.add_argument(
        "--compile-timeout",
        type=float,
        default=300.0,
        help="seconds for a compiled final run; past it reported as a timeout (a compile "
        "that slow loses anyway at these step counts: the break-even is then > timeout / "
        "saved s per step)",
    )
    p.add_argument("--compile-backend", default="inductor")
    p.add_argument("--quick", action="store_true", help="tiny shapes, 1 round (a smoke test)")
    p.add_argument("--no-append", action="store_true")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--kind", default="", help=argparse.SUPPRESS)
    p.add_argument("--variant", default="[]", help=argparse.SUPPRESS)
    p.add_argument("--result", default="", help=argparse.SUPPRESS)
    a, _ = p.parse_known_args()  # a relaunched DDP rank may get extra arguments
    if a.worker:
        worker(a)
        return
    from _common import load_average, report, table

    if a.quick:
        a.size, a.steps, a.warmup, a.rounds = "tiny", 5, 2, 1
        a.compile_backend = "eager"  # dynamo's path, without inductor's minutes of codegen
    spaces = ("micro", "macro") if a.space == "both" else (a.space,)
    sizes = ("quick", "cifar") if a.size == "both" else (a.size,)
    kinds = a.only or ["search", "final", "ddp"]
    variants = {"search": SEARCH_VARIANTS, "final": FINAL_VARIANTS, "ddp": DDP_VARIANTS}
    jobs = [
        (kind, space, size, name)
        for kind in kinds
        for space in spaces
        for size in sizes
        for name in variants[kind]
        if a.variants is None or name in (*a.variants, "fp32", "1proc-2threads")
    ]
    before = load_average()
    start = time.perf_counter()
    runs: dict[tuple, list[dict]] = {j: [] for j in jobs}
    errors: dict[tuple, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "inductor"  # empty in round 1 (cold), reused after (warm)
        for r in range(a.rounds):
            print(f"round {r + 1}/{a.rounds}", flush=True)
            for job in jobs if r % 2 == 0 else jobs[::-1]:
                kind, space, size, name = job
                if "compile" in name and r >= a.compile_rounds:
                    continue
                out = run_one(a, kind, space, size, name, variants[kind][name], Path(tmp), cache)
                if "error" in out:
                    errors[job] = out["error"]
                    print(f"  {job}: {out['error']}", flush=True)
                else:
                    runs[job].append(out)
    wall = time.perf_counter() - start

    def epoch_rows(kind: str, names: Iterable[str], baseline: str) -> list[list[Any]]:
        """One row per measured (space, size, variant) of a whole-epoch kind (search, ddp):
        median child / controller / epoch seconds and the speed-up over ``baseline``."""
        rows = []
        for space in spaces:
            for size in sizes:
                base = median([x["epoch_s"] for x in runs[(kind, space, size, baseline)]])
                for name in names:
                    if (kind, space, size, name) not in runs:
                        continue
                    rs = runs[(kind, space, size, name)]
                    epoch = median([x["epoch_s"] for x in rs])
                    rows.append([space, size, name, median([x["child_s"] for x in rs]),
                                 median([x["ctrl_s"] for x in rs]), epoch, base / epoch,
                                 errors.get((kind, space, size, name), "")])  # fmt: skip
        return rows

    sections = []
    if "search" in kinds:
        sections.append(
            "Search epoch (child + controller phase), median seconds over rounds\n\n"
            + table(SEARCH_HEADER, epoch_rows("search", SEARCH_VARIANTS, "fp32"))
        )
    if "final" in kinds:
        rows = []
        for space in spaces:
            for size in sizes:
                stats = {n: summarise_final(runs[("final", space, size, n)], a.warmup) for n in FINAL_VARIANTS if ("final", space, size, n) in runs}  # fmt: skip
                eager = stats["fp32"]["s_per_step"]
                for name, s in stats.items():
                    cold = warm = even_cold = even_warm = graphs = ""
                    if "compile" in name:
                        saved = eager - s["s_per_step"]
                        cold, warm = s["overhead_cold"], s["overhead_warm"]
                        even_cold, even_warm = break_even(cold, saved), break_even(warm, saved)
                        graphs = max(
                            (x.get("graphs", 0) for x in runs[("final", space, size, name)]),
                            default="",
                        )
                    rows.append([space, size, name, s["s_per_step"], eager / s["s_per_step"],
                                 cold, warm, even_cold, even_warm, graphs,
                                 errors.get(("final", space, size, name), "")])  # fmt: skip
        sections.append(
            f"Final training, {a.steps} steps per run, median s/step of steps "
            f"{a.warmup + 1}..{a.steps} over rounds; compile s: the first {a.warmup} compiled "
            "steps less as many compiled steps (cold: round 1, empty cache; warm: later rounds); "
            "break-even steps = compile s / (eager - compiled s/step); graphs compiled: dynamo's "
            "unique graphs in the run (more than two: it recompiles, e.g. on a Python float "
            "that changes every step)\n\n" + table(FINAL_HEADER, rows)
        )
    if "ddp" in kinds:
        sections.append(
            "Search epoch, 1 process x 2 threads vs 2 DDP ranks x 1 thread (rank 0's clock; "
            "each rank half the child steps and half of controller.num_aggregate)\n\n"
            + table(DDP_HEADER, epoch_rows("ddp", DDP_VARIANTS, "1proc-2threads"))
        )
    config: dict[str, Any] = {
        "spaces": "/".join(spaces),
        "sizes": "/".join(sizes),
        "rounds": a.rounds,
        "final steps": a.steps,
        "threads": a.threads,
        "compile backend": a.compile_backend,
        **cpu_flags(),
        "wall": f"{wall:.0f} s",
    }
    for size in sizes:
        for space in spaces:
            config[f"{size}/{space}"] = " ".join(SIZES[size][space])
    report(
        "CPU speed levers" + (" (--quick smoke run)" if a.quick else ""),
        config,
        "\n\n".join(sections),
        notes=[
            "Each number is a subprocess's own, the variants interleaved round-robin "
            "(alternate rounds reversed); medians over rounds."
        ],
        append=not a.no_append,
        load_before=before,
    )


if __name__ == "__main__":
    main()

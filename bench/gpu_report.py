"""The GPU measurement in one process: search phases, projections, final training throughput.

Run by ``bench/gpu.sh`` (see there). On CIFAR-shaped synthetic data (32x32x3, 45k/5k):

* child phase images/s at the micro search preset (batch 160) in fp32, bf16-mixed, and
  bf16-mixed + channels_last (through ``SearchModule`` and a ``pl.Trainer``, the child phase
  capped at ``--child-steps`` steps);
* host-device synchronisations in the child steps between logging intervals (CUDA's sync debug
  mode; the search is built to have none there);
* controller phase time (30 x 10) and derivation time (``--derive-samples`` controller samples,
  the greedy one and as many uniform ones on the whole val split, scaled to the preset's 100);
* projected wall time of the 150-epoch micro search and of the 630-epoch micro final training
  (micro_final network, batch 144, eager and compiled).

Each measurement is printed as it finishes; those still due after ``--deadline`` seconds are
skipped (the table says so). One discarded child phase per precision warms cuDNN's autotuner.

``--smoke``: tiny sizes on the CPU, nothing appended (tests the script, measures nothing).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import final_throughput  # noqa: E402
import search_epoch  # noqa: E402
from _common import load_average, report, table  # noqa: E402


def search_run(overrides: list[str], **kwargs) -> dict:
    with tempfile.TemporaryDirectory() as out:
        cfg = search_epoch.compose_cfg("micro", overrides, out)
        return search_epoch.one_epoch(cfg, **kwargs)


class Clock:
    """Runs the measurements in order until ``deadline`` seconds have passed, printing each
    result as it comes: the first H200 call (2026-12-04) was killed by gpu.sh's timeout before
    its first table row, so a late measurement is skipped (``None``) rather than lost with the
    ones before it."""

    def __init__(self, deadline: float) -> None:
        self.t0, self.deadline = time.perf_counter(), deadline

    def left(self) -> float:
        return self.deadline - (time.perf_counter() - self.t0)

    def run(self, name: str, fn, *args, **kwargs):
        if self.left() <= 0:
            print(f"[gpu_report] {name}: skipped (past the {self.deadline:.0f} s deadline)")
            return None
        t = time.perf_counter()
        r = fn(*args, **kwargs)
        brief = {k: v for k, v in r.items() if k != "device"} if isinstance(r, dict) else r
        print(f"[gpu_report] {name} ({time.perf_counter() - t:.1f} s): {brief}", flush=True)
        return r


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU, no append")
    p.add_argument("--child-steps", type=int, default=100)
    p.add_argument("--derive-samples", type=int, default=10, help="of the preset's 100")
    p.add_argument("--compile-timeout", type=float, default=120.0)
    p.add_argument(
        "--deadline", type=float, default=380.0, help="seconds; later measurements are skipped"
    )
    args = p.parse_args()
    cuda = torch.cuda.is_available() and not args.smoke
    if not cuda and not args.smoke:
        sys.exit("gpu_report.py: no CUDA device (use --smoke to test the script on the CPU)")
    clock = Clock(args.deadline)
    if args.smoke:
        torch.set_num_threads(1)
        base = [
            "trainer=cpu",
            "dataset.train_size=96",
            "dataset.val_size=32",
            "search.batch_size=16",
            "search.eval_batch_size=32",
            "search_space.layers=3",
            "search_space.channels=4",
            "search_space.num_nodes=3",
            "controller.train_steps=2",
            "controller.num_aggregate=2",
        ]
        final_args = dict(layers=3, channels=4, batch=8, steps=1, repeats=1, backend="eager")
    else:
        torch.backends.cudnn.benchmark = True
        base = ["trainer=gpu", "dataset.train_size=50000", "dataset.val_size=5000"]
        final_args = dict(
            layers=15, channels=36, batch=144, steps=20, repeats=3, backend="inductor"
        )
    before = load_average()
    cap = f"search.child_batches={args.child_steps if not args.smoke else 2}"
    derive = f"search.derive_samples={args.derive_samples if not args.smoke else 2}"
    # child phase only (random controller: no controller phase, one candidate on one batch)
    quick = [cap, "controller=random", "search.derive_samples=1", "search.derive_batches=1"]
    fp32_set, bf16_set = "trainer.precision=32-true", "trainer.precision=bf16-mixed"
    # cuDNN's autotuner (cudnn.benchmark) times every new convolution shape on first sight and
    # each child brings new ones: on the H200 the first fp32 child phase ran at 533 img/s and a
    # later one at 1795. One discarded child phase per precision first.
    clock.run("warm-up fp32", search_run, [*base, *quick, fp32_set], time_data=False)
    # fp32: the whole epoch (capped child phase, 30 x 10 controller, derivation)
    fp32 = clock.run("fp32 epoch", search_run, [*base, cap, derive, fp32_set], time_data=False)
    clock.run("warm-up bf16", search_run, [*base, *quick, bf16_set], time_data=False)
    bf16 = clock.run("bf16 child phase", search_run, [*base, *quick, bf16_set], time_data=False)
    bf16_cl = clock.run(
        "bf16 channels_last child phase",
        search_run,
        [*base, *quick, bf16_set],
        channels_last=True,
        time_data=False,
    )
    # the data path timed per call (a sync per step, so in a run of its own)
    data = clock.run("data path", search_run, [*base, *quick, fp32_set], time_data=True)
    # host-device synchronisations of the child steps between logging intervals (CUDA's sync
    # debug mode; expected 0)
    syncs = (
        clock.run(
            "host syncs",
            search_run,
            [*base, *quick, fp32_set],
            time_data=False,
            count_syncs=True,
        )
        if cuda
        else None
    )
    cfg = search_epoch.compose_cfg("micro", base, "/tmp")
    n_train = cfg.dataset.train_size - cfg.dataset.val_size
    epochs, k_preset = cfg.search.epochs, cfg.search.derive_samples
    k_used = args.derive_samples if not args.smoke else 2
    # the derivation scores K controller samples, the greedy one and K uniform ones
    derive_full = None if fp32 is None else fp32["derive_s"] * (2 * k_preset + 1) / (2 * k_used + 1)
    skipped = ["skipped", "past the deadline"]

    def child_row(label: str, r: dict | None) -> list:
        if r is None:
            return [label, *skipped]
        if fp32 is None:
            return [label, f"{r['images_per_s']:.0f} img/s", ""]
        hours = (epochs * (n_train / r["images_per_s"] + fp32["ctrl_s"]) + derive_full) / 3600
        return [label, f"{r['images_per_s']:.0f} img/s", f"{hours:.2f} h search"]

    c = cfg.controller
    rows = [
        child_row("child phase fp32", fp32),
        child_row("child phase bf16-mixed", bf16),
        child_row("child phase bf16-mixed + channels_last", bf16_cl),
        ["host syncs in child steps between logging intervals", "n/a on CPU" if not cuda else skipped[0] if syncs is None else f"{syncs['quiet_steps_syncs'][1]} in {syncs['quiet_steps_syncs'][0]} steps", "torch.cuda.set_sync_debug_mode('warn')"],
        ["  of which train_batch (fp32)", *skipped] if data is None else ["  of which train_batch (fp32)", f"{1e3 * data['train_batch_s'] / data['child_steps']:.2f} ms/step", f"of {1e3 * data['child_s'] / data['child_steps']:.2f} ms/step (timed per call)"],
        [f"controller phase {c.train_steps} x {c.num_aggregate} (fp32)", *skipped] if fp32 is None else [f"controller phase {c.train_steps} x {c.num_aggregate} (fp32)", f"{fp32['ctrl_s']:.2f} s", "per epoch"],
        [f"derivation, {2 * k_used + 1} children scored (fp32)", *skipped] if fp32 is None else [f"derivation, {2 * k_used + 1} children scored (fp32)", f"{fp32['derive_s']:.2f} s", f"{derive_full:.0f} s for the preset's {2 * k_preset + 1}, once"],
    ]  # fmt: skip
    device = torch.device("cuda" if cuda else "cpu")
    fa = SimpleNamespace(**final_args, channels_last=False, no_compile=False, compile_timeout=0.0)
    n_final = 50000 * 630
    for label, bf, compile_ in (("fp32", False, False), ("bf16", True, True)):
        fa.no_compile = not compile_
        fa.compile_timeout = max(30.0, min(args.compile_timeout, clock.left()))
        measured = clock.run(f"final {label}", final_throughput.measure, fa, device, bf16=bf)
        if measured is None:
            rows.append([f"final {label}", *skipped])
            continue
        for mode, ips, note in measured[0]:
            if mode == "compiled / eager":
                continue
            proj = f"{n_final / ips / 3600:.1f} h (630 epochs)" if isinstance(ips, float) else ""
            rows.append(
                [
                    f"final {mode} {label}",
                    ips if isinstance(ips, str) else f"{ips:.0f} img/s",
                    f"{proj} {note}".strip(),
                ]
            )
    title = "GPU report" if cuda else "GPU report (smoke test on CPU, not a measurement)"
    report(
        f"{title} ({torch.cuda.get_device_name() if cuda else 'cpu'})",
        {
            "data": f"synthetic 32x32x3 {n_train}/{cfg.dataset.val_size}",
            "search": f"micro preset (layers {cfg.search_space.layers}, channels "
            f"{cfg.search_space.channels}, batch {cfg.search.batch_size}), child phase capped "
            f"at {args.child_steps if not args.smoke else 2} steps, {epochs} epochs projected",
            "final": f"micro_final {final_args['layers']} layers {final_args['channels']} "
            f"channels batch {final_args['batch']}, 630 epochs x 50k projected",
        },
        table(["measurement", "value", "projection / note"], rows),
        notes=[
            "Projected search = 150 x (45k / child img/s + controller phase) + derivation "
            "(scaled from the children scored to the preset's); projected final = 50k x 630 / "
            "img/s (evaluation not included). A warm-up child phase per precision runs first "
            "(cuDNN autotuning); measurements past the deadline are skipped, not estimated."
        ],
        append=cuda,
        load_before=before,
    )
    sys.stdout.flush()
    import os

    os._exit(0)  # a compile still running in its thread must not keep the process alive


if __name__ == "__main__":
    main()

"""The GPU measurement in one process: search phases, projections, final training throughput.

Run by ``bench/gpu.sh`` (see there). On CIFAR-shaped synthetic data (32x32x3, 45k/5k):

* child phase images/s at the micro search preset (batch 160) in fp32, bf16-mixed, and
  bf16-mixed + channels_last (through ``SearchModule`` and a ``pl.Trainer``, the child phase
  capped at ``--child-steps`` steps);
* host-device synchronisations in the child steps between logging intervals (CUDA's sync debug
  mode; the search is built to have none there);
* controller phase time (30 x 10) and derivation time (100 candidates + greedy, whole val split);
* projected wall time of the 150-epoch micro search and of the 630-epoch micro final training
  (micro_final network, batch 144, eager and compiled).

``--smoke``: tiny sizes on the CPU, nothing appended (tests the script, measures nothing).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU, no append")
    p.add_argument("--child-steps", type=int, default=100)
    p.add_argument("--compile-timeout", type=float, default=180.0)
    args = p.parse_args()
    cuda = torch.cuda.is_available() and not args.smoke
    if not cuda and not args.smoke:
        sys.exit("gpu_report.py: no CUDA device (use --smoke to test the script on the CPU)")
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
            "search.derive_samples=2",
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
    # fp32: the whole epoch (capped child phase, 30 x 10 controller, 100 candidates)
    fp32 = search_run([*base, cap, "trainer.precision=32-true"], time_data=False)
    # bf16 (and channels_last): child phase only (random controller: no controller phase)
    quick = [cap, "controller=random", "search.derive_samples=1", "search.derive_batches=1"]
    bf16 = search_run([*base, *quick, "trainer.precision=bf16-mixed"], time_data=False)
    bf16_cl = search_run(
        [*base, *quick, "trainer.precision=bf16-mixed"], channels_last=True, time_data=False
    )
    # the data path timed per call (a sync per step, so in a run of its own)
    data = search_run([*base, *quick, "trainer.precision=32-true"], time_data=True)
    # host-device synchronisations of the child steps between logging intervals (CUDA's sync
    # debug mode; expected 0)
    syncs = (
        search_run([*base, *quick, "trainer.precision=32-true"], time_data=False, count_syncs=True)
        if cuda
        else None
    )
    cfg = search_epoch.compose_cfg("micro", base, "/tmp")
    n_train = cfg.dataset.train_size - cfg.dataset.val_size
    epochs = cfg.search.epochs

    def search_hours(child_ips: float) -> float:
        return (epochs * (n_train / child_ips + fp32["ctrl_s"]) + fp32["derive_s"]) / 3600

    rows = [
        ["child phase fp32", f"{fp32['images_per_s']:.0f} img/s", f"{search_hours(fp32['images_per_s']):.2f} h search"],
        ["child phase bf16-mixed", f"{bf16['images_per_s']:.0f} img/s", f"{search_hours(bf16['images_per_s']):.2f} h search"],
        ["child phase bf16-mixed + channels_last", f"{bf16_cl['images_per_s']:.0f} img/s", f"{search_hours(bf16_cl['images_per_s']):.2f} h search"],
        ["host syncs in child steps between logging intervals", "n/a on CPU" if syncs is None else f"{syncs['quiet_steps_syncs'][1]} in {syncs['quiet_steps_syncs'][0]} steps", "torch.cuda.set_sync_debug_mode('warn')"],
        ["  of which train_batch (fp32)", f"{1e3 * data['train_batch_s'] / data['child_steps']:.2f} ms/step", f"of {1e3 * data['child_s'] / data['child_steps']:.2f} ms/step (timed per call)"],
        [f"controller phase {cfg.controller.train_steps} x {cfg.controller.num_aggregate} (fp32)", f"{fp32['ctrl_s']:.2f} s", "per epoch"],
        [f"derivation {fp32['candidates']} candidates (fp32)", f"{fp32['derive_s']:.2f} s", "once"],
    ]  # fmt: skip
    device = torch.device("cuda" if cuda else "cpu")
    fa = SimpleNamespace(
        **final_args, channels_last=False, no_compile=False, compile_timeout=args.compile_timeout
    )
    final_rows = []
    n_final = 50000 * 630
    for label, bf, compile_ in (("fp32", False, False), ("bf16", True, True)):
        fa.no_compile = not compile_
        fr, _ = final_throughput.measure(fa, device, bf16=bf)
        for mode, ips, note in fr:
            if mode == "compiled / eager":
                continue
            proj = f"{n_final / ips / 3600:.1f} h (630 epochs)" if isinstance(ips, float) else ""
            final_rows.append(
                [
                    f"final {mode} {label}",
                    ips if isinstance(ips, str) else f"{ips:.0f} img/s",
                    f"{proj} {note}".strip(),
                ]
            )
    rows += final_rows
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
            "Projected search = 150 x (45k / child img/s + controller phase) + derivation; "
            "projected final = 50k x 630 / img/s (evaluation not included)."
        ],
        append=cuda,
        load_before=before,
    )
    sys.stdout.flush()
    import os

    os._exit(0)  # a compile still running in its thread must not keep the process alive


if __name__ == "__main__":
    main()

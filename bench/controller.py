"""Controller cost: sampling (one, 100 batched, 100 one at a time) and one REINFORCE update.

The update is the controller side of ``SearchModule.controller_step`` only: a batched forward of
``num_aggregate`` architectures with grad, the REINFORCE loss with a fixed reward, backward and an
Adam step (rewards from the supernet are not included).

    PYTHONPATH=. python bench/controller.py [--threads 1] [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_average, median_time, report, table  # noqa: E402

from enas_lightning.spaces.macro.arch import AUTHORS_MACRO_OPS  # noqa: E402
from enas_lightning.spaces.macro.controller import MacroController  # noqa: E402
from enas_lightning.spaces.micro.arch import AUTHORS_MICRO_OPS  # noqa: E402
from enas_lightning.spaces.micro.controller import MicroController  # noqa: E402


def controllers(device: torch.device):
    return {
        "micro (5 nodes)": (MicroController(tuple(AUTHORS_MICRO_OPS), num_nodes=5), 10),
        "macro (12 layers)": (MacroController(tuple(AUTHORS_MACRO_OPS), num_layers=12), 20),
    }


def bench(ctrl, num_aggregate: int, repeats: int, device: torch.device) -> list[float]:
    ctrl.to(device)
    opt = torch.optim.Adam(ctrl.parameters(), lr=3.5e-3, betas=(0.0, 0.999), eps=1e-3, foreach=True)
    g = torch.Generator(device=device).manual_seed(0)

    def one():
        ctrl.sample_archs(1, g)

    def batched():
        ctrl.sample_archs(100, g)

    def serial():
        for _ in range(100):
            ctrl.sample_archs(1, g)

    def update():
        sample = ctrl(num_aggregate, generator=g)
        reward = torch.rand(num_aggregate, generator=g, device=device)
        reward = reward + 1e-4 * sample.entropy.detach()
        loss = (-sample.log_prob * (reward - reward.mean())).mean() + 0.8 * sample.penalty.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return [1e3 * median_time(f, repeats, device=device) for f in (one, batched, serial, update)]


def run(repeats: int, device: torch.device, append: bool) -> None:
    before = load_average()
    rows = []
    for name, (ctrl, agg) in controllers(device).items():
        one, batched, serial, update = bench(ctrl, agg, repeats, device)
        rows.append([name, one, batched, serial, serial / batched, agg, update])
        print(rows[-1], flush=True)
    header = [
        "controller", "1 arch (ms)", "100 batched (ms)", "100 one at a time (ms)",
        "speed-up", "num_aggregate", "REINFORCE update (ms)",
    ]  # fmt: skip
    report(
        f"Controller ({device.type})",
        {"lstm_size": 64, "lstm_layers": 1, "repeats (median)": repeats, "device": device},
        table(header, rows),
        notes=[],
        append=append,
        load_before=before,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--no-append", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    run(args.repeats, torch.device(args.device), not args.no_append)


if __name__ == "__main__":
    main()

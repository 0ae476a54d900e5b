"""Shared helpers of the bench scripts: machine description, timing, and appending results.

Every script prints a Markdown table and appends it to ``bench/RESULTS.md`` as one
``## <title>`` section with the machine, torch version, config and load average.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from enas_lightning.latency.timing import cpu_model  # one definition for benches and tables

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def load_average() -> str:
    try:
        return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        return "n/a"


def machine() -> dict[str, str]:
    info = {
        "platform": platform.platform(),
        "cpu": f"{cpu_model()} ({os.cpu_count()} cores)",
        "torch": torch.__version__,
        "torch threads": str(torch.get_num_threads()),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def sync(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], device: torch.device | str = "cpu") -> float:
    """Seconds for one call of ``fn`` (device work included)."""
    sync(device)
    t = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t


def median_time(
    fn: Callable[[], Any], repeats: int, warmup: int = 1, device: torch.device | str = "cpu"
) -> float:
    """Median seconds per call over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    return statistics.median(timed(fn, device) for _ in range(repeats))


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def report(
    title: str,
    config: dict[str, Any],
    body: str,
    notes: Sequence[str] = (),
    append: bool = True,
    load_before: str | None = None,
) -> str:
    """Print the section and (unless ``append`` is false) append it to ``bench/RESULTS.md``."""
    lines = [f"## {title}", ""]
    lines += [f"- {k}: {v}" for k, v in machine().items()]
    lines.append("- config: " + ", ".join(f"{k}={v}" for k, v in config.items()))
    load = load_average()
    lines.append(
        f"- load average (1/5/15 min): {load_before} before, {load} after"
        if load_before
        else f"- load average (1/5/15 min): {load}"
    )
    lines.append(f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    lines += ["", body, ""]
    # say so when other work shared the cores (judged from the 1-minute load, not assumed)
    loads = [float(x.split()[0]) for x in (load_before, load) if x and x[0].isdigit()]
    if loads and max(loads) > 1.5:
        notes = [
            "Other work was running on the machine (see load average): compare ratios measured "
            "in the same run, not absolute rates.",
            *notes,
        ]
    lines += [f"{n}" for n in notes]
    if notes:
        lines.append("")
    text = "\n".join(lines)
    print(text, flush=True)
    if append:
        if not RESULTS.exists():
            RESULTS.write_text(
                "# Benchmark results\n\nAppended by the scripts in `bench/` "
                "(one `## <title>` section per run).\n\n"
            )
        with RESULTS.open("a") as f:
            f.write(text + "\n")
    return text


def random_batches(
    n: int,
    batch: int,
    seed: int = 2,
    device: torch.device | str = "cpu",
    memory_format: torch.memory_format = torch.contiguous_format,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``n`` seeded CIFAR-shaped batches: images ``[batch, 3, 32, 32]`` in [0, 1), labels ``[batch]``.

    What is timed is the network, not the data, so random tensors do (the same on every run).
    """
    g = torch.Generator(device=device).manual_seed(seed)
    return [
        (
            torch.rand(batch, 3, 32, 32, generator=g, device=device).contiguous(
                memory_format=memory_format
            ),
            torch.randint(0, 10, (batch,), generator=g, device=device),
        )
        for _ in range(n)
    ]

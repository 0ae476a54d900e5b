"""Timing a module's forward on a device, and the device's name in the latency table's key."""

from __future__ import annotations

import re
import statistics
import time
from pathlib import Path

import torch
from torch import nn


def slug(text: str) -> str:
    """``Intel(R) Xeon(R) CPU @ 2.20GHz`` -> ``intel-r-xeon-r-cpu-2-20ghz``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; the platform's processor string elsewhere)."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def device_name(device: str, threads: int) -> str:
    """The latency table's name of ``device`` (``latency.device``): ``cpu-<model>-<n>t`` with
    ``threads`` intra-op threads, or ``cuda-<device name>``; timings differ between them."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return f"cuda-{slug(torch.cuda.get_device_name(dev))}"
    if dev.type == "cpu":
        return f"cpu-{slug(cpu_model())}-{threads}t"
    return slug(str(dev))


def median_ms(
    module: nn.Module, x: torch.Tensor, warmup: int, repeats: int, device: torch.device
) -> float:
    """The median wall time in milliseconds of ``module(x)`` (``x`` ``[B, C, H, W]``) over
    ``repeats`` timed runs after ``warmup`` untimed ones, in eval mode without gradients. On a
    GPU every run is synchronised, so each time is the run's own."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    module.eval()
    with torch.no_grad():
        for _ in range(warmup):
            module(x)
        sync()
        times = []
        for _ in range(max(1, repeats)):
            start = time.perf_counter()
            module(x)
            sync()
            times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)

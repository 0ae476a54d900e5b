"""Helpers shared by the resume, error and image-folder tests."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import torch

from tests._cli import enas, tiny

ROOT = Path(__file__).resolve().parents[1]
RESIL_CHANGES = {
    "trainer.enable_progress_bar": False,
    "logger": "none",
    "logger.log_pictures": False,
    "search_space.num_nodes": 2,
    "controller.num_aggregate": 2,
    "controller.lstm_size": 8,
    "search.derive_samples": 2,
    "search.eval_batch_size": 64,
}
TINY = tiny(RESIL_CHANGES)


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "0"}
    return enas(args, ROOT, env, timeout)


def assert_same(a: Any, b: Any, where: str = "") -> None:
    """Bit-for-bit equality of nested checkpoint contents."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype, where
        assert torch.equal(a, b), f"{where}: tensors differ"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{where}: keys {a.keys()} {b.keys()}"
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def assert_same_training_state(path_a: Path, path_b: Path) -> None:
    a = torch.load(path_a, map_location="cpu", weights_only=False)
    b = torch.load(path_b, map_location="cpu", weights_only=False)
    assert_same(a["state_dict"], b["state_dict"], "state_dict")  # includes the baseline buffer
    assert_same(a["optimizer_states"], b["optimizer_states"], "optimizer_states")
    assert_same(a["lr_schedulers"], b["lr_schedulers"], "lr_schedulers")
    assert a["epoch"] == b["epoch"] and a["global_step"] == b["global_step"]
    assert_same(a["enas"]["history"], b["enas"]["history"], "history")

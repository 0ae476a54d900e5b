"""Shared fixtures: a tiny composed config, its output directory, a subprocess environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

from enas_lightning.config import register_configs
from tests._cli import space_of, tiny

REPO = Path(__file__).resolve().parents[1]

# The many tiny ops of the controller and the toy supernets run far faster on one thread, and a
# busy 2-core machine makes intra-op threads spin against each other.
torch.set_num_threads(1)
# the same for the command-line runs the tests start (they inherit the environment)
os.environ.setdefault("OMP_NUM_THREADS", "1")

# A search that finishes in seconds on a CPU (micro, 3 nodes, 4 channels, 16x16 fake data).
TINY_CHANGES = {"logger": "none", "trainer.enable_progress_bar": False, "search.epochs": 2}
TINY = tiny(TINY_CHANGES)


def compose_cfg(tmp_path: Path, overrides: list[str] = ()):
    """The primary config composed as the app composes it, writing into ``tmp_path`` (the tiny
    settings of the space that ``overrides`` choose)."""
    register_configs()
    GlobalHydra.instance().clear()
    base = tiny(TINY_CHANGES, space=space_of(overrides))
    with initialize_config_module("enas_lightning.conf", version_base="1.3"):
        return compose(
            config_name="config", overrides=[*base, f"output_dir={tmp_path}", *overrides]
        )


@pytest.fixture
def one_thread():
    """One intra-op thread for the test, restored afterwards: a test that sets the thread count
    (trainer.num_threads in-process) must not leave torch's pool oversubscribing a busy 2-core
    CPU for the tests after it (a 2-epoch tiny fit took ~100 s instead of ~1.5 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_cfg(tmp_path: Path):
    """The tiny micro search config (see ``TINY``), outputs under ``tmp_path``."""
    yield compose_cfg(tmp_path)
    GlobalHydra.instance().clear()


@pytest.fixture
def make_cfg(tmp_path: Path):
    """``make_cfg([overrides])``: the tiny config with extra overrides."""
    yield lambda overrides=(): compose_cfg(tmp_path, list(overrides))
    GlobalHydra.instance().clear()


@pytest.fixture
def cli_env() -> dict[str, str]:
    """Environment for ``python -m enas_lightning`` subprocesses importing this checkout."""
    return {**os.environ, "PYTHONPATH": str(REPO), "HYDRA_FULL_ERROR": "1", "OMP_NUM_THREADS": "1"}

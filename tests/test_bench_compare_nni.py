"""``bench/compare_nni.py`` without NNI: it imports, and its ``search`` part's config for our
side is a valid search config (the benchmark itself needs NNI, kept out of this venv)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from unittest import mock

import pytest

from enas_lightning.build import validate

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))


@pytest.fixture(scope="module")
def compare_nni():
    with mock.patch.dict(os.environ):  # the script sets OMP_NUM_THREADS for itself
        module = importlib.import_module("compare_nni")
    assert "nni" not in sys.modules  # NNI is imported only where the NNI side runs
    return module


@pytest.mark.parametrize("devices", [1, 2])
def test_search_config_matches_nni_side(compare_nni, tmp_path: Path, devices: int) -> None:
    a = argparse.Namespace(
        layers=3, channels=16, batch=32, train=320, val=128, epochs=2, updates=1,
        num_aggregate=10, derive_samples=2,
    )  # fmt: skip
    cfg = compare_nni.compose_search_cfg(compare_nni.search_overrides(a, devices, 1, str(tmp_path)))
    validate(cfg)
    assert cfg.search_space.layers == 3 and cfg.search_space.aux_weight == 0
    assert cfg.dataset.train_size - cfg.dataset.val_size == 320
    # an update is rewarded by num_aggregate children over all ranks, as NNI's by its 10
    assert cfg.controller.num_aggregate * devices == 10
    assert cfg.trainer.devices == devices and cfg.trainer.num_threads == 1
    assert cfg.trainer.strategy == ("ddp" if devices > 1 else "auto")

"""The shared weights learn: a few hundred child steps on real data lift the supernet above chance.

A regression test for issue 15: on the quickstart's supernet and data (scikit-learn's digits, 10
classes, chance 0.1) the shared weights used to stay near chance for the whole quickstart. Here
only the supernet warm-up runs (uniform children, no controller), and the derivation's uniform
reference measures the mean shared-weight validation accuracy of uniformly sampled children.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests._cli import enas

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def test_a_few_hundred_child_steps_on_digits_lift_the_shared_weights(tmp_path, cli_env) -> None:
    out = tmp_path / "run"
    epochs = 16  # 16 x 35 = 560 child steps at batch 32 (1137 training images)
    proc = enas(
        [
            "experiment=quickstart",
            "task=search",
            f"search.epochs={epochs}",
            f"search.warmup_epochs={epochs}",
            "search.derive_samples=12",
            "logger=none",
            "trainer.enable_progress_bar=false",
            "seed=0",
            f"hydra.run.dir={out}",
        ],
        REPO,
        cli_env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    info = json.loads((out / "best_arch.json").read_text())
    history = json.loads((out / "history.json").read_text())
    assert all(h["warmup"] for h in history)  # no controller update: the weights alone learned
    # chance is 0.1; measured 0.301 here (seed 0, 2026-12-02): a supernet that stopped learning
    # (a broken optimizer step, gradients that never reach the shared ops) stays near 0.1
    assert info["uniform_mean_val_acc"] > 0.2, {k: v for k, v in info.items() if "acc" in k}

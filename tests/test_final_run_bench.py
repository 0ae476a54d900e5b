"""``bench/final_run.py --quick`` runs whole ``task=final`` processes per variant and prints one
row each with its seconds and speed-up over the default. Timings are not checked (no
thresholds): only that every run finished and was measured."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_final_run_quick_measures_every_variant():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "bench/final_run.py", "--quick", "--space", "macro", "--steps", "4"]
    cmd += ["--epochs", "2", "--variants", "channels_last", "bf16", "--no-append"]
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [line for line in r.stdout.splitlines() if line.startswith("| macro |")]
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows]
    assert [c[1] for c in cells] == ["default", "channels_last", "bf16"]
    for c in cells:
        assert c[2] == "4" and c[-1] == "", c  # 4 steps, the error column empty
        assert "nan" not in c[3:6], c  # process s, training s, speed-up: measured
    assert cells[0][5] == "1"  # the default against itself


def test_final_run_rejects_more_epochs_than_steps():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "bench/final_run.py", "--steps", "2", "--epochs", "3", "--no-append"]
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "--steps=2 --epochs=3: need 1 <= epochs <= steps" in r.stderr

"""``bench/pool_kernels.py`` times both pooling kernels for every case and says which one
``SamePool`` runs. Timings are not checked (no thresholds): only that every case was measured
and that the named kernel is the one the op takes (PyTorch's for max pooling with a gradient)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_pool_kernels_measures_every_case_and_names_the_kernel_taken():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "bench/pool_kernels.py", "--repeats", "1", "--no-append"]
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [line for line in r.stdout.splitlines() if line.startswith("| ") and "ms" not in line]
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows]
    assert len(cells) == 5 * 2 * 2 * 2  # maps x layouts x pools x passes
    for c in cells:
        assert float(c[5]) > 0 and float(c[6]) > 0, c
        expected = "torch" if (c[3], c[4]) == ("max", "fwd+bwd") else "separable"
        assert c[8] == expected, c

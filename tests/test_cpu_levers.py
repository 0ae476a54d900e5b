"""``bench/cpu_levers.py --quick`` runs every kind of measurement (search epoch, final steps with
the compiled variant, 1 process vs 2 DDP ranks) end to end in subprocesses and prints its tables.
Timings are not checked (no thresholds): only that every cell was measured.

The test runs the combined variants only (channels_last+bf16, channels_last+compile), which take
every code path of the single ones: each variant is a subprocess that imports torch and Lightning,
and all 13 took 150-230 s of CI's 30 minutes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_cpu_levers_quick_prints_every_table():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    combined = ["channels_last+bf16", "channels_last+compile", "2ranks-1thread"]
    cmd = [sys.executable, "bench/cpu_levers.py", "--quick", "--space", "micro", "--no-append"]
    cmd += ["--variants", *combined]
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout
    assert "## CPU speed levers (--quick smoke run)" in out
    assert "avx512_bf16=" in out and "amx_tile=" in out and "mkldnn bf16=" in out
    rows = [line for line in out.splitlines() if line.startswith("| micro | tiny |")]
    names = [row.split("|")[3].strip() for row in rows]
    assert names == [
        *("fp32", "channels_last+bf16"),  # search (fp32, the baseline, always runs)
        *("fp32", "channels_last+bf16", "channels_last+compile"),  # final
        *("1proc-2threads", "2ranks-1thread"),  # ddp
    ]
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[-1] == "", row  # the error column is empty
        assert "nan" not in cells[3:6], row  # every timing was measured

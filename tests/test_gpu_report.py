"""``bench/gpu_report.py`` (run by ``bench/gpu.sh``) keeps what it measured when time runs out.

The first H200 call was killed by gpu.sh's timeout before it printed a single figure; the
report now skips the measurements past its ``--deadline`` and prints each one as it comes.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from gpu_report import Clock  # noqa: E402


def test_measurements_past_the_deadline_are_skipped_not_run(capsys) -> None:
    calls: list[int] = []
    clock = Clock(deadline=3600.0)
    assert clock.run("first", lambda n: calls.append(n) or {"ips": n}, 1) == {"ips": 1}
    assert "[gpu_report] first" in capsys.readouterr().out  # printed as it comes
    late = Clock(deadline=0.0)
    assert late.run("late", calls.append, 2) is None
    assert calls == [1]
    assert "late: skipped" in capsys.readouterr().out

"""The quickstart end to end (``python -m enas_lightning experiment=quickstart``), timed.

Issue 20 asks for the quickstart in at most 10 minutes on a 2-core CPU. This runs it as a user
does, in a fresh run directory, and reports its wall time and CPU time, the mean seconds of a
warm-up epoch and of a controller epoch (read from the epoch lines the search logs), and the
numbers it derived (so that a speed change that changed the result shows here too).

``--code DIR`` runs another checkout's package (``PYTHONPATH=DIR``), e.g. a git worktree of an
earlier commit: two such runs started together share the machine alike, an A/B comparison.

    PYTHONPATH=. python bench/quickstart.py [--code DIR] [--label NAME] [--no-append]
        [--set key=value ...]   (extra overrides, e.g. search.epochs=4 for a smoke run)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_average, report, table  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# "epoch 12/60 (warm-up) | child loss ... | 7.1 s | greedy: ..." (enas_lightning.search.progress)
EPOCH = re.compile(r"epoch (\d+)/(\d+)( \(warm-up\))? \|.*\| ([\d.]+) s \|")


def epoch_seconds(log: str) -> tuple[list[float], list[float]]:
    """The search's warm-up epochs' and controller epochs' seconds, from its log lines."""
    warm, ctrl = [], []
    for m in EPOCH.finditer(log):
        (warm if m.group(3) else ctrl).append(float(m.group(4)))
    return warm, ctrl


def commit_label(code: Path) -> str:
    """``code``'s commit, with ``+changes`` when its tracked files differ from it."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(code), *args], capture_output=True, text=True
        ).stdout.strip()

    dirty = git("status", "--porcelain", "--untracked-files=no")
    return git("log", "-1", "--format=%h") + ("+changes" if dirty else "")


def run(code: Path, run_dir: Path, overrides: list[str]) -> dict:
    """One quickstart in ``run_dir`` with ``code``'s package; its times and derived numbers."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    cmd = [
        sys.executable,
        "-m",
        "enas_lightning",
        "experiment=quickstart",
        f"hydra.run.dir={run_dir}",
        "trainer.enable_progress_bar=false",
        *overrides,
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=code, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        sys.exit(f"the quickstart failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
    warm, ctrl = epoch_seconds(r.stdout + r.stderr)
    best = json.loads((run_dir / "search" / "best_arch.json").read_text())
    final = json.loads((run_dir / "final" / "metrics.json").read_text())
    return {
        "wall_s": wall,
        "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "warmup_epoch_s": statistics.mean(warm) if warm else float("nan"),
        "controller_epoch_s": statistics.mean(ctrl) if ctrl else float("nan"),
        "derived": "{:.4f} / {:.4f} / {:.4f} / {:.4f}".format(
            best["val_acc"],
            best["greedy_val_acc"],
            best["controller_mean_val_acc"],
            best["uniform_mean_val_acc"],
        ),
        "test_acc": final["test_acc"],
        "params": final["params"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--code", type=Path, default=REPO, help="the checkout whose package runs")
    p.add_argument("--label", default=None, help="the row's name (default: the code's commit)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides")
    p.add_argument("--no-append", action="store_true", help="print only")
    a = p.parse_args()
    code = a.code.resolve()
    label = a.label or commit_label(code)
    load_before = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        m = run(code, Path(tmp) / "run", a.set)
    header = [
        "code",
        "wall s",
        "CPU s",
        "warm-up epoch s",
        "controller epoch s",
        "best / greedy / controller mean / uniform mean",
        "final test acc",
        "params",
    ]
    row = [
        label,
        round(m["wall_s"], 1),
        round(m["cpu_s"], 1),
        round(m["warmup_epoch_s"], 2),
        round(m["controller_epoch_s"], 2),
        m["derived"],
        f"{m['test_acc']:.4f}",
        m["params"],
    ]
    config = {"experiment": "quickstart", "overrides": " ".join(a.set) or "-"}
    report(
        "The quickstart end to end (CPU)",
        config,
        table(header, [row]),
        append=not a.no_append,
        load_before=load_before,
    )


if __name__ == "__main__":
    main()

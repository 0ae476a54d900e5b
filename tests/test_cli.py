"""The command line end to end: ``python -m enas_lightning`` in a subprocess."""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from enas_lightning.arch.io import load_arch
from enas_lightning.spaces.macro.arch import AUTHORS_MACRO_FINAL
from enas_lightning.spaces.macro.ops import AUTHORS_MACRO_OPS
from enas_lightning.spaces.micro.arch import AUTHORS_MICRO_FINAL
from enas_lightning.spaces.micro.ops import AUTHORS_MICRO_OPS
from tests._cli import enas, tiny

REPO = Path(__file__).resolve().parents[1]
# The authors' final micro cells (scripts/cifar10_micro_final.sh) and the first 12 layers of
# their final macro network (scripts/cifar10_macro_final.sh), a valid 12-layer arc.
AUTHORS_MICRO = AUTHORS_MICRO_FINAL
# the first 12 layers of their final macro network: a valid 12-layer arc (78 integers)
MACRO_12 = " ".join(AUTHORS_MACRO_FINAL.split()[:78])
TINY = tiny(
    {"logger": "none", "trainer.enable_progress_bar": False, "search.epochs": 2},
    without=("search_space.num_nodes",),
)

pytestmark = pytest.mark.slow


def cli(args: list[str], env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess:
    proc = enas(args, REPO, env, timeout)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


@pytest.mark.parametrize(
    "space,extra",
    [("micro", ["search_space.num_nodes=3"]), ("macro", [])],
)
def test_search_writes_best_arch_and_candidates(space, extra, tmp_path, cli_env) -> None:
    out = tmp_path / "run"
    proc = cli([*TINY, f"search_space={space}", *extra, f"hydra.run.dir={out}"], cli_env)
    ops = AUTHORS_MICRO_OPS if space == "micro" else AUTHORS_MACRO_OPS
    arch = load_arch(out / "best_arch.json", space, ops)
    if space == "micro":
        assert arch.num_nodes == 3
    else:
        assert arch.num_layers == 3
    with (out / "arch_candidates.csv").open() as f:
        rows = list(csv.DictReader(f))
    # K controller samples + the greedy one, and K uniformly sampled references
    sources = [r["source"] for r in rows]
    assert [sources.count(s) for s in ("greedy", "controller", "uniform")] == [1, 4, 4]
    accs = [float(r["val_acc"]) for r in rows]
    assert accs == sorted(accs, reverse=True)
    # the best row not from the uniform reference is the saved architecture
    best = next(r for r in rows if r["source"] != "uniform")
    assert best["arc"] == " ".join(map(str, arch.to_ints(ops)))
    # the four labelled rows, printed
    for label in ("best ", "greedy ", "controller mean ", "uniform mean "):
        assert f"  {label}" in proc.stdout, proc.stdout[-2000:]
    assert "random (mean)" not in proc.stdout
    assert (out / "checkpoints" / "last.ckpt").is_file()


def test_inspect_authors_micro_arc(tmp_path, cli_env) -> None:
    out = tmp_path / "inspect"
    proc = cli(
        ["task=inspect", f"arch={AUTHORS_MICRO}", "search_space=micro", f"hydra.run.dir={out}"],
        cli_env,
    )
    params = int(re.search(r"^params: (\d+)$", proc.stdout, re.M).group(1))
    # the paper's 4.6M for 15 layers / 36 channels
    assert abs(params - 4.6e6) / 4.6e6 < 0.10, params
    assert (out / "arch.dot").is_file()
    assert "digraph" in (out / "arch.dot").read_text()
    if shutil.which("dot"):
        assert (out / "arch.png").is_file() or (out / "arch.svg").is_file()
    load_arch(out / "arch.json", "micro", AUTHORS_MICRO_OPS, 5)


def test_inspect_macro_arc(make_cfg, tmp_path, capsys) -> None:
    """In-process through the app's dispatch (the subprocess path is covered above)."""
    from enas_lightning.app import run

    out = tmp_path / "inspect"
    cfg = make_cfg(
        ["task=inspect", f"arch='{MACRO_12}'", "search_space=macro", "final.channels=36"]
    )
    cfg.output_dir = str(out)
    assert run(cfg) is None
    stdout = capsys.readouterr().out
    assert int(re.search(r"^params: (\d+)$", stdout, re.M).group(1)) > 0
    assert "ints: " + MACRO_12 in stdout
    assert (out / "arch.dot").is_file()
    arch = load_arch(out / "arch.json", "macro", AUTHORS_MACRO_OPS, 12)
    assert " ".join(map(str, arch.to_ints())) == MACRO_12


def test_help_and_composed_config(cli_env) -> None:
    text = cli(["--help"], cli_env).stdout
    for group in ("search_space", "controller", "dataset", "trainer", "logger", "experiment"):
        assert re.search(rf"^{group}: ", text, re.M), group
    assert "micro, macro" in text or "macro, micro" in text
    job = cli(["--cfg", "job", "search_space=macro", "search.epochs=7"], cli_env).stdout
    assert "search_space:\n  name: macro" in job
    assert "epochs: 7" in job
    for section in ("controller:", "dataset:", "trainer:", "logger:", "search:", "final:"):
        assert re.search(rf"^{section}", job, re.M), section

"""Distributed search on two CPU processes (gloo), through the command line.

One short search with ``trainer.devices=2`` in Hydra's default timestamped run directory; every
rank dumps its state (``search/debug.py``) and the test checks that the ranks agree bit for bit
where they must and differ where they must. Also: Hydra multirun with ``ddp`` is refused, the
submitit launcher config runs a job, and a rank killed mid-search ends the run with one line whose
resume command finishes it.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests._cli import enas, tiny

REPO = Path(__file__).resolve().parents[1]
TINY = tiny({"search.batch_size": 16, "search.child_batches": 3, "logger.log_pictures": False})
NUM_AGGREGATE = 3

pytestmark = pytest.mark.slow


def cli(args: list[str], cwd: Path, timeout: int = 240, **env: str):
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", **env}
    return enas(args, cwd, env, timeout)


def same(a, b, where: str = "") -> None:
    """Bit-identical nested state (tensors compared with torch.equal)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype, where
        assert torch.equal(a, b), f"{where} differs across ranks"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """A two-epoch search on two CPU ranks in Hydra's default (timestamped) run directory."""
    cwd = tmp_path_factory.mktemp("ddp")
    dump = cwd / "dump"
    r = cli(
        [*TINY, "search.epochs=2", "trainer.devices=2"],
        cwd,
        ENAS_LIGHTNING_DUMP_RANK_STATE=str(dump),
    )
    assert r.returncode == 0, r.stderr[-4000:]
    states = [torch.load(dump / f"rank{i}_state.pt", weights_only=False) for i in range(2)]
    # no warning the project can fix: Lightning's "use self.log(..., sync_dist=True)" (issue 25)
    assert "sync_dist" not in r.stdout + r.stderr, (r.stdout + r.stderr)[-3000:]
    return cwd, states


def test_ranks_hold_identical_weights_optimizers_and_baseline(ddp_run):
    _, (r0, r1) = ddp_run
    assert (r0["rank"], r1["rank"], r0["world_size"]) == (0, 1, 2)
    same(r0["module"], r1["module"], "state_dict")
    assert any(k.startswith("supernet.") for k in r0["module"])
    assert any(k.startswith("controller.") for k in r0["module"])
    assert float(r0["module"]["baseline"]) != 0.0  # the controller phase ran
    same(r0["optimizers"], r1["optimizers"], "optimizers")
    sgd, adam = r0["optimizers"]
    assert sgd["state"] and adam["state"]  # momentum buffers and Adam moments exist


def test_ranks_stay_identical_with_the_levers_on(tmp_path):
    """The levers against the collapse (issue 20) keep the ranks bit-identical: every rank gives
    the same parameters zero gradients (dense weight decay), each draws its own dropout."""
    dump = tmp_path / "dump"
    levers = [
        "search.param_free_dropout=0.3",
        "search.bn_affine=false",
        "search.init=authors",
        "search.optim.dense_weight_decay=true",
        "search.derive_finetune_steps=2",  # each rank fine-tunes its share of the candidates
        "search.derive_uniform_steps=3",  # from the same uniformly trained copy on every rank
        "search.derive_prune_keep=2",  # every rank trains the same pruned copy
        "search.derive_prune_steps=3",
    ]
    r = cli(
        [*TINY, "search.epochs=1", "trainer.devices=2", *levers],
        tmp_path,
        ENAS_LIGHTNING_DUMP_RANK_STATE=str(dump),
    )
    assert r.returncode == 0, r.stderr[-4000:]
    r0, r1 = (torch.load(dump / f"rank{i}_state.pt", weights_only=False) for i in range(2))
    same(r0["module"], r1["module"], "state_dict")
    same(r0["optimizers"], r1["optimizers"], "optimizers")
    sgd = r0["optimizers"][0]
    # dense weight decay: every supernet weight has a non-zero momentum buffer
    assert all(bool(s["momentum_buffer"].any()) for s in sgd["state"].values())


def test_one_channel_images_give_no_grad_stride_warning(tmp_path):
    """On one-channel images the network runs channels-last and DDP used to warn "Grad strides
    do not match bucket view strides" (enas_lightning/grad_layout.py); the gradients now keep
    their parameters' strides, and the ranks still agree bit for bit."""
    dump = tmp_path / "dump"
    r = cli(
        [*TINY, "search.epochs=1", "trainer.devices=2", "dataset.channels=1"],
        tmp_path,
        ENAS_LIGHTNING_DUMP_RANK_STATE=str(dump),
        PYTHONWARNINGS="always",
    )
    assert r.returncode == 0, r.stderr[-4000:]
    assert "Grad strides" not in r.stdout + r.stderr, (r.stdout + r.stderr)[-3000:]
    r0, r1 = (torch.load(dump / f"rank{i}_state.pt", weights_only=False) for i in range(2))
    same(r0["module"], r1["module"], "state_dict")


def test_controller_update_aggregates_all_ranks_archs(ddp_run):
    _, (r0, r1) = ddp_run
    assert r0["archs_per_update"] == r1["archs_per_update"] == 2 * NUM_AGGREGATE


def test_baseline_takes_every_ranks_rewards_in_rank_order(ddp_run):
    """One moving-average update per sampled architecture, rank 0's then rank 1's, per update;
    the result bit-identical on both ranks (with the controller weights, checked above)."""
    _, (r0, r1) = ddp_run
    assert r0["history_baselines"] == r1["history_baselines"]
    assert torch.equal(r0["module"]["baseline"], r1["module"]["baseline"])
    updates0, updates1 = r0["last_epoch_rewards"], r1["last_epoch_rewards"]
    assert len(updates0) == len(updates1) == 2  # controller.train_steps
    assert all(len(u) == NUM_AGGREGATE for u in updates0 + updates1)
    assert updates0 != updates1  # each rank rewarded its own architectures

    def replay(first: list[list[float]], second: list[list[float]]) -> float:
        b = r0["history_baselines"][-2]  # the baseline at the end of the previous epoch
        for a, c in zip(first, second, strict=True):
            for r in a + c:
                b -= 0.01 * (b - r)  # controller.baseline_decay = 0.99
        return b

    final = float(r0["module"]["baseline"])
    assert final == r0["history_baselines"][-1]
    assert final == pytest.approx(replay(updates0, updates1), rel=1e-6)
    assert final != pytest.approx(replay(updates1, updates0), rel=1e-6)  # the order matters


def test_ranks_train_different_children(ddp_run):
    _, (r0, r1) = ddp_run
    a0, a1 = r0["epoch0_child_arcs"], r1["epoch0_child_arcs"]
    assert len(a0) == len(a1) == 3  # search.child_batches
    assert a0 != a1
    assert any(x != y for x, y in zip(a0, a1, strict=True))


def test_ranks_derive_the_same_architecture(ddp_run):
    cwd, (r0, r1) = ddp_run
    assert r0["derived"] == r1["derived"]
    assert r0["derived_accs"] == r1["derived_accs"]
    assert r0["uniform_accs"] == r1["uniform_accs"] and len(r0["uniform_accs"]) == 4
    (run,) = (cwd / "outputs" / "search").iterdir()
    assert (run / "best_arch.json").is_file()


def test_one_run_directory_and_one_set_of_logs(ddp_run):
    cwd, _ = ddp_run
    runs = list((cwd / "outputs" / "search").iterdir())
    assert len(runs) == 1, runs  # rank 1 reused rank 0's timestamped directory
    assert sorted(p.relative_to(cwd) for p in cwd.rglob(".hydra")) == [
        runs[0].relative_to(cwd) / ".hydra"
    ]
    assert [p.name for p in cwd.rglob("*.log")] == ["app.log"]  # no train_ddp_process_1.log
    assert len(list(cwd.rglob("metrics.csv"))) == 1
    assert len(list(cwd.rglob("last.ckpt"))) == 1
    header = (runs[0] / "logs" / "metrics.csv").read_text().splitlines()[0]
    assert "ctrl/archs_per_update" in header


def test_multirun_with_ddp_is_refused(tmp_path):
    r = cli(["-m", *TINY, "search.epochs=1", "trainer.devices=2", "seed=1,2"], tmp_path, 120)
    assert r.returncode == 2
    assert "trainer.strategy" in r.stderr and "ddp_spawn" in r.stderr


@pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None,
    reason="hydra-submitit-launcher is not installed (pip install enas_lightning[slurm])",
)
def test_submitit_local_launcher_runs_a_job(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", "hydra/launcher=submitit_local", f"hydra.sweep.dir={sweep}", *TINY]
    r = cli([*args, "search.epochs=1"], tmp_path)
    assert r.returncode == 0, r.stderr[-4000:]
    assert (sweep / "0" / "best_arch.json").is_file()
    assert list((sweep / ".submitit").iterdir())  # submitit ran it


def test_multirun_with_ddp_spawn_works(tmp_path):
    """``ddp_spawn`` forks its ranks inside the Hydra job, so a sweep can use several devices."""
    sweep = tmp_path / "sweep"
    args = ["-m", f"hydra.sweep.dir={sweep}", *TINY, "search.epochs=1"]
    r = cli([*args, "trainer.devices=2", "trainer.strategy=ddp_spawn", "seed=1"], tmp_path)
    assert r.returncode == 0, r.stderr[-4000:]
    assert (sweep / "0" / "best_arch.json").is_file()
    assert len(list(sweep.rglob("metrics.csv"))) == 1


def rank_pid(run: Path, rank: int) -> int | None:
    """The PID of the rank that Lightning relaunched as ``train_ddp_process_<rank>`` for ``run``."""
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            argv = (p / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if f"hydra.job.name=train_ddp_process_{rank}" in argv and any(str(run) in a for a in argv):
            return int(p.name)
    return None


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="finds the ranks in /proc")
@pytest.mark.parametrize("killed", [1, 0])
def test_a_killed_rank_ends_the_run_with_one_line_and_its_resume_finishes(tmp_path, killed):
    run = tmp_path / "run"
    args = [*TINY, "search.epochs=200", "trainer.devices=2", f"hydra.run.dir={run}"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    rank0 = subprocess.Popen(
        [sys.executable, "-m", "enas_lightning", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ckpt = run / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while not ckpt.exists() and rank0.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert rank0.poll() is None and ckpt.exists(), rank0.communicate()[1][-3000:]
    time.sleep(1.0)  # into the next epoch
    pid = rank0.pid if killed == 0 else rank_pid(run, 1)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    _, err = rank0.communicate(timeout=300)  # returns once every rank has ended
    # the survivors say it: rank 0 for rank 1 (exit 75), rank 1 for rank 0 (rank 0 was killed)
    assert rank0.returncode == (75 if killed == 1 else -signal.SIGKILL)
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, err[-3000:]
    how = "SIGKILL" if killed == 1 else "its process ended"
    assert lines[0].startswith(f"error: rank {killed} (PID {pid}) died ({how}); the run stopped; ")
    assert f"{ckpt} (saved at " in lines[0] and ") survives; resume with: " in lines[0]
    assert "Traceback" not in err and "zombies" not in err, err[-3000:]
    # the printed command, with one more epoch to go, finishes the search
    epoch = torch.load(ckpt, map_location="cpu", weights_only=False)["epoch"]
    cmd = shlex.split(lines[0].split("resume with: ", 1)[1])
    assert cmd[:3] == ["python", "-m", "enas_lightning"] and cmd[-1] == "resume=true"
    again = [a if a != "search.epochs=200" else f"search.epochs={epoch + 2}" for a in cmd[3:]]
    r = cli(again, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert torch.load(ckpt, map_location="cpu", weights_only=False)["epoch"] == epoch + 1
    assert (run / "best_arch.json").is_file()

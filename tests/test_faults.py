"""Faults of the machine get one line too (issue 25): a full disk on any write of the run,
checkpoints and exports with the umask's mode, two runs started on one directory.

A full disk is simulated by a file whose writes stop after ``room`` bytes with ``ENOSPC``; where
this machine lets the test mount a small tmpfs, one slow test fills a real one. A killed DDP rank
is in tests/test_ddp.py.
"""

from __future__ import annotations

import errno
import json
import logging
import multiprocessing
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from torch import nn

from enas_lightning import files, rundir
from enas_lightning.app import one_line, run
from enas_lightning.arch import load_arch
from enas_lightning.checkpointing import AtomicCheckpointIO, saved_size
from enas_lightning.errors import WriteError
from enas_lightning.files import appending, optional, write_error_of, write_text
from enas_lightning.final.export import export_network
from enas_lightning.rundir import CLAIM, RunDirGuard
from enas_lightning.spaces.micro.arch import AUTHORS_MICRO_FINAL
from tests._cli import enas, tiny
from tests.conftest import TINY, compose_cfg

REPO = Path(__file__).resolve().parents[1]
OPS = ("sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3", "identity")


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.setattr(rundir, "_current", None)
    yield
    GlobalHydra.instance().clear()


class FullDisk:
    """A file whose writes stop after ``room`` bytes with ``ENOSPC``, as on a full disk."""

    def __init__(self, f, room: int) -> None:
        self.f, self.room = f, room

    def write(self, b) -> int:
        if len(b) > self.room:
            self.f.write(bytes(b[: self.room]))
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(b)
        return self.f.write(b)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.f.close()


def fill_disk(monkeypatch, room: int, when=lambda: True) -> None:
    """Every file :mod:`enas_lightning.files` writes whole gets ``room`` bytes (when ``when()``)."""
    real = os.fdopen

    def fdopen(fd, *args, **kwargs):
        f = real(fd, *args, **kwargs)
        return FullDisk(f, room) if when() else f

    monkeypatch.setattr(files.os, "fdopen", fdopen)


def listing(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


# ------------------------------------------------------------------------ 1. a full disk
def test_a_full_disk_keeps_the_earlier_file_and_names_it(tmp_path, monkeypatch) -> None:
    path = tmp_path / "history.json"
    write_text(path, "earlier\n")
    fill_disk(monkeypatch, room=3)
    with pytest.raises(WriteError) as e:
        write_text(path, "0123456789\n")
    msg = str(e.value)
    assert msg.startswith(f"could not write {path}: no space left on device (")
    assert "the write needed 11 bytes" in msg and " left)" in msg and "\n" not in msg
    assert path.read_text() == "earlier\n"
    assert listing(tmp_path) == ["history.json"]  # the partial temporary file is gone


def test_a_checkpoint_on_a_full_disk_says_how_much_it_needed(tmp_path, monkeypatch) -> None:
    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint({"w": torch.ones(3)}, path)
    new = {"w": torch.zeros(1000)}
    fill_disk(monkeypatch, room=100)
    with pytest.raises(WriteError) as e:
        io.save_checkpoint(new, path)
    assert str(e.value).startswith(f"could not write {path}: no space left on device")
    assert f"the write needed {files.human_size(saved_size(new))}" in str(e.value)
    assert saved_size(new) > 4000  # 1000 float32 and the archive around them
    assert torch.equal(torch.load(path)["w"], torch.ones(3))
    assert listing(tmp_path) == ["last.ckpt"]


def test_an_append_on_a_full_disk_leaves_no_torn_row(tmp_path, monkeypatch) -> None:
    path = tmp_path / "sampled_archs.csv"
    path.write_text("epoch,update,arc,reward\r\n0,0,0 1,0.5\r\n")
    before = path.read_bytes()
    real_open = Path.open

    def full_open(self, mode="r", *args, **kwargs):
        f = real_open(self, mode, *args, **kwargs)
        return FullDisk(f, room=4) if mode == "ab" else f

    monkeypatch.setattr(Path, "open", full_open)
    with pytest.raises(WriteError, match="sampled_archs.csv: no space left on device"):
        with appending(path) as f:
            f.write("1,0,1 1,0.25\r\n")
    assert path.read_bytes() == before


def test_a_library_write_that_fails_is_named_by_its_open_file(tmp_path) -> None:
    """``write()`` and ``close()`` raise ENOSPC without a file name; the file is found among
    the open, writable files of the failing frames: a plain one (matplotlib) and an fsspec one
    as Lightning's CSV logger opens ``metrics.csv``."""
    from lightning_fabric.utilities.cloud_io import get_filesystem

    path = tmp_path / "logs" / "metrics.csv"
    path.parent.mkdir()

    def library_save(how: str, mode: str, code: int) -> None:
        f = get_filesystem(path).open(str(path), mode) if how == "fsspec" else open(path, mode)
        with f as stream:
            if mode == "a":
                stream.write("1,2\n")
            else:
                stream.read()
            raise OSError(code, os.strerror(code))

    for how in ("open", "fsspec"):
        with pytest.raises(OSError) as e:
            library_save(how, "a", errno.ENOSPC)
        failure = write_error_of(e.value)
        assert str(failure).startswith(f"could not write {path}: no space left on device"), how
        with pytest.raises(OSError) as e:
            library_save(how, "r", errno.EIO)
        assert write_error_of(e.value) is None, how  # a read's I/O error is not a write's
    assert write_error_of(RuntimeError("no OSError")) is None
    assert write_error_of(OSError(errno.ENOENT, "No such file")) is None  # not the disk's fault


def test_a_picture_that_cannot_be_written_costs_one_warning(tmp_path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="enas_lightning.files"):
        with optional(tmp_path / "plots" / "op_probs.png"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith(f"could not write {tmp_path / 'plots' / 'op_probs.png'}: no space")
    assert line.endswith("the run goes on without it")
    with pytest.raises(ValueError):  # a bug in the drawing code is not hidden
        with optional(tmp_path / "x.png"):
            raise ValueError("bug")


def test_a_search_goes_on_without_its_pictures(tmp_path, monkeypatch, caplog) -> None:
    from enas_lightning.search import artifacts

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(artifacts, "render", no_space)
    monkeypatch.setattr(artifacts, "plot_op_probs", no_space)
    cfg = compose_cfg(tmp_path, ["search.epochs=1", "logger.log_pictures=true"])
    with caplog.at_level(logging.WARNING, logger="enas_lightning.files"):
        run(cfg)
    warned = [r.getMessage() for r in caplog.records if r.name == "enas_lightning.files"]
    assert len(warned) == 2, warned  # the greedy picture and the op-probability plot
    assert "greedy_epoch0.png" in warned[0] and "op_probs.png" in warned[1]
    assert (tmp_path / "best_arch.json").is_file() and (tmp_path / "plots/controller.png").is_file()


def test_a_full_disk_in_a_search_is_one_line_and_the_resume_finishes(tmp_path, monkeypatch) -> None:
    """The second epoch's checkpoint finds the disk full: one line naming the file, the space,
    the first epoch's checkpoint that survives and the command that resumes; that command
    finishes the search."""
    out = tmp_path / "run"
    args = [*TINY, "search.epochs=2", f"hydra.run.dir={out}"]
    monkeypatch.setattr(sys, "argv", ["enas_lightning", *args])
    checkpoints: list[int] = []
    real_save = AtomicCheckpointIO.save_checkpoint

    def count(self, checkpoint, path, storage_options=None):
        checkpoints.append(1)
        return real_save(self, checkpoint, path, storage_options)

    monkeypatch.setattr(AtomicCheckpointIO, "save_checkpoint", count)
    fill_disk(monkeypatch, room=1000, when=lambda: len(checkpoints) == 2)
    cfg = compose_cfg(out, ["search.epochs=2"])
    with pytest.raises(WriteError) as e:
        run(cfg)
    line = str(one_line(e.value, cfg))
    ckpt = out / "checkpoints" / "last.ckpt"
    assert line.startswith(f"could not write {ckpt}: no space left on device (the write needed")
    assert f"; {ckpt} (saved at " in line and ") survives; free space, then resume with: " in line
    command = line.split("resume with: ")[1]
    assert command == " ".join(["python -m enas_lightning", *args[:-1], f"hydra.run.dir={out}"]) + (
        " resume=true"
    )
    assert torch.load(ckpt, weights_only=False)["epoch"] == 0  # the first epoch's, intact
    assert [p.name for p in ckpt.parent.iterdir()] == ["last.ckpt"]

    monkeypatch.undo()
    monkeypatch.setattr(rundir, "_current", None)
    run(compose_cfg(out, ["search.epochs=2", "resume=true"]))
    assert torch.load(ckpt, weights_only=False)["epoch"] == 1
    assert len(json.loads((out / "history.json").read_text())) == 2
    assert (out / "best_arch.json").is_file()


def test_nothing_saved_yet_is_said(tmp_path, monkeypatch) -> None:
    fill_disk(monkeypatch, room=0)
    cfg = compose_cfg(tmp_path, ["search.epochs=1"])
    with pytest.raises(WriteError) as e:
        run(cfg)
    line = str(one_line(e.value, cfg))
    assert line.startswith(f"could not write {tmp_path / 'history.json'}: no space left")
    assert line.endswith(
        "no checkpoint had been saved, so nothing to resume: free space and start again in a new run"
    )


def can_mount_tmpfs() -> bool:
    if sys.platform != "linux" or os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    probe = Path(f"/tmp/enas_tmpfs_probe_{uuid.uuid4().hex[:8]}")
    probe.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)], capture_output=True
        )
        if done.returncode == 0:
            subprocess.run(["umount", str(probe)], check=True)
        return done.returncode == 0
    finally:
        probe.rmdir()


@pytest.fixture
def small_fs(tmp_path):
    """A 5 MiB tmpfs (skipped where mounting is not permitted)."""
    if not can_mount_tmpfs():
        pytest.skip("mounting a tmpfs is not permitted here")
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", str(mnt)], check=True)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.slow
def test_a_small_filesystem_ends_the_search_with_one_line(small_fs) -> None:
    """On a real 5 MiB file system: the tiny search's 3.2 MiB checkpoint fits once, not twice."""
    run = small_fs / "run"
    args = tiny(
        {"logger": "none", "trainer.enable_progress_bar": False, "search.epochs": 3},
    )
    args += [f"hydra.run.dir={run}"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = enas(args, REPO, env, 600)
    assert done.returncode == WriteError.exit_code, done.stderr[-3000:]
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert errors[0].startswith("error: could not write ")
    assert "no space left on device (the write needed " in errors[0]
    assert f"{run}/checkpoints/last.ckpt (saved at " in errors[0]
    assert errors[0].endswith(f"hydra.run.dir={run} resume=true")
    assert torch.load(run / "checkpoints/last.ckpt", weights_only=False)["epoch"] == 0


# ---------------------------------------------------------------- 2. the umask's mode
@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_checkpoints_and_exports_get_the_umasks_mode(tmp_path, umask) -> None:
    old = os.umask(umask)
    try:
        AtomicCheckpointIO().save_checkpoint({"w": torch.ones(2)}, tmp_path / "last.ckpt")
        AtomicCheckpointIO().save_checkpoint({"w": torch.zeros(2)}, tmp_path / "last.ckpt")
        net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        arch = load_arch(AUTHORS_MICRO_FINAL, "micro", OPS)
        paths = export_network(
            net, tmp_path / "export", torch.zeros(2, 3, 8, 8), arch, OPS, [0.5] * 3, [0.2] * 3, 4
        )
        (tmp_path / "plain.txt").write_text("as open() creates it\n")
    finally:
        os.umask(old)
    expected = 0o666 & ~umask
    assert (tmp_path / "plain.txt").stat().st_mode & 0o777 == expected
    assert (tmp_path / "last.ckpt").stat().st_mode & 0o777 == expected
    for p in paths.values():
        assert p.stat().st_mode & 0o777 == expected, p
    assert torch.equal(torch.load(tmp_path / "last.ckpt")["w"], torch.zeros(2))


# ------------------------------------------------------ 4. two runs started on one directory
def _race(cfg, barrier, err_file: str) -> None:
    sys.stderr = open(err_file, "w")  # noqa: SIM115 (the process ends right after)
    barrier.wait()
    try:
        RunDirGuard().on_run_start(config=cfg)
    except SystemExit as e:
        sys.stderr.flush()
        os._exit(int(e.code))
    os._exit(0)


@pytest.mark.skipif(sys.platform != "linux", reason="forks the test process")
def test_two_processes_racing_for_one_directory_one_runs(tmp_path) -> None:
    """Both pass the "is it empty?" check at the same moment; exactly one creates the claim."""
    from enas_lightning.precheck import compose

    ctx = multiprocessing.get_context("fork")
    for trial in range(8):
        run_dir = tmp_path / f"run{trial}"
        cfg = compose([*TINY, f"hydra.run.dir={run_dir}"])
        barrier = ctx.Barrier(2)
        errs = [tmp_path / f"err{trial}_{i}" for i in range(2)]
        procs = [ctx.Process(target=_race, args=(cfg, barrier, str(e))) for e in errs]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert sorted(p.exitcode for p in procs) == [0, 2], trial
        loser = errs[[p.exitcode for p in procs].index(2)].read_text().splitlines()
        assert len(loser) == 1 and loser[0].startswith(f"error: hydra.run.dir='{run_dir}'")
        assert "pass resume=true to continue that run" in loser[0]
        assert listing(run_dir) == [CLAIM]


@pytest.mark.slow
def test_two_runs_started_at_once_on_one_directory(tmp_path) -> None:
    run_dir = tmp_path / "run"
    args = tiny({"logger": "none", "trainer.enable_progress_bar": False, "search.epochs": 1})
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "enas_lightning", *args, f"hydra.run.dir={run_dir}"]
    procs = [
        subprocess.Popen(cmd, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    errs = [p.communicate(timeout=600)[1] for p in procs]
    codes = [p.returncode for p in procs]
    assert sorted(codes) == [0, 2], errs
    lines = errs[codes.index(2)].strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: hydra.run.dir='{run_dir}'"), lines
    assert (run_dir / "best_arch.json").is_file()

"""A DDP rank that dies ends the run with one line from the project.

For ``strategy=ddp`` Lightning's launcher reruns the script for every other local rank and
watches those processes from a thread of rank 0; when one ends with a non-zero code, that thread
logs "Child process ... terminated with code -9. Forcefully terminating all other processes to
avoid zombies" and SIGKILLs every process, rank 0 included: the user learns neither which rank
died nor what survives nor how to resume. :class:`WatchedDDPStrategy` is Lightning's
``DDPStrategy`` with :class:`WatchedLauncher`, the same launcher with :class:`RankWatch` as that
thread:

- a rank killed by a signal (the OOM killer, a user's ``kill -9``): rank 0 prints one line, which
  rank, what survives of the run and the resume command (:func:`enas_lightning.checkpointing.
  after_failure`), ends the other ranks and exits with :attr:`RankDied.exit_code`. Rank 0's main
  thread, which usually notices first (its next collective fails), hands over to the same line
  (:func:`after_exception`), so it is printed once, without a traceback;
- a rank that ended with an error of its own has printed it: rank 0 ends with the same exit
  code, quietly, once its main thread failed or after :data:`GRACE_S` seconds;
- rank 0 itself killed: a rank > 0 notices in its next collective (gloo: at once) that its
  parent is gone and prints the line for rank 0.

``ddp_spawn`` (torch.multiprocessing): the main process learns of a dead rank from
``ProcessExitedException`` and prints the same line. Under torchrun and SLURM the launcher
starts every rank and watches them, and reports a death in its own words; see docs/ddp.md.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from lightning_fabric.utilities.distributed import _set_num_threads_if_needed
from pytorch_lightning.strategies import DDPStrategy
from pytorch_lightning.strategies.launchers import _SubprocessScriptLauncher

from enas_lightning.errors import ENASError, RankDied

POLL_S = 1.0  # how often rank 0 looks at the other ranks (Lightning's watcher: 5 s)
GRACE_S = 10.0  # rank 0's time to end on its own after a rank ended with an error of its own
NOTICE_S = 5.0  # how long a failed collective waits for the rank that caused it to be seen dead


def signal_name(returncode: int) -> str:
    """``SIGKILL`` for a process ended by signal 9 (``returncode == -9``)."""
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def death_message(rank: int, pid: int, how: str, trainer: pl.Trainer | None) -> str:
    """``rank 1 (PID 123) died (SIGKILL); the run stopped; <what survives, how to resume>``."""
    from enas_lightning import rundir
    from enas_lightning.checkpointing import after_failure

    current = rundir.current()
    if current is not None:
        run_dir, task = current
    else:  # a task called from Python: its trainer's directory
        run_dir = Path(trainer.default_root_dir) if trainer is not None else Path.cwd()
        task = "search"
    return f"rank {rank} (PID {pid}) died ({how}); the run stopped" + after_failure(run_dir, task)


class RankWatch(threading.Thread):
    """Rank 0's watch over the ranks it started (see the module doc); says it once."""

    def __init__(self, procs: list[subprocess.Popen], trainer: pl.Trainer | None) -> None:
        super().__init__(daemon=True, name="enas-rank-watch")  # ends with the main process
        self.procs = procs
        self.trainer = trainer
        self.lock = threading.Lock()
        self.done = False  # someone (this thread or the main thread) has ended the run
        self.said = False  # this thread printed the line and is ending the process

    def run(self) -> None:
        failed_since: float | None = None
        while True:
            time.sleep(POLL_S)
            with self.lock:
                if self.done:
                    return
                codes = [p.poll() for p in self.procs]
                if all(c == 0 for c in codes):
                    return  # every other rank finished
                dead = self.dead()
                if dead is not None:
                    self.done = self.said = True
                    self.kill()
                    print(f"error: {RankDied(self.describe(*dead))}", file=sys.stderr, flush=True)
                    os._exit(RankDied.exit_code)
                failed = [c for c in codes if c is not None and c > 0]
                if failed:
                    failed_since = failed_since or time.monotonic()
                    if time.monotonic() - failed_since > GRACE_S:
                        # that rank printed its error; rank 0 is stuck waiting for it
                        self.done = self.said = True
                        self.kill()
                        os._exit(failed[0])

    def dead(self) -> tuple[int, subprocess.Popen] | None:
        """``(local rank, process)`` of the first rank killed by a signal, if any."""
        for i, p in enumerate(self.procs):
            if p.poll() is not None and p.returncode < 0:
                return i + 1, p
        return None

    def describe(self, local_rank: int, proc: subprocess.Popen) -> str:
        node = self.trainer.node_rank if self.trainer is not None else 0
        per_node = len(self.procs) + 1
        rank = node * per_node + local_rank
        return death_message(rank, proc.pid, signal_name(proc.returncode), self.trainer)

    def kill(self) -> None:
        """SIGKILL the ranks still running (they may wait in a collective for ever)."""
        for p in self.procs:
            if p.poll() is None:
                p.kill()

    def take_over(self, timeout: float) -> tuple[int, subprocess.Popen] | int | None:
        """For the main thread after a failure: wait up to ``timeout`` s for a rank to have ended;
        then stop watching. Returns a dead rank ``(local rank, process)``, the exit code of a rank
        that failed by itself, or ``None`` (every rank still runs: they are ended)."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                if self.said:  # this thread is printing the line and ending the process
                    break
                if self.done:  # the main thread took over before
                    return None
                dead = self.dead()
                codes = [c for c in (p.poll() for p in self.procs) if c]
                if dead is not None or codes or time.monotonic() > deadline:
                    self.done = True
                    self.kill()
                    return dead if dead is not None else (codes[0] if codes else None)
            time.sleep(0.1)
        time.sleep(60)  # os._exit comes first
        return None


# This process's watch over the ranks it started (rank 0), or the PID of the rank 0 that started
# it; set by the first fit and kept by the next ones (a pipeline's final training reuses the ranks)
_watch: RankWatch | None = None
_parent: tuple[int, pl.Trainer | None] | None = None


class WatchedLauncher(_SubprocessScriptLauncher):
    """Lightning's launcher for ``strategy=ddp`` with :class:`RankWatch` as the watcher."""

    def launch(self, function: Any, *args: Any, trainer: pl.Trainer | None = None, **kwargs: Any):
        global _watch, _parent
        # Lightning's launch with this module's watcher in place of its own
        self.cluster_environment.validate_settings(
            num_devices=self.num_processes, num_nodes=self.num_nodes
        )
        if not self.cluster_environment.creates_processes_externally:
            self._call_children_scripts()
            _watch = RankWatch(self.procs, trainer)
            _watch.start()
        elif _parent is None and "train_ddp_process_" in " ".join(sys.argv):
            _parent = os.getppid(), trainer  # the rank 0 that started this process
        _set_num_threads_if_needed(num_processes=self.num_processes)
        return function(*args, **kwargs)


class WatchedDDPStrategy(DDPStrategy):
    """``DDPStrategy`` whose ``ddp`` launcher is :class:`WatchedLauncher`."""

    def _configure_launcher(self) -> None:
        super()._configure_launcher()
        if isinstance(self._launcher, _SubprocessScriptLauncher):
            self._launcher = WatchedLauncher(
                self.cluster_environment, self.num_processes, self.num_nodes
            )


def _parent_gone(parent: int, timeout: float) -> bool:
    """Whether this process's parent ``parent`` ended (it is reparented), waiting up to
    ``timeout`` s: the failed collective may be seen before the parent's exit completes."""
    deadline = time.monotonic() + timeout
    while os.getppid() == parent:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def after_exception(e: BaseException, trainer: pl.Trainer | None = None) -> None:
    """After ``e`` stopped a run: say so in one line when a rank's death caused it.

    Called by :func:`enas_lightning.checkpointing.fit` and by the app (for what fails outside
    ``fit``: the derivation, the final evaluation); the second call finds the watch ended.

    Raises:
        RankDied: a rank was killed (rank 0's view), or rank 0 was (a rank it started).
        SystemExit: another rank ended with an error of its own, which it printed.
    Returns (the caller goes on with ``e``) when ``e`` is this rank's own error; rank 0 then ends
    the ranks it started, which would otherwise wait for it in a collective or print a
    traceback of that collective.
    """
    from torch.multiprocessing import ProcessExitedException

    if isinstance(e, ProcessExitedException) and e.signal_name:  # ddp_spawn
        how = e.signal_name
        raise RankDied(death_message(e.error_index, e.error_pid, how, trainer)) from None
    if _watch is not None:
        # this rank's own error needs no wait; any other may come from a rank's death
        found = _watch.take_over(0.0 if isinstance(e, ENASError) else NOTICE_S)
        if isinstance(found, tuple):
            raise RankDied(_watch.describe(*found)) from None
        if isinstance(found, int):
            raise SystemExit(found) from None
    elif _parent is not None and not isinstance(e, ENASError):
        parent, started_by = _parent
        if _parent_gone(parent, NOTICE_S):
            how = "its process ended"
            raise RankDied(death_message(0, parent, how, trainer or started_by)) from None

"""What ``python -m enas_lightning task=<name>`` runs: one :class:`Task` per name, looked up here.

``TASKS["search"]`` is the ENAS search and its derivation, ``"final"`` the training of one
architecture from scratch, ``"pipeline"`` both in one run, ``"inspect"`` the picture and cost of an
architecture, ``"fidelity"`` how far shared-weight scores rank architectures as retraining does.
A task is a module ``tasks/<name>.py`` that ends with one :func:`register_task` call; the app runs
``TASKS[cfg.task].run`` and the precheck (before Hydra writes anything) ``TASKS[cfg.task].check``,
so a new task touches its own module and :data:`BUILTIN` only. Another package's tasks are found
through the entry point group ``enas_lightning.tasks`` (each entry names a module whose import
registers a task), as spaces are (:mod:`enas_lightning.spaces`).

The task modules are imported on the first lookup: they import torch and Lightning, which
``python -m enas_lightning --help`` does not need.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from enas_lightning.errors import ConfigError

BUILTIN = ("search", "final", "pipeline", "inspect", "fidelity", "latency_table")
# setup.cfg of a package with tasks: [options.entry_points] enas_lightning.tasks = name = pkg.module
ENTRY_POINT_GROUP = "enas_lightning.tasks"
# What a resume continues from, relative to the run directory (search, final, pipeline).
CHECKPOINTS = ("checkpoints/last.ckpt", "*/checkpoints/last.ckpt")


def _nothing_to_check(cfg: Any, run_dir: Path, overrides: list[str]) -> None:
    return None


@dataclass(frozen=True)
class Task:
    """One value of ``task=``.

    Attributes:
        name: the value of ``task=``.
        run: ``run(cfg, output_dir)`` does the task in ``output_dir`` (the run directory, which
            exists) and returns the number a sweeper optimises (or ``None``).
        check: ``check(cfg, run_dir, overrides)`` raises an
            :class:`~enas_lightning.errors.ENASError` for every mistake in the user's input that
            it can find without writing anything (files, checkpoints, data); the precheck calls
            it after :func:`enas_lightning.build.validate`, before Hydra creates ``run_dir``.
            ``overrides`` are the command line's ``key=value`` arguments.
        resumes: ``resume=true`` continues an earlier run of this task in its directory
            (``task=inspect`` has nothing to continue and always needs a new directory).
        saves: glob patterns, relative to the run directory, of the files a resume continues
            from; after a fault the newest one found is named as what survives.
    """

    name: str
    run: Callable[[Any, Path], float | None]
    check: Callable[[Any, Path, list[str]], None] = _nothing_to_check
    resumes: bool = True
    saves: tuple[str, ...] = CHECKPOINTS


class _Registry(Mapping[str, Task]):
    """The tasks by name; the built-in ones are imported (and registered) on first use."""

    def __init__(self) -> None:
        self._tasks: dict[str, Task] = {}
        self._loaded = False

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for name in BUILTIN:  # importing a task's module registers it
                importlib.import_module(f"enas_lightning.tasks.{name}")
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                importlib.import_module(ep.value.split(":")[0])

    def add(self, task: Task) -> Task:
        if task.name not in BUILTIN:
            self._load()  # the built-in tasks come first, in their order
        self._tasks[task.name] = task
        return task

    def __getitem__(self, name: str) -> Task:
        self._load()
        return self._tasks[name]

    def __iter__(self) -> Iterator[str]:
        self._load()
        # the built-in ones in their order (a task module may import another's), then the others
        builtin = [n for n in BUILTIN if n in self._tasks]
        return iter(builtin + [n for n in self._tasks if n not in BUILTIN])

    def __len__(self) -> int:
        self._load()
        return len(self._tasks)


TASKS = _Registry()


def register_task(task: Task) -> Task:
    """Make ``task`` available as ``task=<task.name>`` (replaces one of that name)."""
    if not isinstance(task, Task):
        raise TypeError(f"register_task: expected a Task, got {type(task).__name__}")
    return TASKS.add(task)


def get_task(name: str) -> Task:
    """The registered task ``name``; a :class:`ConfigError` naming ``task`` otherwise."""
    if name not in TASKS:
        raise ConfigError("task", name, f"one of {', '.join(TASKS)}")
    return TASKS[name]


__all__ = ["TASKS", "Task", "get_task", "register_task"]

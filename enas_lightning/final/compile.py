"""Whether the final training compiles its network (``final.compile``), and where the compiled
kernels are kept.

``final.compile`` is ``false`` (the default), ``true``, or ``auto``: compile when the run's
optimizer steps (``final.epochs`` x batches per epoch on a rank) exceed
``final.compile_min_steps``. Drop path compiles into the same single graph as the rest: a
compiled forward reads its growing keep probability from a 0-dim buffer
(:meth:`MicroNetwork.cell_keep <enas_lightning.spaces.micro.network.MicroNetwork.cell_keep>`),
so dynamo does not recompile at every step. Compiling costs a fixed time up front (on a 2-core
CPU minutes: ``tests/test_final.py``) and saves a share of every step; it pays once the steps
saved outweigh it. ``bench/cpu_levers.py`` measures that break-even (compile seconds / (eager - compiled
seconds per step)) per space and size; ``final.compile_min_steps`` is to be set from it.

Inductor's compiled kernels are cached on disk; :func:`use_persistent_cache` points that cache at
``~/.cache/enas_lightning/inductor`` (unless ``TORCHINDUCTOR_CACHE_DIR`` is set), where a later
run of the same network finds them (torch's default is under ``/tmp``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from enas_lightning.errors import ConfigError

COMPILE_MODES = ("false", "true", "auto")
CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"


def compile_mode(value: Any) -> str:
    """``final.compile`` as one of :data:`COMPILE_MODES` (``true``/``True``/a bool alike).

    Raises:
        ConfigError: any other value.
    """
    mode = str(value).strip().lower()
    if mode not in COMPILE_MODES:
        raise ConfigError(
            "final.compile",
            value,
            f"one of {', '.join(COMPILE_MODES)} (auto: compile when the run has more than "
            "final.compile_min_steps optimizer steps)",
        )
    return mode


def should_compile(value: Any, total_steps: int, min_steps: int) -> bool:
    """Compile for ``final.compile=value`` in a run of ``total_steps`` optimizer steps?"""
    mode = compile_mode(value)
    return mode == "true" or (mode == "auto" and total_steps > min_steps)


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/enas_lightning/inductor`` (``~/.cache/...`` without it)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "enas_lightning" / "inductor"


def use_persistent_cache() -> str:
    """Set ``TORCHINDUCTOR_CACHE_DIR`` to :func:`default_cache_dir` unless the user set it
    (inductor reads it at each compile); returns the directory in use."""
    return os.environ.setdefault(CACHE_ENV, str(default_cache_dir()))

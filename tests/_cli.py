"""The tiny search settings and the ``python -m enas_lightning`` runner the tests share.

Each test file used to spell out its own copy of the same dozen overrides and of the same
subprocess call; they differ only in a few values (batch size, candidates, logging), which
:func:`tiny` takes as changes to one base.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

# A search that finishes in seconds on a CPU: micro, 3 layers of 4 channels, 3 nodes, fake data.
TINY_BASE: dict[str, object] = {
    "dataset": "fake",
    "trainer": "cpu",
    "search_space.layers": 3,
    "search_space.channels": 4,
    "search_space.num_nodes": 3,
    "controller.train_steps": 2,
    "controller.num_aggregate": 3,
    "search.batch_size": 32,
    "search.derive_samples": 4,
    # the controller plots at the last epoch only: drawing them took a tenth of a tiny search
    "logger.plot_every_n_epochs": 1000,
    # the standalone network as small as the supernet: a tiny run's final training and any
    # space that counts a candidate's cost by building it (the default Space.cost) stay cheap
    "final.layers": 3,
    "final.channels": 4,
}


def _value(v: object) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def space_of(overrides: Sequence[str]) -> str:
    """The space that ``overrides`` choose (``search_space=<name>``); micro by default."""
    for arg in overrides:
        key, sep, value = arg.lstrip("+~").partition("=")
        if sep and key.removeprefix("override ").strip() == "search_space":
            return value
    return "micro"


def tiny(
    changes: Mapping[str, object] = {},  # noqa: B006
    without: Sequence[str] = (),
    space: str = "micro",
) -> list[str]:
    """Hydra overrides ``key=value`` of :data:`TINY_BASE` updated by ``changes``, less
    ``without`` and less the settings that ``space`` does not have (micro's nodes per cell for
    ``search_space=macro``: Hydra rejects another space's setting)."""
    from omegaconf import OmegaConf

    from enas_lightning.config import SPACE_SECTIONS, space_config
    from enas_lightning.spaces import SPACES

    # an unknown space (a test of that error) keeps every setting
    typed, absent = (space_config(space) if space in SPACES else None), object()

    def fits(key: str) -> bool:
        owned = typed is not None and key.partition(".")[0] in SPACE_SECTIONS and "." in key
        return not owned or OmegaConf.select(typed, key, default=absent) is not absent

    settings = {**TINY_BASE, **changes}
    return [f"{k}={_value(v)}" for k, v in settings.items() if k not in without and fits(k)]


def enas(
    args: Sequence[str], cwd: Path, env: Mapping[str, str], timeout: float
) -> subprocess.CompletedProcess:
    """Run ``python -m enas_lightning *args``; output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "enas_lightning", *args],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )

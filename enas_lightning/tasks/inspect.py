"""``task=inspect``: print an architecture, its size and cost, and draw it."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from enas_lightning.arch.io import load_arch, save_arch
from enas_lightning.config import Config
from enas_lightning.data.datasets import data_shape
from enas_lightning.errors import ArchError, ConfigError
from enas_lightning.files import optional
from enas_lightning.spaces import ArchRecord, get_space
from enas_lightning.tasks import Task, register_task
from enas_lightning.viz import render


def load_cfg_arch(cfg: Config) -> ArchRecord:
    """The architecture named by ``arch=`` for the configured search space."""
    if not cfg.arch:
        raise ConfigError(
            "arch",
            cfg.arch,
            "a JSON file (e.g. <run>/best_arch.json) or the authors' integer string",
        )
    s = cfg.search_space
    space = get_space(s.name)
    return load_arch(cfg.arch, s.name, tuple(s.ops), space.arch_size(s))


def check_arch(cfg: Config) -> None:
    """``arch=``, when given, is an architecture of the configured space (one line if not)."""
    if not cfg.arch:
        return
    try:
        load_cfg_arch(cfg)
    except ArchError as e:
        if str(e).startswith("arch="):
            raise
        raise ArchError(f"arch={cfg.arch!r} is not allowed: {e}") from None


def check_inspect(cfg: Config, run_dir: Path, overrides: list[str]) -> None:
    """An architecture is given and valid; the dataset's shape is known (an image folder
    exists) before Hydra writes."""
    if not cfg.arch:
        raise ConfigError(
            "arch",
            cfg.arch,
            "a JSON file (e.g. <run>/best_arch.json) or the authors' integer string",
        )
    check_arch(cfg)
    data_shape(cfg.dataset)


def run_inspect(cfg: Config, output_dir: Path) -> dict:
    arch = load_cfg_arch(cfg)
    s = cfg.search_space
    space = get_space(s.name)
    f = cfg.final
    depth = space.fixed_final_layers(arch, s)
    if depth is not None:  # the architecture fixes the network's depth: draw and count that
        f = OmegaConf.merge(f, {"layers": depth})
    # the classes and image shape of the configured dataset, without loading its images
    classes, shape = data_shape(cfg.dataset)
    c, hw, _ = shape
    cost = space.cost(f, arch, classes, shape)
    ops = tuple(s.ops)
    save_arch(arch, output_dir / "arch.json", ops)
    files: list[Path] = []
    with optional(output_dir / "arch.png"):
        files = render(space.picture(arch), output_dir / "arch")
    where = space.describe_network(f, arch)
    print(f"{s.name} architecture ({where}, {classes} classes, {c}x{hw}x{hw} input):")
    print(arch)
    print("ints: " + " ".join(map(str, arch.to_ints(ops))))
    print(f"params: {cost.params}")
    print(f"madds: {cost.madds}")
    print("diagram: " + ", ".join(str(p) for p in files))
    return {"params": cost.params, "madds": cost.madds, "files": files}


def _run(cfg: Config, output_dir: Path) -> None:
    run_inspect(cfg, output_dir)


register_task(Task("inspect", run=_run, check=check_inspect, resumes=False, saves=()))

"""``task=inspect``: print an architecture, its size and cost, and draw it."""

from __future__ import annotations

from pathlib import Path

from enas_lightning.arch.io import load_arch, save_arch
from enas_lightning.config import Config
from enas_lightning.data.datasets import data_shape
from enas_lightning.errors import ConfigError
from enas_lightning.spaces.cost import count_madds, count_params
from enas_lightning.spaces.macro.network import MacroNetwork
from enas_lightning.spaces.macro.supernet import reduction_layers
from enas_lightning.spaces.micro.network import MicroNetwork
from enas_lightning.viz import arch_dot, render


def load_cfg_arch(cfg: Config):
    """The architecture named by ``arch=`` for the configured search space."""
    if not cfg.arch:
        raise ConfigError(
            "arch",
            cfg.arch,
            "a JSON file (e.g. <run>/best_arch.json) or the authors' integer string",
        )
    s = cfg.search_space
    size = s.num_nodes if s.name == "micro" else None
    return load_arch(cfg.arch, s.name, tuple(s.ops), size)


def run_inspect(cfg: Config, output_dir: Path) -> dict:
    arch = load_cfg_arch(cfg)
    s, f = cfg.search_space, cfg.final
    # the classes and image shape of the configured dataset, without loading its images
    classes, (c, hw, _) = data_shape(cfg.dataset)
    if s.name == "micro":
        net = MicroNetwork(
            arch,
            classes,
            c,
            layers=f.layers,
            channels=f.channels,
            aux_head=f.aux_weight > 0,
            image_size=hw,
            layer_base=f.layer_base,
        )
        dot = arch_dot(arch)
        where = f"{f.layers} layers (+2 reduction cells), {f.channels} channels"
    else:
        net = MacroNetwork(arch, classes, c, channels=f.channels, skip_merge=f.skip_merge)
        dot = arch_dot(arch, reductions=reduction_layers(arch.num_layers))
        where = f"{arch.num_layers} layers, {f.channels} channels, skips {f.skip_merge}"
    params = count_params(net)
    madds = count_madds(net, (c, hw, hw))
    ops = tuple(s.ops)
    save_arch(arch, output_dir / "arch.json", ops)
    files = render(dot, output_dir / "arch")
    print(f"{s.name} architecture ({where}, {classes} classes, {c}x{hw}x{hw} input):")
    print(arch)
    print("ints: " + " ".join(map(str, arch.to_ints(ops))))
    print(f"params: {params}")
    print(f"madds: {madds}")
    print("diagram: " + ", ".join(str(p) for p in files))
    return {"params": params, "madds": madds, "files": files}

"""A toy search space, registered by the tests and shown in docs/new_space.md.

A chain of ``search_space.layers`` layers after a stem convolution; each layer is one op of
``search_space.ops`` (``conv_3x3`` or ``avg_pool_3x3``). It is everything a space needs and
nothing more: a record with its integer codec, its own settings (the stem's kernel size), a
controller, a supernet, a standalone network, a picture and its layout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from enas_lightning.config import FinalConfig, SearchSpaceConfig
from enas_lightning.controller import Controller, Sample
from enas_lightning.errors import ArchError, ConfigError
from enas_lightning.spaces import Space, register_space
from enas_lightning.viz.graph import Picture

CHAIN_OPS = ("conv_3x3", "avg_pool_3x3")


# ------------------------------------------------------------------------------------- record
@dataclass(frozen=True)
class ChainArch:
    """One op name per layer. Integer format: the op's index in the op vocabulary per layer."""

    ops: tuple[str, ...]
    space: ClassVar[str] = "chain"

    def to_ints(self, ops: tuple[str, ...] = CHAIN_OPS) -> list[int]:
        return [ops.index(op) for op in self.ops]

    def to_dict(self, ops: tuple[str, ...] = CHAIN_OPS) -> dict[str, Any]:
        ints = " ".join(map(str, self.to_ints(ops)))
        return {"space": self.space, "ops": list(self.ops), "ints": ints}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ChainArch:
        return cls(tuple(d["ops"]))

    def __str__(self) -> str:
        return " -> ".join(self.ops)


# ---------------------------------------------------------------------------------- settings
@dataclass
class ChainSearchSpaceConfig(SearchSpaceConfig):
    """``search_space`` for ``search_space=chain``: its defaults are the space's preset."""

    ops: list[str] = field(default_factory=lambda: list(CHAIN_OPS))
    aux_weight: float = 0.0  # the chain has no aux head
    stem_kernel: int = 3  # the chain's own setting: the supernet stem's kernel size (odd)


@dataclass
class ChainFinalConfig(FinalConfig):
    """``final`` for ``search_space=chain``."""

    aux_weight: float = 0.0
    stem_kernel: int = 3  # the standalone network's stem kernel size (odd)


# --------------------------------------------------------------------------------- controller
class ChainController(Controller):
    """One op decision per layer, each fed back as the next input: ``arcs`` is ``[n, L]``."""

    def __init__(self, ops: tuple[str, ...], num_layers: int, **kw: Any) -> None:
        super().__init__(ops, **kw)
        self.num_layers = num_layers
        self.reset_parameters()

    def forward(
        self,
        n: int = 1,
        arcs: Tensor | None = None,
        greedy: bool = False,
        generator: torch.Generator | None = None,
    ) -> Sample:
        n = arcs.shape[0] if arcs is not None else n
        state, x = self.zero_state(n), self.g_emb.expand(n, -1)
        log_prob, entropy = self.g_emb.new_zeros(n), self.g_emb.new_zeros(n)
        choices, probs = [], []
        for i in range(self.num_layers):
            h, state = self.step(x, state)
            logits = self.scale(self.w_soft(h), self.tanh_constant)
            forced = None if arcs is None else arcs[:, i]
            op, lp, ent = self.decide(logits, forced, greedy, generator)
            choices.append(op)
            log_prob, entropy = log_prob + lp, entropy + ent
            probs.append(torch.softmax(logits, -1).detach())
            x = self.w_emb(op)
        penalty = self.g_emb.new_zeros(n)
        return Sample(torch.stack(choices, 1), log_prob, entropy, penalty, torch.stack(probs, 1))

    def op_labels(self) -> list[str]:
        return [f"layer{i}" for i in range(self.num_layers)]

    def to_archs(self, arcs: Tensor) -> list[ChainArch]:
        return [ChainArch(tuple(self.ops[k] for k in row)) for row in arcs.tolist()]

    def from_archs(self, archs: list[ChainArch]) -> Tensor:
        rows = [[self.ops.index(op) for op in a.ops] for a in archs]
        return torch.tensor(rows, dtype=torch.long, device=self.g_emb.device)


# ------------------------------------------------------------------------------ ops, networks
def build_op(name: str, channels: int, search: bool) -> nn.Module:
    factories: dict[str, Callable[[], nn.Module]] = {
        "conv_3x3": lambda: nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            # search BN keeps no running statistics (they would mix all children)
            nn.BatchNorm2d(channels, track_running_stats=not search),
            nn.ReLU(),
        ),
        "avg_pool_3x3": lambda: nn.AvgPool2d(3, 1, 1, count_include_pad=False),
    }
    return factories[name]()


class ChainSupernet(nn.Module):
    """Every op of every layer; ``forward(x [B, C, H, W], arch) -> logits [B, K]``."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        layers: int,
        channels: int,
        ops: tuple[str, ...],
        stem_kernel: int = 3,
    ) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, channels, stem_kernel, padding=stem_kernel // 2)
        self.layers = nn.ModuleList(
            nn.ModuleDict({op: build_op(op, channels, search=True) for op in ops})
            for _ in range(layers)
        )
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor, arch: ChainArch) -> Tensor:
        x = self.stem(x)
        for layer, op in zip(self.layers, arch.ops, strict=True):
            x = layer[op](x)
        return self.head(x.mean((2, 3)))


class ChainNetwork(nn.Module):
    """The standalone network of one architecture: ``[B, C, H, W] -> [B, K]``."""

    def __init__(
        self,
        arch: ChainArch,
        num_classes: int,
        in_channels: int,
        channels: int,
        stem_kernel: int = 3,
    ) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, channels, stem_kernel, padding=stem_kernel // 2)
        self.layers = nn.Sequential(*(build_op(op, channels, search=False) for op in arch.ops))
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.layers(self.stem(x)).mean((2, 3)))


# ------------------------------------------------------------------------------------ the space
class ChainSpace(Space):
    name = "chain"
    record = ChainArch
    settings = {"search_space": ChainSearchSpaceConfig, "final": ChainFinalConfig}

    def check_config(self, cfg: Any) -> None:
        s = cfg.search_space
        for op in s.ops:
            if op not in CHAIN_OPS:
                raise ConfigError("search_space.ops", op, f"chain ops are {', '.join(CHAIN_OPS)}")
        if s.layers < 1:
            raise ConfigError("search_space.layers", s.layers, "at least 1")
        for setting, kernel in (
            ("search_space.stem_kernel", s.stem_kernel),
            ("final.stem_kernel", cfg.final.stem_kernel),
        ):
            if kernel < 1 or kernel % 2 == 0:
                raise ConfigError(setting, kernel, "an odd size >= 1 (the stem keeps H x W)")

    def fingerprint(self, s: ChainSearchSpaceConfig) -> dict[str, Any]:
        return {"search_space.stem_kernel": s.stem_kernel}  # the stem's weights depend on it

    def fixed_final_layers(self, arch: ChainArch | None, s: Any) -> int | None:
        return len(arch.ops) if arch is not None else s.layers

    def arch_size(self, s: Any) -> int | None:
        return s.layers

    def decode(self, ints: list[int], ops: tuple[str, ...], size: int | None) -> ChainArch:
        if any(not 0 <= i < len(ops) for i in ints):
            raise ArchError(f"chain arch {ints}: op integers must be in 0..{len(ops) - 1}")
        return ChainArch(tuple(ops[i] for i in ints))

    def check_arch(self, arch: ChainArch, ops: tuple[str, ...], size: int | None) -> None:
        if size is not None and len(arch.ops) != size:
            raise ArchError(f"chain arch has {len(arch.ops)} layers, search_space.layers={size}")
        if any(op not in ops for op in arch.ops):
            raise ArchError(f"chain arch {arch}: ops must be in {ops}")

    def build_controller(self, s: Any, c: Any) -> ChainController:
        return ChainController(tuple(s.ops), s.layers, **self.lstm_options(c))

    def build_supernet(
        self, s: Any, num_classes: int, image_shape: tuple[int, int, int]
    ) -> nn.Module:
        c = image_shape[0]
        return ChainSupernet(num_classes, c, s.layers, s.channels, tuple(s.ops), s.stem_kernel)

    def build_network(
        self, f: Any, arch: ChainArch, num_classes: int, image_shape: tuple[int, int, int]
    ) -> nn.Module:
        return ChainNetwork(arch, num_classes, image_shape[0], f.channels, f.stem_kernel)

    def reduction_layers(self, layers: int) -> tuple[int, ...]:
        return ()  # the chain never halves the feature map

    def picture(self, arch: ChainArch) -> Picture:
        p = Picture("chain", "LR")
        p.node("stem", "stem", "stem")
        for i, op in enumerate(arch.ops):
            p.node(f"layer{i}", f"{i}: {op}")
        p.node("classifier", "classifier", "output")
        chain = ["stem", *(f"layer{i}" for i in range(len(arch.ops))), "classifier"]
        for tail, head in pairwise(chain):
            p.edge(tail, head)
        return p


CHAIN = register_space(ChainSpace())

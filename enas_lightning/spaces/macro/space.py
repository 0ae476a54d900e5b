"""The macro (whole network) space as one object: per layer an op and skips to earlier layers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from enas_lightning.errors import ConfigError
from enas_lightning.spaces import register_space
from enas_lightning.spaces.base import Space
from enas_lightning.spaces.macro.arch import MacroArch
from enas_lightning.spaces.macro.settings import (
    SETTINGS,
    MacroControllerConfig,
    MacroFinalConfig,
    MacroSearchSpaceConfig,
)

if TYPE_CHECKING:
    from torch import Tensor, nn

    from enas_lightning.config import Config
    from enas_lightning.controller.base import Sample
    from enas_lightning.spaces.base import Cost, OpPlacement
    from enas_lightning.spaces.macro.controller import MacroController
    from enas_lightning.viz.graph import Picture


class MacroSpace(Space):
    name = "macro"
    record = MacroArch
    settings = SETTINGS

    def check_config(self, cfg: Config) -> None:
        from enas_lightning.spaces.macro.ops import MACRO_OPS, check_skip_merge

        s = cfg.search_space
        MACRO_OPS.check(tuple(s.ops), "search_space.ops")
        # two pooling layers sit at layers // 3 steps; fewer than 3 layers leaves no room
        if s.layers < 3:
            raise ConfigError("search_space.layers", s.layers, "at least 3")
        check_skip_merge(s.skip_merge, "search_space.skip_merge")
        check_skip_merge(cfg.final.skip_merge, "final.skip_merge")
        c = cfg.controller
        if not 0 < c.skip_target < 1:
            raise ConfigError("controller.skip_target", c.skip_target, "in (0, 1)")
        from enas_lightning.spaces.macro.controller import ENTROPIES, SKIP_PENALTIES

        for setting, value, allowed in (
            ("controller.skip_penalty", c.skip_penalty, SKIP_PENALTIES),
            ("controller.entropy", c.entropy, ENTROPIES),
        ):
            if value not in allowed:
                raise ConfigError(setting, value, f"one of {', '.join(allowed)}")

    def fingerprint(self, s: MacroSearchSpaceConfig) -> dict[str, Any]:
        # a sum merge and a concat merge hold different weights
        return {"search_space.skip_merge": s.skip_merge}

    def fixed_final_layers(self, arch: MacroArch | None, s: MacroSearchSpaceConfig) -> int | None:
        # a macro architecture is the whole network: it fixes its depth
        return arch.num_layers if arch is not None else s.layers

    def decode(self, ints: list[int], ops: tuple[str, ...], size: int | None) -> MacroArch:
        return MacroArch.from_ints(ints, ops, num_layers=size)

    def check_arch(self, arch: MacroArch, ops: tuple[str, ...], size: int | None) -> None:
        arch.validate(ops, num_layers=size)

    def build_controller(
        self, s: MacroSearchSpaceConfig, c: MacroControllerConfig
    ) -> MacroController:
        from enas_lightning.spaces.macro.controller import MacroController

        return MacroController(
            tuple(s.ops),
            num_layers=s.layers,
            skip_target=c.skip_target,
            skip_penalty=c.skip_penalty,
            entropy=c.entropy,
            **self.lstm_options(c),
        )

    def penalty_weight(self, c: MacroControllerConfig) -> float:
        return c.skip_weight

    def build_supernet(
        self, s: MacroSearchSpaceConfig, num_classes: int, image_shape: tuple[int, int, int]
    ) -> nn.Module:
        from enas_lightning.spaces.macro.supernet import MacroSupernet

        return MacroSupernet(
            num_classes,
            in_channels=image_shape[0],
            layers=s.layers,
            channels=s.channels,
            ops=tuple(s.ops),
            dropout_keep=s.dropout_keep,
            skip_merge=s.skip_merge,
        )

    def build_network(
        self,
        f: MacroFinalConfig,
        arch: MacroArch,
        num_classes: int,
        image_shape: tuple[int, int, int],
    ) -> nn.Module:
        from enas_lightning.spaces.macro.network import MacroNetwork

        self._check_layers(f, arch)
        return MacroNetwork(
            arch,
            num_classes,
            image_shape[0],
            channels=f.channels,
            dropout_keep=f.dropout_keep,
            skip_merge=f.skip_merge,
        )

    def cost(
        self,
        f: MacroFinalConfig,
        arch: MacroArch,
        num_classes: int,
        image_shape: tuple[int, int, int],
    ) -> Cost:
        """As :meth:`Space.cost`, counted without building the network (the same counts)."""
        from enas_lightning.spaces.macro.network import network_cost

        self._check_layers(f, arch)
        c, h, w = image_shape
        return network_cost(arch, num_classes, c, (h, w), f.channels, f.dropout_keep, f.skip_merge)

    @staticmethod
    def _check_layers(f: MacroFinalConfig, arch: MacroArch) -> None:
        if f.layers != arch.num_layers:
            raise ConfigError(
                "final.layers",
                f.layers,
                f"{arch.num_layers}, the layer count of the macro architecture",
            )

    def describe_network(self, f: MacroFinalConfig, arch: MacroArch) -> str:
        return f"{arch.num_layers} layers, {f.channels} channels, skips {f.skip_merge}"

    def sample_stats(self, controller: MacroController, sample: Sample) -> dict[str, Tensor]:
        # the fraction of possible skips taken, L(L-1)/2 per architecture
        n = controller.num_layers
        rate = sample.arcs[:, :, 1:].float().sum((1, 2)) / max(1, n * (n - 1) // 2)
        return {"skip_rate": rate.mean()}

    def param_free_share(self, arch: MacroArch) -> float:
        from enas_lightning.spaces.macro.ops import MACRO_OPS

        return MACRO_OPS.param_free_share([layer.op for layer in arch.layers])

    def _layer_shapes(
        self, layers: int, f: MacroFinalConfig, image_shape: tuple[int, int, int]
    ) -> list[tuple[int, int, int]]:
        """Per layer of the standalone network: its channels and the height and width its op
        runs at (as :class:`MacroNetwork` sizes them)."""
        from enas_lightning.spaces.base import halved
        from enas_lightning.spaces.macro.network import reduction_after

        _, h, w = image_shape
        c, shapes = f.channels, []
        for i in range(layers):
            shapes.append((c, h, w))
            if i in reduction_after(layers):
                c, h, w = 2 * c, halved(h), halved(w)
        return shapes

    def op_placements(
        self, f: MacroFinalConfig, arch: MacroArch, image_shape: tuple[int, int, int]
    ) -> list[OpPlacement]:
        from enas_lightning.spaces.base import OpPlacement

        shapes = self._layer_shapes(arch.num_layers, f, image_shape)
        return [
            OpPlacement(layer.op, c, h, w, 1)
            for layer, (c, h, w) in zip(arch.layers, shapes, strict=True)
        ]

    def all_op_placements(
        self, f: MacroFinalConfig, s: MacroSearchSpaceConfig, image_shape: tuple[int, int, int]
    ) -> list[OpPlacement]:
        from enas_lightning.spaces.base import OpPlacement

        found: dict[str, OpPlacement] = {}
        for c, h, w in self._layer_shapes(s.layers, f, image_shape):
            for op in s.ops:
                p = OpPlacement(op, c, h, w, 1)
                found.setdefault(p.key, p)
        return list(found.values())

    def build_op(self, placement: OpPlacement) -> nn.Module:
        from enas_lightning.spaces.macro.ops import MACRO_OPS

        return MACRO_OPS.build(placement.op, placement.channels, 1, search=False)

    def reduction_layers(self, layers: int) -> tuple[int, ...]:
        from enas_lightning.spaces.macro.supernet import reduction_layers

        return reduction_layers(layers)

    def picture(self, arch: MacroArch) -> Picture:
        from enas_lightning.spaces.macro.picture import macro_arch_picture

        n = arch.num_layers
        # a network shallower than the layout (only in tests: configs ask for 3+) has none
        reductions = tuple(r for r in self.reduction_layers(n) if 0 <= r < n)
        return macro_arch_picture(arch, reductions=reductions)


MACRO = register_space(MacroSpace())

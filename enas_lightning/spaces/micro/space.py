"""The micro (cell) space as one object: ENAS's normal and reduction cells, stacked."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from enas_lightning.errors import ConfigError
from enas_lightning.spaces import register_space
from enas_lightning.spaces.base import Space
from enas_lightning.spaces.micro.arch import MicroArch
from enas_lightning.spaces.micro.settings import (
    SETTINGS,
    MicroControllerConfig,
    MicroFinalConfig,
    MicroSearchSpaceConfig,
)

if TYPE_CHECKING:
    from torch import nn

    from enas_lightning.config import Config
    from enas_lightning.spaces.base import Cost, OpPlacement
    from enas_lightning.spaces.micro.controller import MicroController
    from enas_lightning.viz.graph import Picture


class MicroSpace(Space):
    name = "micro"
    record = MicroArch
    settings = SETTINGS

    def check_config(self, cfg: Config) -> None:
        from enas_lightning.spaces.micro.ops import MICRO_OPS

        s = cfg.search_space
        MICRO_OPS.check(tuple(s.ops), "search_space.ops")
        if s.num_nodes < 1:
            raise ConfigError("search_space.num_nodes", s.num_nodes, "at least 1")
        # two reduction cells sit at layers // 3 steps; fewer than 3 layers leaves no room
        for setting, layers in (
            ("search_space.layers", s.layers),
            ("final.layers", cfg.final.layers),
        ):
            if layers < 3:
                raise ConfigError(setting, layers, "at least 3")

    def fingerprint(self, s: MicroSearchSpaceConfig) -> dict[str, Any]:
        return {
            "search_space.num_nodes": s.num_nodes,
            "search_space.weights_per_input": s.weights_per_input,
        }

    def arch_size(self, s: MicroSearchSpaceConfig) -> int | None:
        return s.num_nodes

    def decode(self, ints: list[int], ops: tuple[str, ...], size: int | None) -> MicroArch:
        return MicroArch.from_ints(ints, ops, num_nodes=size)

    def check_arch(self, arch: MicroArch, ops: tuple[str, ...], size: int | None) -> None:
        arch.validate(ops, num_nodes=size)

    def build_controller(
        self, s: MicroSearchSpaceConfig, c: MicroControllerConfig
    ) -> MicroController:
        from enas_lightning.spaces.micro.controller import MicroController

        return MicroController(
            tuple(s.ops),
            num_nodes=s.num_nodes,
            op_tanh_reduce=c.op_tanh_reduce,
            op_bias=c.op_bias,
            **self.lstm_options(c),
        )

    def build_supernet(
        self, s: MicroSearchSpaceConfig, num_classes: int, image_shape: tuple[int, int, int]
    ) -> nn.Module:
        from enas_lightning.spaces.micro.supernet import MicroSupernet

        c, h, _ = image_shape
        return MicroSupernet(
            num_classes,
            in_channels=c,
            layers=s.layers,
            channels=s.channels,
            num_nodes=s.num_nodes,
            ops=tuple(s.ops),
            dropout_keep=s.dropout_keep,
            aux_head=s.aux_weight > 0,
            image_size=h,
            weights_per_input=s.weights_per_input,
        )

    def build_network(
        self,
        f: MicroFinalConfig,
        arch: MicroArch,
        num_classes: int,
        image_shape: tuple[int, int, int],
    ) -> nn.Module:
        from enas_lightning.spaces.micro.network import MicroNetwork

        c, h, _ = image_shape
        return MicroNetwork(
            arch,
            num_classes,
            c,
            layers=f.layers,
            channels=f.channels,
            dropout_keep=f.dropout_keep,
            drop_path_keep=f.drop_path_keep,
            aux_head=f.aux_weight > 0,
            image_size=h,
            layer_base=f.layer_base,
        )

    def cost(
        self,
        f: MicroFinalConfig,
        arch: MicroArch,
        num_classes: int,
        image_shape: tuple[int, int, int],
    ) -> Cost:
        """As :meth:`Space.cost`, counted without building the network (the same counts)."""
        from enas_lightning.spaces.micro.network import network_cost

        c, h, w = image_shape
        return network_cost(
            arch,
            num_classes,
            c,
            (h, w),
            layers=f.layers,
            channels=f.channels,
            dropout_keep=f.dropout_keep,
            drop_path_keep=f.drop_path_keep,
            aux_head=f.aux_weight > 0,
            layer_base=f.layer_base,
        )

    def describe_network(self, f: MicroFinalConfig, arch: MicroArch) -> str:
        return f"{f.layers} layers (+2 reduction cells), {f.channels} channels"

    def param_free_share(self, arch: MicroArch) -> float:
        from enas_lightning.spaces.micro.ops import MICRO_OPS

        # both cells: every node's two op choices
        cells = (arch.normal, arch.reduce)
        return MICRO_OPS.param_free_share([op for c in cells for n in c.nodes for op in n.ops])

    def _cell_shapes(
        self, f: MicroFinalConfig, image_shape: tuple[int, int, int]
    ) -> list[tuple[bool, int, tuple[int, int], tuple[int, int]]]:
        """Per cell of the standalone network: reduction or not, its channels, the size of its
        inputs and the size its nodes run at (as :class:`MicroNetwork` sizes them)."""
        from enas_lightning.spaces.base import halved
        from enas_lightning.spaces.micro.network import reduction_positions

        _, h, w = image_shape
        reductions = reduction_positions(f.layers)
        c, out, shapes = f.channels, (h, w), []
        for index in range(f.layers + 2):
            reduction = index in reductions
            inputs = out
            if reduction:
                c *= 2
                out = (halved(out[0]), halved(out[1]))
            shapes.append((reduction, c, inputs, out))
        return shapes

    def op_placements(
        self, f: MicroFinalConfig, arch: MicroArch, image_shape: tuple[int, int, int]
    ) -> list[OpPlacement]:
        from enas_lightning.spaces.base import OpPlacement

        placements = []
        for reduction, c, inputs, out in self._cell_shapes(f, image_shape):
            cell = arch.reduce if reduction else arch.normal
            for node in cell.nodes:
                for i, op in zip(node.inputs, node.ops, strict=True):
                    # a reduction cell's ops on its two inputs run at stride 2 (FinalCell)
                    stride = 2 if reduction and i < 2 else 1
                    h, w = inputs if stride == 2 else out
                    placements.append(OpPlacement(op, c, h, w, stride))
        return placements

    def all_op_placements(
        self, f: MicroFinalConfig, s: MicroSearchSpaceConfig, image_shape: tuple[int, int, int]
    ) -> list[OpPlacement]:
        from enas_lightning.spaces.base import OpPlacement

        found: dict[str, OpPlacement] = {}
        for reduction, c, inputs, out in self._cell_shapes(f, image_shape):
            for op in s.ops:
                for stride in (1, 2) if reduction else (1,):
                    h, w = inputs if stride == 2 else out
                    p = OpPlacement(op, c, h, w, stride)
                    found.setdefault(p.key, p)
        return list(found.values())

    def build_op(self, placement: OpPlacement) -> nn.Module:
        from enas_lightning.spaces.micro.ops import MICRO_OPS

        p = placement
        return MICRO_OPS.build(p.op, p.channels, p.stride, search=False)

    def reduction_layers(self, layers: int) -> tuple[int, ...]:
        from enas_lightning.spaces.micro.network import reduction_positions

        return reduction_positions(layers)

    def picture(self, arch: MicroArch) -> Picture:
        from enas_lightning.spaces.micro.picture import micro_arch_picture

        return micro_arch_picture(arch)


MICRO = register_space(MicroSpace())

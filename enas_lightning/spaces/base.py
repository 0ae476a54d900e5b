"""What a search space is: one object that knows its records, controller, networks and picture.

Everything outside ``spaces/`` asks the configured space (``SPACES[cfg.search_space.name]``)
instead of branching on its name: config checks, building the supernet, the controller and
the standalone network, reading architectures, the search's per-step controller statistics,
the pictures and the cost. A space is one folder ``spaces/<name>/`` plus one
:func:`~enas_lightning.spaces.register_space` call (docs/new_space.md).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:  # torch and the config are imported where a space is used
    from torch import Tensor, nn

    from enas_lightning.config import Config, ControllerConfig, FinalConfig, SearchSpaceConfig
    from enas_lightning.controller.base import Controller, Sample
    from enas_lightning.viz.graph import Picture


@dataclass(frozen=True)
class Cost:
    """What a standalone network costs: trainable parameters, multiply-adds per image.

    ``aux_params`` of the ``params`` are the auxiliary head's (trained, unused at test time;
    the paper's parameter counts leave them out); multiply-adds never count the aux head.
    """

    params: int
    madds: int
    aux_params: int = 0


@dataclass(frozen=True)
class OpPlacement:
    """One op as a standalone network places it: the op's name, its channels, the height and
    width of its input and its stride. The latency table (docs/cost_aware.md) times each one."""

    op: str
    channels: int
    height: int
    width: int
    stride: int

    @property
    def key(self) -> str:
        """The latency table's name for it, e.g. ``sep_conv_3x3 c36 32x32 s1``."""
        return f"{self.op} c{self.channels} {self.height}x{self.width} s{self.stride}"


def halved(size: int) -> int:
    """The side of a feature map after a stride-2 op or a factorized reduction."""
    return (size + 1) // 2


class ArchRecord(Protocol):
    """An architecture as plain data: an immutable record with a JSON form and an integer form.

    ``space`` names the space the record belongs to (written into its JSON); ``ops`` arguments
    are the op vocabulary in the order of the integer encoding.
    """

    space: ClassVar[str]

    def to_ints(self, ops: tuple[str, ...]) -> list[int]: ...

    def to_dict(self, ops: tuple[str, ...]) -> dict[str, Any]: ...


class Space(ABC):
    """One search space. Subclasses set :attr:`name` and :attr:`record`, and :attr:`settings`
    where they have settings of their own.

    ``s`` arguments are the ``search_space`` config section, ``f`` the ``final`` section, ``c``
    the ``controller`` section, each typed by the space's :attr:`settings`; ``image_shape`` is
    ``(C, H, W)`` of one input image.
    """

    name: ClassVar[str]
    record: ClassVar[type]  # the architecture record class (an ArchRecord)
    # The settings this space adds: config section ("search_space", "controller" or "final")
    # -> a dataclass extending that section's (SearchSpaceConfig, ControllerConfig,
    # FinalConfig). search_space=<name> composes them, so a key of another space is rejected.
    settings: ClassVar[Mapping[str, type]] = {}

    # ------------------------------------------------------------------------------ settings
    @abstractmethod
    def check_config(self, cfg: Config) -> None:
        """Raise :class:`~enas_lightning.errors.ConfigError` for a setting this space rejects
        (its op names, sizes, merge modes)."""

    def fingerprint(self, s: SearchSpaceConfig) -> dict[str, Any]:
        """The space-specific settings a search checkpoint's weights depend on (besides the
        name, ``layers``, ``channels``, ``ops`` and the aux head, which every space has)."""
        return {}

    def fixed_final_layers(self, arch: ArchRecord | None, s: SearchSpaceConfig) -> int | None:
        """The depth a standalone network of ``arch`` must have (``final.layers``), or ``None``
        where the final network's depth is free (a cell stacked any number of times).
        ``arch`` ``None``: for architectures of the searched size ``s``."""
        return None

    def standalone_final(self, f: FinalConfig, arch: Any, s: SearchSpaceConfig) -> FinalConfig:
        """``f`` with the depth ``arch`` fixes (:meth:`fixed_final_layers`), where it fixes
        one: the settings its standalone network is counted and timed with."""
        depth = self.fixed_final_layers(arch, s)
        if depth is None or depth == f.layers:
            return f
        from omegaconf import OmegaConf

        return OmegaConf.merge(f, {"layers": depth})  # type: ignore[return-value]

    # --------------------------------------------------------------------------- records
    def arch_size(self, s: SearchSpaceConfig) -> int | None:
        """The size an architecture of this search must have (nodes per cell, layers), checked
        when one is read; ``None`` accepts any size."""
        return None

    @abstractmethod
    def decode(self, ints: list[int], ops: tuple[str, ...], size: int | None) -> Any:
        """The authors' integer format -> a record (``size`` as :meth:`arch_size`)."""

    @abstractmethod
    def check_arch(self, arch: Any, ops: tuple[str, ...], size: int | None) -> None:
        """Raise :class:`~enas_lightning.errors.ArchError` if ``arch`` is not in this space."""

    def from_dict(self, d: dict[str, Any]) -> Any:
        """The record of a JSON object written by ``record.to_dict``."""
        return self.record.from_dict(d)

    # ------------------------------------------------------------------------------ models
    @staticmethod
    def lstm_options(c: ControllerConfig) -> dict[str, Any]:
        """The ``controller`` settings every :class:`~enas_lightning.controller.Controller`
        takes (LSTM size, depth and biases, logit bounds, ``uniform`` for
        ``controller=random``)."""
        return dict(
            lstm_size=c.lstm_size,
            lstm_layers=c.lstm_layers,
            lstm_bias=c.lstm_bias,
            tanh_constant=c.tanh_constant,
            temperature=c.temperature,
            uniform=c.name == "random",
        )

    @abstractmethod
    def build_controller(self, s: SearchSpaceConfig, c: ControllerConfig) -> Controller:
        """The LSTM controller sampling this space's architectures (``c.name == "random"``:
        the uniform sampler of random search)."""

    @abstractmethod
    def build_supernet(
        self, s: SearchSpaceConfig, num_classes: int, image_shape: tuple[int, int, int]
    ) -> nn.Module:
        """The weight-sharing supernet: ``forward(x [B, C, H, W], arch) -> logits [B, K]``, or
        ``(logits, aux_logits)`` in training mode when it has an aux head."""

    @abstractmethod
    def build_network(
        self,
        f: FinalConfig,
        arch: Any,
        num_classes: int,
        image_shape: tuple[int, int, int],
    ) -> nn.Module:
        """The standalone network of ``arch`` sized by ``f``: ``[B, C, H, W] -> [B, K]`` (plus
        aux logits in training mode when ``f.aux_weight > 0``)."""

    def cost(
        self, f: FinalConfig, arch: Any, num_classes: int, image_shape: tuple[int, int, int]
    ) -> Cost:
        """Trainable parameters and multiply-adds per image of the standalone network (its
        aux head, if it has one, is its ``aux`` attribute).

        This default builds the network and counts it. The derivation counts every candidate
        and ``reward=cost_aware`` every rewarded child, so a space whose networks are large may
        count without building (the micro and macro spaces walk their structure with
        :class:`~enas_lightning.spaces.cost.Tally`), to the same numbers."""
        import torch

        from enas_lightning.spaces.cost import count_madds, count_params

        # a network of its own, initialised without moving the caller's random stream
        with torch.random.fork_rng(devices=[]):
            net = self.build_network(f, arch, num_classes, image_shape)
        aux = getattr(net, "aux", None)
        aux_params = count_params(aux) if aux is not None else 0
        return Cost(count_params(net), count_madds(net, image_shape), aux_params)

    # ------------------------------------------------------------------------------ latency
    def op_placements(
        self, f: FinalConfig, arch: Any, image_shape: tuple[int, int, int]
    ) -> list[OpPlacement] | None:
        """Every op ``arch``'s standalone network (sized by ``f``) runs, one entry per op it
        builds; ``None`` where the space cannot say (no latency table for it)."""
        return None

    def all_op_placements(
        self, f: FinalConfig, s: SearchSpaceConfig, image_shape: tuple[int, int, int]
    ) -> list[OpPlacement] | None:
        """Every placement that the standalone network of any architecture of the search ``s``
        can run (the latency table's entries, each once); ``None`` as :meth:`op_placements`."""
        return None

    def build_op(self, placement: OpPlacement) -> nn.Module:
        """The op of ``placement`` as the standalone network builds it (``[B, C, H, W] ->
        [B, C, H / stride, W / stride]``)."""
        raise NotImplementedError(f"space {self.name!r} has no latency table")

    @abstractmethod
    def reduction_layers(self, layers: int) -> tuple[int, ...]:
        """The layout: indices of the layers (of ``layers``) after which the feature map is
        halved (the macro space's pooling layers; the micro space's reduction cells sit
        there)."""

    def describe_network(self, f: FinalConfig, arch: Any) -> str:
        """A few words on the standalone network's shape, for ``task=inspect``."""
        return f"{f.layers} layers, {f.channels} channels"

    def penalty_weight(self, c: ControllerConfig) -> float:
        """The weight of the controller's ``Sample.penalty`` in its loss (e.g. the macro
        skip penalty's ``controller.skip_weight``); 0 where the space has none."""
        return 0.0

    def param_free_share(self, arch: Any) -> float | None:
        """The fraction of ``arch``'s op choices that have no weights of their own (identity,
        pooling), in ``[0, 1]``; ``None`` where the space does not say which ops those are.
        Reported by the derivation and ``task=fidelity``: the supernet favours such ops."""
        return None

    def sample_stats(self, controller: Controller, sample: Sample) -> dict[str, Tensor]:
        """Extra per-update controller statistics (scalars, batch-averaged), logged by the
        search as ``ctrl/<key>`` and kept in the epoch history (e.g. the macro skip rate)."""
        return {}

    # ----------------------------------------------------------------------------- picture
    @abstractmethod
    def picture(self, arch: Any) -> Picture:
        """The architecture as a small graph record (nodes, edges, labels, clusters), which
        :func:`enas_lightning.viz.render` writes as DOT and draws with Graphviz or matplotlib."""

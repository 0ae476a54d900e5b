"""Macro (whole network) architectures.

Layer i applies one op to its input (layer i-1's output; the stem's for layer 0) and takes skips
from any subset of the earlier outputs other than that input: the stem and layers 0 .. i-2.

The authors' integer format (``general_child._model``): per layer i, the op integer followed by
i skip bits, so L layers take L(L+1)/2 integers (78 for 12, 300 for 24). Their list of earlier
outputs starts with the stem, so skip bit b of layer i selects the stem for b = 0 and layer
b - 1 for b >= 1; layer i's own input (layer i-1) is never a skip. In the readable record a
skip is the index of its source layer, :data:`STEM` (-1) for the stem.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from enas_lightning.errors import ArchError

# the authors' op order: their op integers index it (ENAS_REFERENCE.md)
AUTHORS_MACRO_OPS = (
    "conv_3x3",
    "sep_conv_3x3",
    "conv_5x5",
    "sep_conv_5x5",
    "avg_pool_3x3",
    "max_pool_3x3",
)

# The network the authors published (their scripts/cifar10_macro_final.sh, ``fixed_arc``):
# 24 layers, one line per layer: the op, then one skip bit per earlier layer
AUTHORS_MACRO_FINAL = " ".join(
    (
        "0",
        "3 0",
        "0 1 0",
        "2 0 0 1",
        "2 0 0 0 0",
        "3 1 1 0 1 0",
        "2 0 0 0 0 0 1",
        "2 0 1 1 0 1 1 1",
        "1 0 1 1 1 0 1 0 1",
        "0 0 0 0 0 0 0 0 0 0",
        "2 0 0 0 0 0 1 0 0 0 0",
        "0 1 0 0 1 1 0 0 0 0 1 1",
        "2 0 1 0 0 0 0 0 1 0 1 1 0",
        "1 0 0 1 0 0 0 1 1 1 0 1 0 1",
        "0 1 1 0 1 0 1 0 0 0 0 0 1 0 0",
        "2 0 0 1 0 0 0 0 0 0 0 1 0 1 0 1",
        "2 0 1 0 0 0 1 0 0 1 1 1 1 0 0 1 0",
        "2 0 0 0 0 1 0 1 0 1 0 0 1 0 1 0 0 1",
        "3 0 1 1 0 1 0 0 0 0 0 1 0 1 0 1 0 0 0",
        "3 0 1 1 0 0 0 0 0 0 0 0 0 1 1 0 0 0 0 1",
        "0 1 0 0 1 0 1 1 0 0 0 1 0 0 0 0 0 1 1 0 0",
        "3 0 1 0 1 1 0 0 1 0 1 1 0 1 1 0 1 0 0 1 0 0",
        "0 1 0 1 0 1 0 0 0 0 0 0 0 0 1 0 1 0 0 1 0 0 0",
        "0 1 1 0 0 0 1 1 1 0 1 0 0 0 1 0 1 0 0 1 1 0 0 0",
    )
)

STEM = -1
"""The skip source index of the stem's output."""


def source_name(j: int) -> str:
    """``"the stem"`` for :data:`STEM`, ``"layer j"`` otherwise (for messages)."""
    return "the stem" if j == STEM else f"layer {j}"


def skip_sources(i: int) -> range:
    """The skip sources layer ``i`` may use: the stem and layers ``0 .. i-2`` (none for layer 0)."""
    return range(STEM, i - 1) if i > 0 else range(0)


def bit_source(b: int) -> int:
    """The source of skip bit ``b`` in the authors' encoding: the stem for 0, layer b-1 after."""
    return b - 1


def source_bit(j: int) -> int:
    """The skip bit of source ``j`` (:data:`STEM` or a layer): the inverse of :func:`bit_source`."""
    return j + 1


@dataclass(frozen=True)
class MacroLayer:
    """One layer: its op and the sorted sources of its skips (:data:`STEM` = -1, or a layer)."""

    op: str
    skips: tuple[int, ...] = ()


@dataclass(frozen=True)
class MacroArch:
    layers: tuple[MacroLayer, ...]
    space: ClassVar[str] = "macro"

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def skip_rate(self) -> float:
        """Fraction of the possible skips that are used (layer i has i possible sources)."""
        possible = self.num_layers * (self.num_layers - 1) // 2
        return sum(len(layer.skips) for layer in self.layers) / max(possible, 1)

    def validate(self, ops: tuple[str, ...] | None = None, num_layers: int | None = None) -> None:
        if self.num_layers < 1:
            raise ArchError("macro arch needs at least one layer")
        if num_layers is not None and self.num_layers != num_layers:
            raise ArchError(
                f"macro arch has {self.num_layers} layers but search_space.layers={num_layers}"
            )
        for i, layer in enumerate(self.layers):
            if ops is not None and layer.op not in ops:
                raise ArchError(
                    f"layer {i}: op {layer.op!r} is not in the search space's ops ({', '.join(ops)})"
                )
            allowed = skip_sources(i)
            for j in layer.skips:
                if j not in allowed:
                    if i == 0:
                        what = "none (layer 0 reads the stem and has no skips)"
                    else:
                        later = f" or layers 0..{i - 2}" if i > 1 else ""
                        what = f"the stem ({STEM}){later}; layer {i - 1} is the layer's input"
                    raise ArchError(f"layer {i}: skip from {source_name(j)} is not allowed: {what}")
            if list(layer.skips) != sorted(set(layer.skips)):
                raise ArchError(f"layer {i}: skips {list(layer.skips)} must be sorted and unique")

    def to_ints(self, ops: tuple[str, ...] = AUTHORS_MACRO_OPS) -> list[int]:
        out: list[int] = []
        for i, layer in enumerate(self.layers):
            if layer.op not in ops:
                raise ArchError(f"op {layer.op!r} has no integer in the vocabulary {ops}")
            out.append(ops.index(layer.op))
            out += [int(bit_source(b) in layer.skips) for b in range(i)]
        return out

    @classmethod
    def from_ints(
        cls,
        ints: list[int],
        ops: tuple[str, ...] = AUTHORS_MACRO_OPS,
        num_layers: int | None = None,
    ) -> MacroArch:
        n = len(ints)
        # L(L+1)/2 = n  ->  L = (sqrt(8n+1) - 1) / 2
        layers = int((math.isqrt(8 * n + 1) - 1) // 2)
        if n == 0 or layers * (layers + 1) // 2 != n:
            raise ArchError(
                f"macro arc has {n} integers; expected L(L+1)/2 for L layers (78 for 12, 300 for 24)"
            )
        if num_layers is not None and layers != num_layers:
            raise ArchError(
                f"macro arc has {n} integers = {layers} layers; expected "
                f"{num_layers * (num_layers + 1) // 2} for search_space.layers={num_layers}"
            )
        out, pos = [], 0
        for i in range(layers):
            o = ints[pos]
            if not 0 <= o < len(ops):
                raise ArchError(
                    f"layer {i}: op index {o} out of range; allowed 0..{len(ops) - 1} "
                    f"({', '.join(ops)})"
                )
            bits = ints[pos + 1 : pos + 1 + i]
            for k, b in enumerate(bits):
                if b not in (0, 1):
                    raise ArchError(
                        f"layer {i}: skip bit {k} (from {source_name(bit_source(k))}) is {b}; "
                        "allowed 0 or 1"
                    )
            out.append(MacroLayer(ops[o], tuple(bit_source(k) for k, b in enumerate(bits) if b)))
            pos += 1 + i
        arch = cls(tuple(out))
        arch.validate(ops)
        return arch

    def to_dict(self, ops: tuple[str, ...] = AUTHORS_MACRO_OPS) -> dict[str, Any]:
        d: dict[str, Any] = {
            "space": self.space,
            "layers": [{"op": layer.op, "skips": list(layer.skips)} for layer in self.layers],
        }
        if all(layer.op in ops for layer in self.layers):
            d["ops"] = list(ops)
            d["ints"] = " ".join(map(str, self.to_ints(ops)))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MacroArch:
        if d.get("space", "macro") != "macro":
            raise ArchError(f"this is a {d.get('space')} architecture, not a macro one")
        for i, x in enumerate(d.get("layers") or []):
            # a string such as "01" would otherwise iterate into skips (0, 1)
            if isinstance(x, dict) and not isinstance(x.get("skips", []), list):
                raise ArchError(
                    f"layer {i}: 'skips' must be a list of sources (-1 or 'stem', or layer "
                    f"indices), got {x['skips']!r}"
                )
        try:
            layers = tuple(
                MacroLayer(
                    str(x["op"]), tuple(STEM if j == "stem" else int(j) for j in x.get("skips", ()))
                )
                for x in d["layers"]
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ArchError(
                f"macro arch JSON needs 'layers': [{{'op': name, 'skips': [...]}}, ...] with "
                f"skips from -1 (the stem) or earlier layers ({e})"
            ) from None
        arch = cls(layers)
        arch.validate()
        return arch

    def __str__(self) -> str:
        return "\n".join(
            f"layer {i:2d}: {layer.op:<14s} skips from "
            f"[{', '.join('stem' if j == STEM else str(j) for j in layer.skips)}]"
            for i, layer in enumerate(self.layers)
        )

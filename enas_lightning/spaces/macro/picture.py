"""The macro space's picture: the whole network, stem to classifier, skips dashed."""

from __future__ import annotations

from enas_lightning.errors import ArchError
from enas_lightning.spaces.macro.arch import STEM, MacroArch
from enas_lightning.viz.graph import Picture

# Layers are coloured by op family; checked in order so "sep_conv" wins over "conv".
_FAMILY_COLORS = (
    ("sep_conv", "lightskyblue"),
    ("conv", "lightblue"),
    ("avg_pool", "khaki"),
    ("max_pool", "lightsalmon"),
    ("identity", "lightgrey"),
)
_OTHER_COLOR = "thistle"


def _family_color(op: str) -> str:
    for family, color in _FAMILY_COLORS:
        if op.startswith(family):
            return color
    return _OTHER_COLOR


def macro_arch_picture(
    arch: MacroArch, reductions: tuple[int, ...] = (), name: str = "macro_arch"
) -> Picture:
    """The whole network, top to bottom: stem, one node per layer, classifier.

    Layers are labelled ``index: op`` and coloured by op family. Solid edges chain layer i-1 to
    layer i; dashed edges are the skips, from the stem or from layers before layer i-1 (the
    authors' skip bits: see :mod:`enas_lightning.spaces.macro.arch`). ``reductions`` lists the
    layers after which the resolution halves: those layers get a double border and their
    outgoing chain edge is labelled.
    """
    n = arch.num_layers
    bad = [r for r in reductions if not 0 <= r < n]
    if bad:
        raise ArchError(f"reductions={list(reductions)}: layer(s) {bad} not in 0..{n - 1}")
    reduce_after = set(reductions)
    p = Picture(name, "TB")
    p.node("stem", "stem", "stem")
    for i, layer in enumerate(arch.layers):
        p.node(
            f"layer{i}",
            f"{i}: {layer.op}",
            fill=_family_color(layer.op),
            emphasis=i in reduce_after,
        )
    p.node("classifier", "classifier", "output")

    def chain_label(i: int) -> str:
        return "reduce /2" if i in reduce_after else ""

    p.edge("stem", "layer0")
    for i in range(1, n):
        p.edge(f"layer{i - 1}", f"layer{i}", chain_label(i - 1))
    p.edge(f"layer{n - 1}", "classifier", chain_label(n - 1))
    for i, layer in enumerate(arch.layers):
        for j in layer.skips:
            p.edge("stem" if j == STEM else f"layer{j}", f"layer{i}", kind="skip")
    return p

"""Architectures as Graphviz graphs, in the style of the DARTS / ENAS paper figures.

Building a :class:`graphviz.Digraph` needs only the ``graphviz`` Python package; turning it into
PNG/SVG needs the ``dot`` program. :func:`render` therefore always writes the DOT source (which any
Graphviz install, or an online viewer, can render later), renders the images with ``dot`` when it
is on ``PATH``, and otherwise draws them with matplotlib (:mod:`enas_lightning.viz.mpl_dag`, a
simpler layered layout), so every run has pictures and none fails because a system package is
missing.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import graphviz

from enas_lightning.arch import MacroArch, MicroArch, MicroCell
from enas_lightning.arch.macro import STEM
from enas_lightning.errors import ArchError

log = logging.getLogger(__name__)

# DARTS-like palette: one colour per node kind so inputs, computed nodes and the output stand out.
_INPUT_COLOR = "darkseagreen2"
_NODE_COLOR = "lightblue"
_OUTPUT_COLOR = "palegoldenrod"
_STEM_COLOR = "lightgrey"
# Macro layers are coloured by op family; checked in order so "sep_conv" wins over "conv".
_FAMILY_COLORS = (
    ("sep_conv", "lightskyblue"),
    ("conv", "lightblue"),
    ("avg_pool", "khaki"),
    ("max_pool", "lightsalmon"),
    ("identity", "lightgrey"),
)
_OTHER_COLOR = "thistle"

_NODE_ATTR = {
    "style": "filled,rounded",
    "shape": "box",
    "align": "center",
    "fontsize": "20",
    "height": "0.5",
    "width": "0.5",
    "penwidth": "2",
    "fontname": "helvetica",
}
_EDGE_ATTR = {"fontsize": "16", "fontname": "times"}

# Set once the "dot is missing" note has been logged, so long runs do not repeat it every epoch.
_missing_dot_logged = False


def _safe(name: str) -> str:
    """A DOT identifier fragment: node ids must be unique and unambiguous across clusters."""
    return re.sub(r"\W", "_", name) or "cell"


def _new_graph(name: str, rankdir: str) -> graphviz.Digraph:
    return graphviz.Digraph(
        name=_safe(name),
        format="png",
        graph_attr={"rankdir": rankdir, "fontname": "helvetica"},
        node_attr=dict(_NODE_ATTR),
        edge_attr=dict(_EDGE_ATTR),
    )


def _add_cell(g: graphviz.Digraph, cell: MicroCell, prefix: str) -> None:
    """Add one cell's nodes and edges to ``g`` with ids ``{prefix}_in0``, ``{prefix}_n0``, ..."""

    def node_id(index: int) -> str:
        # cell-local indices: 0 and 1 are the two cell inputs, 2.. the computed nodes
        return f"{prefix}_in{index}" if index < 2 else f"{prefix}_n{index - 2}"

    g.node(node_id(0), label="c_{k-2}", fillcolor=_INPUT_COLOR)
    g.node(node_id(1), label="c_{k-1}", fillcolor=_INPUT_COLOR)
    for j in range(len(cell.nodes)):
        g.node(node_id(j + 2), label=str(j), fillcolor=_NODE_COLOR)
    for j, node in enumerate(cell.nodes):
        for i, op in zip(node.inputs, node.ops, strict=True):
            g.edge(node_id(i), node_id(j + 2), label=op)
    out = f"{prefix}_out"
    g.node(out, label="c_{k}", fillcolor=_OUTPUT_COLOR)
    for i in cell.loose_ends:
        g.edge(node_id(i), out, color="gray40")


def micro_cell_dot(cell: MicroCell, name: str) -> graphviz.Digraph:
    """One cell, left to right: inputs ``c_{k-2}``, ``c_{k-1}``, nodes 0..B-1, output ``c_{k}``.

    Each computed node has two incoming edges labelled with their ops; the output (the
    concatenation) has one edge from each loose end.
    """
    g = _new_graph(name, "LR")
    _add_cell(g, cell, _safe(name))
    return g


def micro_arch_dot(arch: MicroArch, name: str = "micro_arch") -> graphviz.Digraph:
    """Both cells of ``arch`` in one graph, as two labelled clusters (normal, reduction)."""
    g = _new_graph(name, "LR")
    for key, title in (("normal", "normal cell"), ("reduce", "reduction cell")):
        # the "cluster_" prefix makes Graphviz draw the subgraph as a framed box
        with g.subgraph(name=f"cluster_{key}") as sub:
            sub.attr(label=title, style="rounded", color="gray", fontsize="22")
            _add_cell(sub, arch.cells[key], key)
    return g


def _family_color(op: str) -> str:
    for family, color in _FAMILY_COLORS:
        if op.startswith(family):
            return color
    return _OTHER_COLOR


def macro_arch_dot(
    arch: MacroArch, reductions: tuple[int, ...] = (), name: str = "macro_arch"
) -> graphviz.Digraph:
    """The whole network, top to bottom: stem, one node per layer, classifier.

    Layers are labelled ``index: op`` and coloured by op family. Solid edges chain layer i-1 to
    layer i; dashed edges are the skips, from the stem or from layers before layer i-1 (the
    authors' skip bits: see :mod:`enas_lightning.arch.macro`). ``reductions`` lists the layers after
    which the resolution halves: those layers get a double border and their outgoing chain edge is
    labelled.
    """
    n = arch.num_layers
    bad = [r for r in reductions if not 0 <= r < n]
    if bad:
        raise ArchError(f"reductions={list(reductions)}: layer(s) {bad} not in 0..{n - 1}")
    reduce_after = set(reductions)
    g = _new_graph(name, "TB")
    g.node("stem", label="stem", fillcolor=_STEM_COLOR)
    for i, layer in enumerate(arch.layers):
        attrs: dict[str, str] = {"fillcolor": _family_color(layer.op)}
        if i in reduce_after:
            attrs["peripheries"] = "2"
        g.node(f"layer{i}", label=f"{i}: {layer.op}", **attrs)
    g.node("classifier", label="classifier", fillcolor=_OUTPUT_COLOR)

    def chain_label(i: int) -> dict[str, str]:
        return {"label": "reduce /2"} if i in reduce_after else {}

    g.edge("stem", "layer0")
    for i in range(1, n):
        g.edge(f"layer{i - 1}", f"layer{i}", **chain_label(i - 1))
    g.edge(f"layer{n - 1}", "classifier", **chain_label(n - 1))
    for i, layer in enumerate(arch.layers):
        for j in layer.skips:
            # constraint=false keeps the chain straight; skips curve alongside it
            src = "stem" if j == STEM else f"layer{j}"
            g.edge(src, f"layer{i}", style="dashed", color="gray40", constraint="false")
    return g


def arch_dot(arch: MicroArch | MacroArch | MicroCell, **kw: Any) -> graphviz.Digraph:
    """Dispatch to :func:`micro_arch_dot`, :func:`macro_arch_dot` or :func:`micro_cell_dot`."""
    if isinstance(arch, MicroArch):
        return micro_arch_dot(arch, **kw)
    if isinstance(arch, MacroArch):
        return macro_arch_dot(arch, **kw)
    if isinstance(arch, MicroCell):
        return micro_cell_dot(arch, kw.pop("name", "cell"), **kw)
    raise TypeError(f"arch_dot: expected MicroArch, MacroArch or MicroCell, got {type(arch)}")


def _fallback(dot: graphviz.Digraph, stem: Path, formats: Iterable[str]) -> list[Path]:
    """The pictures drawn by matplotlib; [] (and a warning) if that fails."""
    from enas_lightning.viz.mpl_dag import render_dot_source

    try:
        return render_dot_source(dot.source, stem, formats)
    except Exception as e:  # a picture must never stop a training run
        log.warning("drawing %s with matplotlib failed (%s); kept %s.dot", stem, e, stem)
        return []


def render(
    dot: graphviz.Digraph, stem: str | Path, formats: Iterable[str] = ("png", "svg")
) -> list[Path]:
    """Write ``{stem}.dot`` and ``{stem}.{fmt}`` per format: by Graphviz's ``dot`` when it is on
    ``PATH``, else by matplotlib (:func:`enas_lightning.viz.mpl_dag.render_dot_source`).

    Returns the paths written. Never raises because Graphviz is missing or fails: the DOT source
    is the artefact that matters, images are a convenience.
    """
    global _missing_dot_logged
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    # f-string, not with_suffix: stems such as "arch.epoch3" must keep their dots
    dot_path = Path(f"{stem}.dot")
    dot_path.write_text(dot.source)
    written = [dot_path]
    if shutil.which("dot") is None:
        if not _missing_dot_logged:
            _missing_dot_logged = True
            log.info(
                "Graphviz 'dot' not found: drawing architecture pictures with matplotlib "
                "(Graphviz lays them out better: `apt-get install graphviz`, "
                "`brew install graphviz` or `conda install graphviz`)"
            )
        return written + _fallback(dot, stem, formats)
    for fmt in formats:
        out = Path(f"{stem}.{fmt}")
        try:
            # pipe() renders in memory, so no intermediate source file is left next to the image
            data = dot.pipe(format=fmt)
        except (graphviz.ExecutableNotFound, graphviz.CalledProcessError, OSError, ValueError) as e:
            log.warning("rendering %s failed (%s); kept %s", out, e, dot_path)
            continue
        out.write_bytes(data)
        written.append(out)
    return written

"""The micro space's picture: the two cells as Graphviz graphs (the DARTS / ENAS figure style)."""

from __future__ import annotations

import graphviz

from enas_lightning.spaces.micro.arch import MicroArch, MicroCell
from enas_lightning.viz.dot import INPUT_COLOR, NODE_COLOR, OUTPUT_COLOR, new_graph, safe_id


def _add_cell(g: graphviz.Digraph, cell: MicroCell, prefix: str) -> None:
    """Add one cell's nodes and edges to ``g`` with ids ``{prefix}_in0``, ``{prefix}_n0``, ..."""

    def node_id(index: int) -> str:
        # cell-local indices: 0 and 1 are the two cell inputs, 2.. the computed nodes
        return f"{prefix}_in{index}" if index < 2 else f"{prefix}_n{index - 2}"

    g.node(node_id(0), label="c_{k-2}", fillcolor=INPUT_COLOR)
    g.node(node_id(1), label="c_{k-1}", fillcolor=INPUT_COLOR)
    for j in range(len(cell.nodes)):
        g.node(node_id(j + 2), label=str(j), fillcolor=NODE_COLOR)
    for j, node in enumerate(cell.nodes):
        for i, op in zip(node.inputs, node.ops, strict=True):
            g.edge(node_id(i), node_id(j + 2), label=op)
    out = f"{prefix}_out"
    g.node(out, label="c_{k}", fillcolor=OUTPUT_COLOR)
    for i in cell.loose_ends:
        g.edge(node_id(i), out, color="gray40")


def micro_cell_dot(cell: MicroCell, name: str) -> graphviz.Digraph:
    """One cell, left to right: inputs ``c_{k-2}``, ``c_{k-1}``, nodes 0..B-1, output ``c_{k}``.

    Each computed node has two incoming edges labelled with their ops; the output (the
    concatenation) has one edge from each loose end.
    """
    g = new_graph(name, "LR")
    _add_cell(g, cell, safe_id(name))
    return g


def micro_arch_dot(arch: MicroArch, name: str = "micro_arch") -> graphviz.Digraph:
    """Both cells of ``arch`` in one graph, as two labelled clusters (normal, reduction)."""
    g = new_graph(name, "LR")
    for key, title in (("normal", "normal cell"), ("reduce", "reduction cell")):
        # the "cluster_" prefix makes Graphviz draw the subgraph as a framed box
        with g.subgraph(name=f"cluster_{key}") as sub:
            sub.attr(label=title, style="rounded", color="gray", fontsize="22")
            _add_cell(sub, arch.cells[key], key)
    return g

"""The micro space's picture: the two cells, in the DARTS / ENAS figure style."""

from __future__ import annotations

from enas_lightning.spaces.micro.arch import MicroArch, MicroCell
from enas_lightning.viz.graph import Picture


def _add_cell(p: Picture, cell: MicroCell, prefix: str, cluster: str) -> None:
    """One cell, left to right: inputs ``c_{k-2}``, ``c_{k-1}`` (ids ``{prefix}_in0``,
    ``{prefix}_in1``), nodes 0..B-1 (``{prefix}_n0``, ...), output ``c_{k}`` (``{prefix}_out``).

    Each computed node has two incoming edges labelled with their ops; the output (the
    concatenation) has one edge from each loose end.
    """

    def node_id(index: int) -> str:
        # cell-local indices: 0 and 1 are the two cell inputs, 2.. the computed nodes
        return f"{prefix}_in{index}" if index < 2 else f"{prefix}_n{index - 2}"

    p.node(node_id(0), "c_{k-2}", "input", cluster=cluster)
    p.node(node_id(1), "c_{k-1}", "input", cluster=cluster)
    for j in range(len(cell.nodes)):
        p.node(node_id(j + 2), str(j), "node", cluster=cluster)
    out = f"{prefix}_out"
    p.node(out, "c_{k}", "output", cluster=cluster)
    for j, node in enumerate(cell.nodes):
        for i, op in zip(node.inputs, node.ops, strict=True):
            p.edge(node_id(i), node_id(j + 2), label=op)
    for i in cell.loose_ends:
        p.edge(node_id(i), out, kind="merge")


def micro_arch_picture(arch: MicroArch, name: str = "micro_arch") -> Picture:
    """Both cells of ``arch`` in one picture, as two titled clusters (normal, reduction)."""
    p = Picture(name, "LR")
    for key, title in (("normal", "normal cell"), ("reduce", "reduction cell")):
        p.cluster(key, title)
        _add_cell(p, arch.cells[key], key, cluster=key)
    return p

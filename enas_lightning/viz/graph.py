"""An architecture's picture as plain data: the small graph a space describes once.

A space's ``picture(arch)`` returns a :class:`Picture`: nodes (a label, a kind that picks the
fill colour, an optional double border, an optional cluster), edges (an optional label, a kind
that picks the line style) and clusters (a framed, titled group). Nothing here knows a renderer:
:mod:`enas_lightning.viz.dot` writes the picture as DOT and renders it with Graphviz, and
:mod:`enas_lightning.viz.mpl_dag` lays it out and draws it with matplotlib where Graphviz's
``dot`` program is missing. Both read this record, so neither parses the other's output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# DARTS-like palette: one fill per node kind so inputs, computed nodes and the output stand out.
# Every colour is a name (or hex code) that both Graphviz and matplotlib read the same way.
INPUT_COLOR = "#b4eeb4"  # X11 darkseagreen2, which matplotlib does not know by name
NODE_COLOR = "lightblue"
OUTPUT_COLOR = "palegoldenrod"
STEM_COLOR = "lightgrey"
KIND_COLORS = {"input": INPUT_COLOR, "node": NODE_COLOR, "output": OUTPUT_COLOR, "stem": STEM_COLOR}

NodeKind = Literal["input", "node", "output", "stem"]
# data: solid black (an op's input); merge: solid grey (into a concatenation or the output);
# skip: dashed grey, and it does not set the node's rank (the main chain stays straight)
EdgeKind = Literal["data", "merge", "skip"]
EDGE_KINDS = ("data", "merge", "skip")


@dataclass(frozen=True)
class Node:
    """One box: ``id`` unique in the picture, ``label`` its text (``\\n`` breaks lines)."""

    id: str
    label: str
    kind: NodeKind = "node"
    fill: str | None = None  # overrides the kind's colour (the macro space colours op families)
    emphasis: bool = False  # a double border (the macro space: the resolution halves after it)
    cluster: str | None = None  # the id of the cluster framing it, if any

    @property
    def color(self) -> str:
        return self.fill or KIND_COLORS[self.kind]


@dataclass(frozen=True)
class Edge:
    """An arrow from node ``tail`` to node ``head``, ``label`` written along it."""

    tail: str
    head: str
    label: str = ""
    kind: EdgeKind = "data"


@dataclass(frozen=True)
class Cluster:
    """A framed group of nodes, titled ``label`` (the micro space: one per cell)."""

    id: str
    label: str


@dataclass
class Picture:
    """Nodes, edges and clusters of one architecture, ranks running along ``rankdir``
    (``LR``: left to right, ``TB``: top down). Built with :meth:`node`, :meth:`edge` and
    :meth:`cluster`, which reject (``ValueError``: a bug in the space, not bad user input) an
    edge or a member whose node or cluster is not declared."""

    name: str
    rankdir: Literal["LR", "TB"] = "LR"
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    clusters: dict[str, Cluster] = field(default_factory=dict)

    def cluster(self, id: str, label: str) -> None:
        self.clusters[id] = Cluster(id, label)

    def node(self, id: str, label: str, kind: NodeKind = "node", **kw: object) -> None:
        if id in self.nodes:
            raise ValueError(f"picture {self.name!r}: node {id!r} declared twice")
        cluster = kw.get("cluster")
        if cluster is not None and cluster not in self.clusters:
            raise ValueError(
                f"picture {self.name!r}: node {id!r} in undeclared cluster {cluster!r}"
            )
        if kind not in KIND_COLORS:
            raise ValueError(
                f"picture {self.name!r}: node kind {kind!r} not in {list(KIND_COLORS)}"
            )
        self.nodes[id] = Node(id, label, kind, **kw)  # type: ignore[arg-type]

    def edge(self, tail: str, head: str, label: str = "", kind: EdgeKind = "data") -> None:
        for end in (tail, head):
            if end not in self.nodes:
                raise ValueError(
                    f"picture {self.name!r}: edge {tail}->{head} to undeclared {end!r}"
                )
        if kind not in EDGE_KINDS:
            raise ValueError(f"picture {self.name!r}: edge kind {kind!r} not in {list(EDGE_KINDS)}")
        self.edges.append(Edge(tail, head, label, kind))

    def members(self, cluster: str | None) -> list[str]:
        """The ids of the nodes in ``cluster`` (``None``: outside every cluster), in order."""
        return [n.id for n in self.nodes.values() if n.cluster == cluster]

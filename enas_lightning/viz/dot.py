"""Architecture pictures written as Graphviz DOT and rendered, in the DARTS / ENAS figure style.

A space describes its picture once, as a :class:`~enas_lightning.viz.graph.Picture`.
:func:`render` always writes it as DOT source (which any Graphviz install, or an online viewer,
can render later), renders the images with Graphviz's ``dot`` program when it is on ``PATH``,
and otherwise lays the same record out and draws it with matplotlib
(:mod:`enas_lightning.viz.mpl_dag`), so every run has pictures and none fails because a system
package is missing.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import graphviz

from enas_lightning.viz.graph import Picture

log = logging.getLogger(__name__)

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
_CLUSTER_ATTR = {"style": "rounded", "color": "gray", "fontsize": "22"}
# constraint=false keeps a skip out of the ranking, so the main chain stays straight and the
# skips curve alongside it
_EDGE_KIND_ATTR = {
    "data": {},
    "merge": {"color": "gray40"},
    "skip": {"style": "dashed", "color": "gray40", "constraint": "false"},
}

# Set once the "dot is missing" note has been logged, so long runs do not repeat it every epoch.
_missing_dot_logged = False


def safe_id(name: str) -> str:
    """A DOT identifier fragment for a graph or cluster name."""
    return re.sub(r"\W", "_", name) or "graph"


def arch_dot(arch: Any) -> Picture:
    """The picture of any registered space's architecture record (its space describes it)."""
    from enas_lightning.spaces import space_of

    return space_of(arch).picture(arch)


def to_dot(p: Picture) -> graphviz.Digraph:
    """``p`` as a Graphviz digraph: one ``subgraph cluster_<id>`` per cluster holding its nodes
    (the prefix makes Graphviz frame it), the other nodes and all edges at the top level."""
    g = graphviz.Digraph(
        name=safe_id(p.name),
        format="png",
        graph_attr={"rankdir": p.rankdir, "fontname": "helvetica"},
        node_attr=dict(_NODE_ATTR),
        edge_attr=dict(_EDGE_ATTR),
    )

    def add_nodes(sub: graphviz.Digraph, cluster: str | None) -> None:
        for n in (p.nodes[i] for i in p.members(cluster)):
            extra = {"peripheries": "2"} if n.emphasis else {}
            sub.node(n.id, label=n.label, fillcolor=n.color, **extra)

    for c in p.clusters.values():
        with g.subgraph(name=f"cluster_{safe_id(c.id)}") as sub:
            sub.attr(label=c.label, **_CLUSTER_ATTR)
            add_nodes(sub, c.id)
    add_nodes(g, None)
    for e in p.edges:
        label = {"label": e.label} if e.label else {}
        g.edge(e.tail, e.head, **label, **_EDGE_KIND_ATTR[e.kind])
    return g


def _render_dot(
    dot: graphviz.Digraph, stem: Path, formats: Iterable[str], dot_path: Path
) -> list[Path]:
    written = []
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


def _render_mpl(p: Picture, stem: Path, formats: Iterable[str]) -> list[Path]:
    """The pictures drawn by matplotlib; [] (and a warning) if that fails."""
    from enas_lightning.viz.mpl_dag import render_picture

    try:
        return render_picture(p, stem, formats)
    except Exception as e:  # a picture must never stop a training run
        log.warning("drawing %s with matplotlib failed (%s); kept %s.dot", stem, e, stem)
        return []


def render(p: Picture, stem: str | Path, formats: Iterable[str] = ("png", "svg")) -> list[Path]:
    """Write ``{stem}.dot`` and ``{stem}.{fmt}`` per format: by Graphviz's ``dot`` when it is on
    ``PATH``, else by matplotlib (:func:`enas_lightning.viz.mpl_dag.render_picture`, PNG only
    when PNG is asked for).

    Returns the paths written. Never raises because Graphviz is missing or fails: the DOT source
    is the artefact that matters, images are a convenience.
    """
    global _missing_dot_logged
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    dot = to_dot(p)
    # f-string, not with_suffix: stems such as "arch.epoch3" must keep their dots
    dot_path = Path(f"{stem}.dot")
    dot_path.write_text(dot.source)
    if shutil.which("dot") is not None:
        return [dot_path, *_render_dot(dot, stem, formats, dot_path)]
    if not _missing_dot_logged:
        _missing_dot_logged = True
        log.info(
            "Graphviz 'dot' not found: drawing architecture pictures with matplotlib "
            "(Graphviz lays them out better: `apt-get install graphviz`, "
            "`brew install graphviz` or `conda install graphviz`)"
        )
    return [dot_path, *_render_mpl(p, stem, formats)]

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

log = logging.getLogger(__name__)

# DARTS-like palette: one colour per node kind so inputs, computed nodes and the output stand out.
INPUT_COLOR = "darkseagreen2"
NODE_COLOR = "lightblue"
OUTPUT_COLOR = "palegoldenrod"
STEM_COLOR = "lightgrey"
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


def safe_id(name: str) -> str:
    """A DOT identifier fragment: node ids must be unique and unambiguous across clusters."""
    return re.sub(r"\W", "_", name) or "cell"


def new_graph(name: str, rankdir: str) -> graphviz.Digraph:
    return graphviz.Digraph(
        name=safe_id(name),
        format="png",
        graph_attr={"rankdir": rankdir, "fontname": "helvetica"},
        node_attr=dict(_NODE_ATTR),
        edge_attr=dict(_EDGE_ATTR),
    )


def arch_dot(arch: Any, **kw: Any) -> graphviz.Digraph:
    """The picture of any registered space's architecture record (its space draws it)."""
    from enas_lightning.spaces import space_of

    return space_of(arch).picture(arch, **kw)


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

"""Pictures of DOT graphs without the Graphviz program: a layered layout drawn with matplotlib.

Graphviz's ``dot`` is a system package that most laptops and clusters lack, and without it no
PNG reaches the run directory, W&B or TensorBoard. :func:`render_dot_source` draws the same graph
from its DOT source (as written by :mod:`enas_lightning.viz.dot`) in pure Python:

- :func:`parse_dot` reads the subset of DOT that the ``graphviz`` package writes (graph, node and
  edge defaults, ``subgraph cluster_*`` blocks, nodes, edge chains, quoted strings, comments);
- :func:`layout` places each cluster (and the nodes outside clusters) as its own layered DAG:
  the rank of a node is its longest path from a source, the order within a rank is refined by
  barycentre sweeps (Sugiyama-style), ranks run along ``rankdir`` (``LR`` or ``TB``), clusters
  are stacked across it;
- :func:`draw` draws boxes with the DOT fill colours, labelled edges (parallel edges bend apart,
  edges that skip ranks arc around the nodes between), cluster frames and double borders
  (``peripheries=2``).

Graphviz stays the better renderer (edge routing, label placement) and is used when present;
this is the fallback, see :func:`enas_lightning.viz.dot.render`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

# The DOT tokens the graphviz package writes: edge operators, punctuation, quoted strings, HTML
# strings (<...>, kept as text) and plain identifiers or numbers.
_TOKEN = re.compile(
    r'\s*(?:(?P<op>->|--)|(?P<punct>[\[\]{}=;,:])|"(?P<str>(?:[^"\\]|\\.)*)"'
    r"|(?P<id>-?[0-9.]+|[^\s\[\]{}=;,:\"<>-](?:[^\s\[\]{}=;,:\"<>-]|-(?![->]))*)"
    r"|(?P<html><))",
    re.S,
)

# X11 colour names Graphviz knows and matplotlib (CSS4) does not.
_X11 = {
    "darkseagreen1": "#c1ffc1",
    "darkseagreen2": "#b4eeb4",
    "darkseagreen3": "#9bcd9b",
    "lightblue1": "#bfefff",
    "lightblue2": "#b2dfee",
    "lightskyblue1": "#b0e2ff",
    "khaki1": "#fff68f",
    "lightsalmon1": "#ffa07a",
}


@dataclass
class Graph:
    """What a picture needs of a DOT graph: nodes, edges, clusters and the rank direction."""

    rankdir: str = "TB"
    nodes: dict[str, dict[str, str]] = field(default_factory=dict)  # id -> attributes
    edges: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    clusters: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> attributes
    cluster_of: dict[str, str | None] = field(default_factory=dict)  # node id -> cluster name


def _tokens(source: str) -> list[tuple[str, str]]:
    # comments: //... and /*...*/ anywhere, #... at the start of a line (C preprocessor output)
    source = re.sub(r"/\*.*?\*/", " ", source, flags=re.S)
    source = re.sub(r"(?m)^\s*#.*$|//[^\n]*", " ", source)
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(source):
        if source[pos:].strip() == "":
            break
        m = _TOKEN.match(source, pos)
        if m is None:
            raise ValueError(f"DOT: cannot read {source[pos : pos + 30]!r}")
        kind = m.lastgroup or ""
        if kind == "html":  # <...> with nested brackets, kept as text without its tags
            depth, i = 0, m.start("html")
            while i < len(source):
                depth += {"<": 1, ">": -1}.get(source[i], 0)
                i += 1
                if depth == 0:
                    break
            out.append(("str", re.sub(r"<[^>]*>", "", source[m.start("html") + 1 : i - 1])))
            pos = i
            continue
        value = m.group(kind)
        if kind == "str":
            value = value.replace('\\"', '"').replace("\\\n", "")
        out.append((kind, value))
        pos = m.end()
    return out


def parse_dot(source: str) -> Graph:
    """The nodes, edges, clusters and ``rankdir`` of a DOT graph (the subset described above)."""
    toks = _tokens(source)
    g = Graph()
    i = 0

    def peek(k: int = 0) -> tuple[str, str]:
        return toks[i + k] if i + k < len(toks) else ("", "")

    def attrs() -> dict[str, str]:
        nonlocal i
        found: dict[str, str] = {}
        while peek()[1] == "[":
            i += 1
            while peek()[1] not in ("]", ""):
                if peek()[1] in (",", ";"):
                    i += 1
                    continue
                key = peek()[1]
                if peek(1)[1] == "=":
                    found[key] = peek(2)[1]
                    i += 3
                else:
                    found[key] = "true"
                    i += 1
            i += 1
        return found

    def node_id() -> str:
        nonlocal i
        name = peek()[1]
        i += 1
        while peek()[1] == ":":  # a port (node:port:compass) names the same node
            i += 2
        return name

    # scopes: (node defaults, edge defaults, cluster name or None)
    scopes: list[tuple[dict[str, str], dict[str, str], str | None]] = [({}, {}, None)]
    while i < len(toks) and peek()[1] not in ("{",):
        i += 1  # strict? (di)graph name?
    i += 1
    while i < len(toks):
        kind, value = peek()
        node_defaults, edge_defaults, cluster = scopes[-1]
        if value in (";", ","):
            i += 1
        elif value == "}":
            scopes.pop()
            i += 1
            if not scopes:
                break
        elif kind == "id" and value in ("subgraph",) or value == "{":
            name = ""
            if value == "subgraph":
                i += 1
                if peek()[1] != "{":
                    name = peek()[1]
                    i += 1
            i += 1  # "{"
            inner = name if name.startswith("cluster") else cluster
            if name.startswith("cluster"):
                g.clusters[name] = {}
            scopes.append((dict(node_defaults), dict(edge_defaults), inner))
        elif kind == "id" and value in ("graph", "node", "edge") and peek(1)[1] == "[":
            i += 1
            found = attrs()
            if value == "node":
                node_defaults.update(found)
            elif value == "edge":
                edge_defaults.update(found)
            elif cluster is not None and len(scopes) > 1:
                g.clusters[cluster].update(found)
            else:
                g.rankdir = found.get("rankdir", g.rankdir)
        elif peek(1)[1] == "=":  # key=value: an attribute of the enclosing (sub)graph
            key, val = value, peek(2)[1]
            i += 3
            if cluster is not None and len(scopes) > 1:
                g.clusters[cluster][key] = val
            elif key == "rankdir":
                g.rankdir = val
        else:
            chain = [node_id()]
            while peek()[0] == "op":
                i += 1
                chain.append(node_id())
            found = attrs()
            for n in chain:
                if n not in g.nodes:
                    g.nodes[n] = dict(node_defaults)
                    g.cluster_of[n] = cluster
            if len(chain) == 1:
                g.nodes[chain[0]].update(found)
            for a, b in zip(chain, chain[1:], strict=False):
                g.edges.append((a, b, {**edge_defaults, **found}))
    return g


# ------------------------------------------------------------------------------------- layout
# Sizes in inches (the figure is drawn 1:1, so text in points fits the boxes).
_CHAR_W = 0.085  # width of one character of a node label at 10 pt
_EDGE_CHAR_W = 0.07  # ... of an edge label at 8 pt
_NODE_H = 0.42
_GAP = 0.6  # between neighbours in one rank
_CLUSTER_GAP = 0.6
_CLUSTER_PAD = 0.25


def _label(attrs: dict[str, str], default: str) -> str:
    text = attrs.get("label", default)
    return text.replace("\\n", "\n").replace("\\l", "\n").replace("\\r", "\n").strip()


def node_size(g: Graph, n: str) -> tuple[float, float]:
    """Width and height of node ``n``'s box, in inches."""
    lines = _label(g.nodes[n], n).splitlines() or [""]
    return max(0.5, _CHAR_W * max(map(len, lines)) + 0.3), _NODE_H + 0.16 * (len(lines) - 1)


def _ranks(nodes: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    """Longest path from a source, by Kahn's order; a cycle is broken at its earliest node."""
    preds: dict[str, list[str]] = {n: [] for n in nodes}
    succs: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        if a != b:
            preds[b].append(a)
            succs[a].append(b)
    indeg = {n: len(set(preds[n])) for n in nodes}
    rank = dict.fromkeys(nodes, 0)
    todo = [n for n in nodes if indeg[n] == 0]
    done: set[str] = set()
    while len(done) < len(nodes):
        if not todo:  # a cycle: start from the earliest node not placed yet
            todo = [next(n for n in nodes if n not in done)]
        n = todo.pop(0)
        if n in done:
            continue
        done.add(n)
        for m in dict.fromkeys(succs[n]):
            if m in done:
                continue
            rank[m] = max(rank[m], rank[n] + 1)
            indeg[m] -= 1
            if indeg[m] == 0:
                todo.append(m)
    return rank


def _order(
    layers: list[list[str]], edges: list[tuple[str, str]], sweeps: int = 4
) -> list[list[str]]:
    """Order each rank by the mean position of the node's neighbours in the rank before/after."""
    preds: dict[str, list[str]] = {}
    succs: dict[str, list[str]] = {}
    for a, b in edges:
        preds.setdefault(b, []).append(a)
        succs.setdefault(a, []).append(b)
    layers = [list(layer) for layer in layers]
    for sweep in range(sweeps):
        down = sweep % 2 == 0
        seq = range(1, len(layers)) if down else range(len(layers) - 2, -1, -1)
        for r in seq:
            ref = layers[r - 1] if down else layers[r + 1]
            where = {n: k for k, n in enumerate(ref)}
            near = preds if down else succs

            def key(item: tuple[int, str], where=where, near=near) -> float:
                k, n = item
                pos = [where[m] for m in near.get(n, []) if m in where]
                return sum(pos) / len(pos) if pos else float(k)

            layers[r] = [n for _, n in sorted(enumerate(layers[r]), key=key)]
    return layers


def layout(g: Graph) -> dict[str, tuple[float, float]]:
    """Centre of every node in inches, y upwards; ranks left to right (LR) or top down (TB)."""
    lr = g.rankdir.upper() in ("LR", "RL")
    groups: dict[str | None, list[str]] = {}
    for n in g.nodes:
        groups.setdefault(g.cluster_of.get(n), []).append(n)
    pos: dict[str, tuple[float, float]] = {}
    offset = 0.0  # across the ranks: where the next group starts
    for members in groups.values():
        inside = set(members)
        edges = [(a, b) for a, b, _ in g.edges if a in inside and b in inside]
        rank = _ranks(members, edges)
        layers: list[list[str]] = [[] for _ in range(max(rank.values()) + 1)]
        for n in members:
            layers[rank[n]].append(n)
        layers = _order(layers, edges)
        sizes = {n: node_size(g, n) for n in members}
        # the gap between two ranks fits the longest label of the edges crossing it
        gaps = [0.0] * len(layers)
        for a, b, e in g.edges:
            if a in inside and b in inside and rank[b] > rank[a]:
                text = _label(e, "")
                need = _EDGE_CHAR_W * len(text) + 0.5 if lr else (0.35 if text else 0.0)
                gaps[rank[a]] = max(gaps[rank[a]], need / (rank[b] - rank[a]))
        along, extent = 0.0, 0.0
        centres_along: list[float] = []
        for r, layer in enumerate(layers):
            depth = max(sizes[n][0] if lr else sizes[n][1] for n in layer)
            centres_along.append(along + depth / 2)
            along += depth + max(0.5, gaps[r])
            span = sum((sizes[n][1] if lr else sizes[n][0]) + _GAP for n in layer) - _GAP
            extent = max(extent, span)
        for r, layer in enumerate(layers):
            span = sum((sizes[n][1] if lr else sizes[n][0]) + _GAP for n in layer) - _GAP
            across = offset + (extent - span) / 2
            for n in layer:
                size = sizes[n][1] if lr else sizes[n][0]
                c = across + size / 2
                across += size + _GAP
                # LR: ranks along x, groups stacked downwards; TB: ranks downwards, groups to the right
                pos[n] = (centres_along[r], -c) if lr else (c, -centres_along[r])
        offset += extent + _CLUSTER_GAP + 2 * _CLUSTER_PAD
    return pos


# --------------------------------------------------------------------------------------- draw
def _color(name: str | None, default: str) -> str:
    from matplotlib.colors import is_color_like

    if not name:
        return default
    name = name.strip().lower()
    if is_color_like(name):
        return name
    m = re.fullmatch(r"gr[ae]y(\d{1,3})", name)
    if m:
        return str(min(int(m.group(1)), 100) / 100)
    if name in _X11:
        return _X11[name]
    base = name.rstrip("0123456789")
    return base if is_color_like(base) else default


def edge_bends(
    g: Graph, pos: dict[str, tuple[float, float]], sizes: dict[str, tuple[float, float]]
) -> list[float]:
    """matplotlib ``arc3`` radius per edge: 0 (straight) unless the edge is the k-th parallel
    edge between two nodes (bent apart) or runs along a line of nodes that it would cross (arced
    around them, wider the more ranks it skips, alternately on either side)."""
    lr = g.rankdir.upper() in ("LR", "RL")
    seen: dict[tuple[str, str], int] = {}
    bends = []
    arcs = 0
    for a, b, _ in g.edges:
        (xa, ya), (xb, yb) = pos[a], pos[b]
        k = seen.get((a, b), 0)
        seen[(a, b)] = k + 1
        aligned = abs(ya - yb) < 1e-6 if lr else abs(xa - xb) < 1e-6
        length = max(((xb - xa) ** 2 + (yb - ya) ** 2) ** 0.5, 1e-6)
        step = max(s[0] if lr else s[1] for s in sizes.values()) + 0.5
        rad = 0.0
        if k:
            rad = 0.3 * ((k + 1) // 2) * (1 if k % 2 else -1)
        elif aligned and length > 1.5 * step:
            arcs += 1
            bulge = min(0.5 + 0.25 * (length / step - 1), 2.5)  # inches off the line
            rad = 2 * bulge / length * (1 if arcs % 2 else -1)
        else:  # the least bent curve that crosses the fewest other boxes
            others = [n for n in g.nodes if n not in (a, b)]
            rad = min(
                (0.0, 0.25, -0.25, 0.45, -0.45, 0.7, -0.7),
                key=lambda r: _crossings((xa, ya), (xb, yb), r, others, pos, sizes),
            )
        bends.append(rad)
    return bends


def _crossings(
    p0: tuple[float, float],
    p2: tuple[float, float],
    rad: float,
    nodes: list[str],
    pos: dict[str, tuple[float, float]],
    sizes: dict[str, tuple[float, float]],
) -> int:
    """How many of ``nodes``' boxes the ``arc3`` curve from ``p0`` to ``p2`` runs through."""
    (xa, ya), (xb, yb) = p0, p2
    cx, cy = (xa + xb) / 2 + rad * (yb - ya), (ya + yb) / 2 - rad * (xb - xa)
    hit = set()
    for k in range(1, 20):
        t = k / 20
        x = (1 - t) ** 2 * xa + 2 * (1 - t) * t * cx + t**2 * xb
        y = (1 - t) ** 2 * ya + 2 * (1 - t) * t * cy + t**2 * yb
        for n in nodes:
            (nx, ny), (w, h) = pos[n], sizes[n]
            if abs(x - nx) < w / 2 + 0.05 and abs(y - ny) < h / 2 + 0.05:
                hit.add(n)
    return len(hit)


def _border(
    centre: tuple[float, float], size: tuple[float, float], direction: tuple[float, float]
) -> tuple[float, float]:
    """Where a ray from the centre of a box in ``direction`` leaves it (plus a small gap)."""
    (x, y), (w, h), (dx, dy) = centre, size, direction
    norm = (dx * dx + dy * dy) ** 0.5 or 1.0
    dx, dy = dx / norm, dy / norm
    t = min(w / 2 / abs(dx) if dx else float("inf"), h / 2 / abs(dy) if dy else float("inf"))
    t += 0.03
    return x + t * dx, y + t * dy


def _bezier(
    p0: tuple[float, float], q: tuple[float, float], p2: tuple[float, float], t: float
) -> tuple[float, float]:
    u = 1 - t
    return (
        u * u * p0[0] + 2 * u * t * q[0] + t * t * p2[0],
        u * u * p0[1] + 2 * u * t * q[1] + t * t * p2[1],
    )


def _label_spot(
    p0: tuple[float, float],
    q: tuple[float, float],
    p2: tuple[float, float],
    half: float,
    placed: list[tuple[float, float, float]],
) -> tuple[float, float]:
    """A point on the curve for a label ``2 * half`` wide: the middle unless earlier labels
    (``placed``: centre and half width) are there, then the spot that overlaps the fewest."""

    def overlaps(c: tuple[float, float]) -> int:
        return sum(abs(c[0] - x) < half + w and abs(c[1] - y) < 0.22 for x, y, w in placed)

    return min((_bezier(p0, q, p2, t) for t in (0.5, 0.38, 0.62, 0.28, 0.72)), key=overlaps)


def draw(g: Graph, pos: dict[str, tuple[float, float]], paths: Iterable[Path]) -> list[Path]:
    """Draw ``g`` at ``pos`` into each of ``paths`` (format from the suffix); returns them."""
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    sizes = {n: node_size(g, n) for n in g.nodes}
    bends = edge_bends(g, pos, sizes)
    xs = [pos[n][0] + s * sizes[n][0] / 2 for n in g.nodes for s in (-1, 1)]
    ys = [pos[n][1] + s * sizes[n][1] / 2 for n in g.nodes for s in (-1, 1)]
    for (a, b, _), rad in zip(g.edges, bends, strict=True):
        # the farthest point of an arc: chord midpoint + rad/2 * (dy, -dx)
        (xa, ya), (xb, yb) = pos[a], pos[b]
        xs.append((xa + xb) / 2 + rad / 2 * (yb - ya))
        ys.append((ya + yb) / 2 - rad / 2 * (xb - xa))
    margin = 0.5
    x0, x1, y0, y1 = min(xs) - margin, max(xs) + margin, min(ys) - margin, max(ys) + margin
    if g.clusters:
        y1 += 0.3  # the cluster titles
    fig = Figure(figsize=(max(x1 - x0, 1.0), max(y1 - y0, 1.0)))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.axis("off")

    for name, cattrs in g.clusters.items():
        members = [n for n in g.nodes if g.cluster_of.get(n) == name]
        if not members:
            continue
        left = min(pos[n][0] - sizes[n][0] / 2 for n in members) - _CLUSTER_PAD
        right = max(pos[n][0] + sizes[n][0] / 2 for n in members) + _CLUSTER_PAD
        low = min(pos[n][1] - sizes[n][1] / 2 for n in members) - _CLUSTER_PAD
        high = max(pos[n][1] + sizes[n][1] / 2 for n in members) + _CLUSTER_PAD
        ax.add_patch(
            FancyBboxPatch(
                (left, low),
                right - left,
                high - low,
                boxstyle="round,pad=0,rounding_size=0.15",
                fill=False,
                edgecolor=_color(cattrs.get("color"), "gray"),
                linewidth=1.2,
            )
        )
        ax.text((left + right) / 2, high + 0.05, _label(cattrs, ""), ha="center", va="bottom")

    for n, attrs in g.nodes.items():
        w, h = sizes[n]
        x, y = pos[n]
        style = attrs.get("style", "")
        filled = "filled" in style
        box = "round,pad=0,rounding_size=0.1" if "rounded" in style else "square,pad=0"
        patch = FancyBboxPatch(
            (x - w / 2, y - h / 2),
            w,
            h,
            boxstyle=box,
            facecolor=_color(attrs.get("fillcolor") or attrs.get("color"), "lightgrey")
            if filled
            else "white",
            edgecolor=_color(attrs.get("color"), "black") if filled else "black",
            linewidth=1.2,
            zorder=2,
        )
        ax.add_patch(patch)
        if attrs.get("peripheries") not in (None, "", "1", "0"):
            ax.add_patch(
                FancyBboxPatch(
                    (x - w / 2 - 0.05, y - h / 2 - 0.05),
                    w + 0.1,
                    h + 0.1,
                    boxstyle=box,
                    fill=False,
                    edgecolor="black",
                    linewidth=1.0,
                    zorder=2,
                )
            )
        ax.text(x, y, _label(attrs, n), ha="center", va="center", fontsize=10, zorder=3)

    placed: list[tuple[float, float, float]] = []  # edge labels drawn: centre, half width
    for (a, b, e), rad in zip(g.edges, bends, strict=True):
        (xa, ya), (xb, yb) = pos[a], pos[b]
        # the curve leaves and enters the boxes at their borders, towards its control point
        # (computed here: matplotlib's patchA/patchB clipping costs ~30 ms per edge)
        cx, cy = (xa + xb) / 2 + rad * (yb - ya), (ya + yb) / 2 - rad * (xb - xa)
        start = _border(pos[a], sizes[a], (cx - xa, cy - ya))
        end = _border(pos[b], sizes[b], (cx - xb, cy - yb))
        style = e.get("style", "")
        color = _color(e.get("color"), "black")
        ax.add_patch(
            FancyArrowPatch(
                start,
                end,
                shrinkA=0,
                shrinkB=0,
                arrowstyle="-|>",
                mutation_scale=10,
                connectionstyle=f"arc3,rad={rad}",
                linestyle="--" if "dashed" in style else ":" if "dotted" in style else "-",
                color=color,
                linewidth=1.0,
                zorder=1,
            )
        )
        text = _label(e, "")
        if text:
            # on the curve (matplotlib's arc3 is a quadratic Bezier with the control point
            # chord midpoint + rad * (dy, -dx)), at the middle unless an earlier label is there
            (xa, ya), (xb, yb) = start, end
            q = (xa + xb) / 2 + rad * (yb - ya), (ya + yb) / 2 - rad * (xb - xa)
            half = _EDGE_CHAR_W * len(text) / 2 + 0.05
            mx, my = _label_spot(start, q, end, half, placed)
            placed.append((mx, my, half))
            ax.text(
                mx,
                my,
                text,
                ha="center",
                va="center",
                fontsize=8,
                zorder=4,
                bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "edgecolor": "none"},
            )
    written = []
    for path in paths:
        fig.savefig(path, format=path.suffix.lstrip("."), dpi=120)
        written.append(path)
    return written


# Formats matplotlib writes without extra packages.
FORMATS = ("png", "svg", "pdf")


def render_dot_source(
    source: str, stem: str | Path, formats: Iterable[str] = ("png",)
) -> list[Path]:
    """``{stem}.png`` drawn from ``source`` when ``formats`` asks for PNG (what W&B, TensorBoard
    and image viewers take), else ``{stem}.{fmt}`` for each of them that matplotlib writes.

    A picture takes most of a second on a busy 2-core CPU, so a run that asks for PNG and SVG
    every epoch gets the PNG only.
    """
    g = parse_dot(source)
    if not g.nodes:
        return []
    formats = list(formats)
    wanted = ["png"] if "png" in formats else [f for f in formats if f in FORMATS]
    paths = [Path(f"{stem}.{fmt}") for fmt in wanted]
    return draw(g, layout(g), paths)

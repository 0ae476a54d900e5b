"""Visualisation: DOT structure for both spaces, rendering with and without Graphviz, plots."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import pytest

from enas_lightning.arch import parse_ints
from enas_lightning.errors import ArchError
from enas_lightning.spaces.macro.arch import STEM, MacroArch
from enas_lightning.spaces.macro.picture import macro_arch_dot
from enas_lightning.spaces.micro.arch import MicroArch, MicroCell, MicroNode
from enas_lightning.spaces.micro.picture import micro_arch_dot, micro_cell_dot
from enas_lightning.viz import arch_dot, plot_curves, plot_op_probs, render
from enas_lightning.viz import dot as viz_dot

AUTHORS_MICRO_ARC = (
    "0 2 0 0 0 4 0 1 1 4 0 1 1 0 0 1 0 2 1 1 1 0 1 0 0 3 0 2 1 1 3 1 1 0 0 4 0 3 1 1"
)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HAS_DOT = shutil.which("dot") is not None

_ID = r'(?:"(?:[^"\\]|\\.)*"|[A-Za-z_][A-Za-z_0-9]*|-?\d+(?:\.\d+)?)'
_EDGE = re.compile(rf"^({_ID})\s*->\s*({_ID})\s*(?:\[(.*)\])?$")
_NODE = re.compile(rf"^({_ID})\s*(?:\[(.*)\])?$")
_ATTR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|[^\s\]]+)')
_KEYWORDS = {"graph", "node", "edge", "subgraph", "digraph", "strict"}


def parse_dot(
    source: str,
) -> tuple[dict[str, dict[str, str]], list[tuple[str, str, dict[str, str]]]]:
    """Nodes (id -> attrs) and edges (tail, head, attrs) of the simple DOT graphviz emits."""
    nodes: dict[str, dict[str, str]] = {}
    edges: list[tuple[str, str, dict[str, str]]] = []

    def attrs(text: str | None) -> dict[str, str]:
        return {k: v.strip('"') for k, v in _ATTR.findall(text or "")}

    for raw in source.splitlines():
        line = raw.strip()
        if not line or line.endswith("{") or line == "}" or re.match(r"^\w+=", line):
            continue  # graph/subgraph headers, closing braces, graph attribute statements
        if m := _EDGE.match(line):
            edges.append((m[1].strip('"'), m[2].strip('"'), attrs(m[3])))
        elif (m := _NODE.match(line)) and m[1] not in _KEYWORDS:
            nodes[m[1].strip('"')] = attrs(m[2])
        else:
            assert line.split()[0] in _KEYWORDS, f"unparsed DOT line: {line!r}"
    return nodes, edges


def micro() -> MicroArch:
    return MicroArch.from_ints(parse_ints(AUTHORS_MICRO_ARC))


def macro(layers: int = 12) -> MacroArch:
    ints: list[int] = []
    for i in range(layers):
        # deterministic but varied: every op family, skips from every third earlier layer
        ints += [i % 6] + [int((i + j) % 3 == 0) for j in range(i)]
    return MacroArch.from_ints(ints)


def check_edges_declared(nodes: dict, edges: list) -> None:
    for tail, head, _ in edges:
        assert tail in nodes, f"edge from undeclared node {tail}"
        assert head in nodes, f"edge to undeclared node {head}"


def test_micro_cell_dot_structure() -> None:
    arch = micro()
    for cell in (arch.normal, arch.reduce):
        g = micro_cell_dot(cell, "normal")
        nodes, edges = parse_dot(g.source)
        check_edges_declared(nodes, edges)
        b = len(cell.nodes)
        assert len(nodes) == 2 + b + 1  # 2 inputs, B computed nodes, output
        labelled = [e for e in edges if "label" in e[2]]
        concat = [e for e in edges if "label" not in e[2]]
        assert len(labelled) == 2 * b
        assert len(concat) == len(cell.loose_ends)
        assert {e[2]["label"] for e in labelled} <= {op for n in cell.nodes for op in n.ops}
        labels = {a.get("label") for a in nodes.values()}
        assert {"c_{k-2}", "c_{k-1}", "c_{k}"} | {str(j) for j in range(b)} == labels
        assert all(e[1].endswith("_out") for e in concat)
        assert "rankdir=LR" in g.source


def test_micro_cell_dot_unused_input_feeds_output() -> None:
    cell = MicroCell((MicroNode((0, 0), ("identity", "max_pool_3x3")),))
    nodes, edges = parse_dot(micro_cell_dot(cell, "my cell").source)
    check_edges_declared(nodes, edges)
    # input 1 (c_{k-1}) is never used, so it is concatenated into the output with node 0
    concat_tails = sorted(nodes[t]["label"] for t, _, a in edges if "label" not in a)
    assert concat_tails == ["0", "c_{k-1}"]


def test_micro_arch_dot_two_clusters() -> None:
    arch = micro()
    g = micro_arch_dot(arch)
    assert "subgraph cluster_normal" in g.source and "subgraph cluster_reduce" in g.source
    nodes, edges = parse_dot(g.source)
    check_edges_declared(nodes, edges)
    b = arch.num_nodes
    assert len(nodes) == 2 * (b + 3)
    n_loose = len(arch.normal.loose_ends) + len(arch.reduce.loose_ends)
    assert len(edges) == 2 * (2 * b) + n_loose
    # no edge crosses between the two cells
    for tail, head, _ in edges:
        assert tail.split("_")[0] == head.split("_")[0]
    assert arch_dot(arch).source == g.source


@pytest.mark.parametrize("layers", [1, 12, 24])
def test_macro_arch_dot_structure(layers: int) -> None:
    arch = macro(layers)
    reductions = (layers // 3 - 1, 2 * (layers // 3) - 1) if layers >= 3 else ()
    g = macro_arch_dot(arch, reductions=reductions)
    nodes, edges = parse_dot(g.source)
    check_edges_declared(nodes, edges)
    assert len(nodes) == layers + 2  # stem, layers, classifier
    layer_ids = {f"layer{i}" for i in range(layers)}
    chain = [e for e in edges if e[0] in layer_ids and e[1] in layer_ids and "style" not in e[2]]
    skips = [e for e in edges if e[2].get("style") == "dashed"]
    assert len(chain) == layers - 1
    assert len(skips) == sum(len(layer.skips) for layer in arch.layers)
    # a skip from the stem is drawn from the stem node; none from a layer's own input
    assert sorted((t, h) for t, h, _ in skips) == sorted(
        ("stem" if j == STEM else f"layer{j}", f"layer{i}")
        for i, layer in enumerate(arch.layers)
        for j in layer.skips
    )
    assert all(t != f"layer{int(h[5:]) - 1}" for t, h, _ in skips)
    if layers >= 3:  # every third bit is set, bit 0 of layer 3 (the stem) among them
        assert ("stem", "layer3") in {(t, h) for t, h, _ in skips}
    assert ("stem", "layer0") in {(t, h) for t, h, _ in edges}
    assert (f"layer{layers - 1}", "classifier") in {(t, h) for t, h, _ in edges}
    for i, layer in enumerate(arch.layers):
        assert nodes[f"layer{i}"]["label"] == f"{i}: {layer.op}"
        assert ("peripheries" in nodes[f"layer{i}"]) == (i in reductions)
    reduce_edges = [e for e in edges if e[2].get("label", "").startswith("reduce")]
    assert len(reduce_edges) == len(set(reductions))
    # the space draws its own layout (the pooling layers) into the picture
    assert arch_dot(arch).source == g.source


def test_macro_colours_by_family() -> None:
    nodes, _ = parse_dot(macro_arch_dot(macro(6)).source)
    colours = {nodes[f"layer{i}"]["fillcolor"] for i in range(6)}
    assert len(colours) == 4  # conv, sep_conv, avg_pool, max_pool


def test_macro_bad_reduction() -> None:
    with pytest.raises(ArchError, match="reductions"):
        macro_arch_dot(macro(4), reductions=(4,))


def test_arch_dot_rejects_other_types() -> None:
    with pytest.raises(TypeError):
        arch_dot("0 1 2")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        arch_dot(micro().normal)  # a cell is part of an architecture, not one


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz 'dot' program not installed")
@pytest.mark.parametrize("kind", ["micro", "macro", "cell"])
def test_render_with_dot(tmp_path: Path, kind: str) -> None:
    g = {
        "micro": lambda: micro_arch_dot(micro()),
        "macro": lambda: macro_arch_dot(macro(), reductions=(3, 7)),
        "cell": lambda: micro_cell_dot(micro().reduce, "reduce"),
    }[kind]()
    stem = tmp_path / "out" / f"{kind}.epoch3"  # a dot in the stem must survive
    paths = render(g, stem)
    assert [p.name for p in paths] == [
        f"{kind}.epoch3.dot",
        f"{kind}.epoch3.png",
        f"{kind}.epoch3.svg",
    ]
    assert paths[0].read_text() == g.source
    png = paths[1].read_bytes()
    assert png.startswith(PNG_SIGNATURE) and len(png) > 1000
    svg = paths[2].read_text()
    assert "<svg" in svg and "</svg>" in svg
    # nothing else left behind (pipe renders in memory)
    assert sorted(p.name for p in stem.parent.iterdir()) == sorted(p.name for p in paths)


def test_render_without_dot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    """Without the dot program the PNG is drawn by matplotlib (viz/mpl_dag.py; tests/test_render.py)."""
    monkeypatch.setattr(shutil, "which", lambda *a, **k: None)
    monkeypatch.setattr(viz_dot, "_missing_dot_logged", False)
    g = micro_arch_dot(micro())
    with caplog.at_level(logging.INFO, logger=viz_dot.__name__):
        paths = render(g, tmp_path / "arch")
        paths2 = render(macro_arch_dot(macro()), tmp_path / "macro", formats=("png",))
    assert paths == [tmp_path / "arch.dot", tmp_path / "arch.png"]
    assert paths2 == [tmp_path / "macro.dot", tmp_path / "macro.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "arch.dot",
        "arch.png",
        "macro.dot",
        "macro.png",
    ]
    assert (tmp_path / "arch.dot").read_text() == g.source
    assert (tmp_path / "arch.png").read_bytes().startswith(PNG_SIGNATURE)
    hints = [r for r in caplog.records if "pictures with matplotlib" in r.getMessage()]
    assert len(hints) == 1  # logged once, not per call
    assert "apt-get install graphviz" in hints[0].getMessage()


def test_render_failure_keeps_dot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    import graphviz

    monkeypatch.setattr(shutil, "which", lambda *a, **k: "/usr/bin/dot")

    def boom(*a, **k):
        raise graphviz.ExecutableNotFound(("dot",))

    g = micro_arch_dot(micro())
    monkeypatch.setattr(g, "pipe", boom)
    with caplog.at_level(logging.WARNING, logger=viz_dot.__name__):
        paths = render(g, tmp_path / "arch")
    assert paths == [tmp_path / "arch.dot"] and paths[0].exists()
    assert any(r.levelno == logging.WARNING for r in caplog.records)


def history(labels: list[str], n_ops: int, epochs: int = 6) -> list[dict]:
    out = []
    for e in range(epochs):
        probs = {}
        for k, label in enumerate(labels):
            raw = [1.0 + ((e + 1) * (i + 1) + k) % 5 for i in range(n_ops)]
            probs[label] = [r / sum(raw) for r in raw]
        out.append(
            {
                "epoch": e,
                "op_probs": probs,
                "entropy": 1.5 - 0.1 * e,
                "reward": 0.1 * e,
                "baseline": 0.05 * e,
            }
        )
    return out


@pytest.mark.parametrize(
    ("labels", "ops"),
    [
        ([f"{c}/node{j}/op{s}" for c in ("normal", "reduce") for j in range(5) for s in (1, 2)], 5),
        ([f"layer{i}" for i in range(12)], 6),
        (["layer0"], 6),
    ],
)
def test_plot_op_probs(tmp_path: Path, labels: list[str], ops: int) -> None:
    names = [f"op_{k}" for k in range(ops)]
    out = plot_op_probs(history(labels, ops), tmp_path / "sub" / "probs.png", op_names=names)
    assert out == tmp_path / "sub" / "probs.png"
    assert out.read_bytes().startswith(PNG_SIGNATURE)


def test_plot_op_probs_empty_and_ragged(tmp_path: Path) -> None:
    assert (
        plot_op_probs([], tmp_path / "empty.png", op_names=["a"])
        .read_bytes()
        .startswith(PNG_SIGNATURE)
    )
    h = history(["layer0", "layer1"], 3)
    del h[2]["op_probs"]["layer1"]  # a label missing from one epoch leaves a gap
    h[3]["op_probs"]["layer0"] = h[3]["op_probs"]["layer0"][:2]
    out = plot_op_probs(h, tmp_path / "ragged.png")  # no op names: op0, op1, ...
    assert out.read_bytes().startswith(PNG_SIGNATURE)


def test_plot_curves(tmp_path: Path) -> None:
    h = history(["layer0"], 2)
    del h[1]["reward"]
    out = plot_curves(
        h, ["entropy", "reward", "baseline", "not_logged"], tmp_path / "c.png", "controller"
    )
    assert out.read_bytes().startswith(PNG_SIGNATURE)
    none = plot_curves(h, ["not_logged"], tmp_path / "none.png", "nothing")
    assert none.read_bytes().startswith(PNG_SIGNATURE)


def test_plots_leave_no_pyplot_figures(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    plot_curves(history(["a"], 2), ["entropy"], tmp_path / "c.png", "t")
    plot_op_probs(history(["a"], 2), tmp_path / "p.png")
    assert plt.get_fignums() == before

"""Visualisation: the pictures' structure for both spaces, DOT from it, rendering with and
without Graphviz, plots."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import graphviz
import pytest

from enas_lightning.arch import parse_ints
from enas_lightning.errors import ArchError
from enas_lightning.spaces.macro.arch import STEM, MacroArch
from enas_lightning.spaces.macro.picture import macro_arch_picture
from enas_lightning.spaces.micro.arch import MicroArch, MicroCell, MicroNode
from enas_lightning.spaces.micro.picture import micro_arch_picture
from enas_lightning.viz import arch_dot, plot_curves, plot_op_probs, render
from enas_lightning.viz import dot as viz_dot
from enas_lightning.viz.graph import INPUT_COLOR, Picture

AUTHORS_MICRO_ARC = (
    "0 2 0 0 0 4 0 1 1 4 0 1 1 0 0 1 0 2 1 1 1 0 1 0 0 3 0 2 1 1 3 1 1 0 0 4 0 3 1 1"
)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HAS_DOT = shutil.which("dot") is not None


def micro() -> MicroArch:
    return MicroArch.from_ints(parse_ints(AUTHORS_MICRO_ARC))


def macro(layers: int = 12) -> MacroArch:
    ints: list[int] = []
    for i in range(layers):
        # deterministic but varied: every op family, skips from every third earlier layer
        ints += [i % 6] + [int((i + j) % 3 == 0) for j in range(i)]
    return MacroArch.from_ints(ints)


def edges(p: Picture, **match: str) -> list[tuple[str, str]]:
    """(tail, head) of the edges whose fields equal ``match``."""
    return [(e.tail, e.head) for e in p.edges if all(getattr(e, k) == v for k, v in match.items())]


@pytest.mark.parametrize("key", ["normal", "reduce"])
def test_micro_picture_cell_structure(key: str) -> None:
    arch = micro()
    cell = arch.cells[key]
    p = micro_arch_picture(arch)
    b = len(cell.nodes)
    members = p.members(key)
    assert members == [f"{key}_in0", f"{key}_in1", *(f"{key}_n{j}" for j in range(b)), f"{key}_out"]
    assert [p.nodes[n].label for n in members] == [
        "c_{k-2}",
        "c_{k-1}",
        *map(str, range(b)),
        "c_{k}",
    ]
    assert [p.nodes[n].kind for n in members] == ["input"] * 2 + ["node"] * b + ["output"]
    ops = [e for e in p.edges if e.kind == "data" and e.head.startswith(f"{key}_n")]
    # every node's two ops label its two incoming edges, in the authors' order
    assert [e.label for e in ops] == [op for node in cell.nodes for op in node.ops]
    assert [e.tail for e in ops] == [
        f"{key}_in{i}" if i < 2 else f"{key}_n{i - 2}" for node in cell.nodes for i in node.inputs
    ]
    concat = edges(p, kind="merge", head=f"{key}_out")
    assert len(concat) == len(cell.loose_ends) and all(
        e.label == "" for e in p.edges if e.kind == "merge"
    )


def test_micro_picture_unused_input_feeds_output() -> None:
    cell = MicroCell((MicroNode((0, 0), ("identity", "max_pool_3x3")),))
    p = micro_arch_picture(MicroArch(cell, cell))
    # input 1 (c_{k-1}) is never used, so it is concatenated into the output with node 0
    concat = sorted(p.nodes[t].label for t, _ in edges(p, kind="merge", head="normal_out"))
    assert concat == ["0", "c_{k-1}"]
    # the two ops from the same input are two edges, not one
    assert edges(p, head="normal_n0", kind="data") == [("normal_in0", "normal_n0")] * 2


def test_micro_picture_two_clusters() -> None:
    arch = micro()
    p = micro_arch_picture(arch)
    assert p.rankdir == "LR"
    assert {c.id: c.label for c in p.clusters.values()} == {
        "normal": "normal cell",
        "reduce": "reduction cell",
    }
    b = arch.num_nodes
    assert len(p.nodes) == 2 * (b + 3) and p.members(None) == []
    n_loose = len(arch.normal.loose_ends) + len(arch.reduce.loose_ends)
    assert len(p.edges) == 2 * (2 * b) + n_loose
    # no edge crosses between the two cells
    assert all(p.nodes[e.tail].cluster == p.nodes[e.head].cluster for e in p.edges)
    assert arch_dot(arch) == p  # the registered space describes it


@pytest.mark.parametrize("layers", [1, 12, 24])
def test_macro_picture_structure(layers: int) -> None:
    arch = macro(layers)
    reductions = (layers // 3 - 1, 2 * (layers // 3) - 1) if layers >= 3 else ()
    p = macro_arch_picture(arch, reductions=reductions)
    assert p.rankdir == "TB" and p.clusters == {}
    assert list(p.nodes) == ["stem", *(f"layer{i}" for i in range(layers)), "classifier"]
    assert (p.nodes["stem"].kind, p.nodes["classifier"].kind) == ("stem", "output")
    chain = ["stem", *(f"layer{i}" for i in range(layers)), "classifier"]
    assert edges(p, kind="data") == list(zip(chain, chain[1:], strict=False))
    # a skip from the stem is drawn from the stem node; none from a layer's own input
    assert sorted(edges(p, kind="skip")) == sorted(
        ("stem" if j == STEM else f"layer{j}", f"layer{i}")
        for i, layer in enumerate(arch.layers)
        for j in layer.skips
    )
    assert all(t != f"layer{int(h[5:]) - 1}" for t, h in edges(p, kind="skip"))
    if layers >= 3:  # every third bit is set, bit 0 of layer 3 (the stem) among them
        assert ("stem", "layer3") in edges(p, kind="skip")
    for i, layer in enumerate(arch.layers):
        assert p.nodes[f"layer{i}"].label == f"{i}: {layer.op}"
        assert p.nodes[f"layer{i}"].emphasis == (i in reductions)
    assert sorted(e.tail for e in p.edges if e.label == "reduce /2") == sorted(
        f"layer{r}" for r in set(reductions)
    )
    # the space draws its own layout (the pooling layers) into the picture
    assert arch_dot(arch) == p


def test_macro_colours_by_family() -> None:
    p = macro_arch_picture(macro(6))
    assert len({p.nodes[f"layer{i}"].color for i in range(6)}) == 4  # conv, sep, avg, max


def test_macro_bad_reduction() -> None:
    with pytest.raises(ArchError, match="reductions"):
        macro_arch_picture(macro(4), reductions=(4,))


def test_arch_dot_rejects_other_types() -> None:
    with pytest.raises(TypeError):
        arch_dot("0 1 2")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        arch_dot(micro().normal)  # a cell is part of an architecture, not one


def test_picture_rejects_what_it_cannot_draw() -> None:
    p = Picture("g")
    p.cluster("c", "a cluster")
    p.node("a", "a", cluster="c")
    with pytest.raises(ValueError, match="undeclared 'b'"):
        p.edge("a", "b")
    with pytest.raises(ValueError, match="declared twice"):
        p.node("a", "again")
    with pytest.raises(ValueError, match="undeclared cluster 'd'"):
        p.node("b", "b", cluster="d")
    with pytest.raises(ValueError, match="node kind"):
        p.node("b", "b", kind="blob")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="edge kind"):
        p.edge("a", "a", kind="wire")  # type: ignore[arg-type]


def test_dot_source_from_the_record() -> None:
    p = micro_arch_picture(micro())
    source = viz_dot.to_dot(p).source
    assert "rankdir=LR" in source
    assert source.count("subgraph cluster_") == 2 and 'label="reduction cell"' in source
    assert source.count("->") == len(p.edges)
    assert source.count(f'fillcolor="{INPUT_COLOR}"') == 4
    assert "normal_in0 -> normal_n0 [label=sep_conv_3x3]" in source
    m = viz_dot.to_dot(macro_arch_picture(macro(), reductions=(3, 7))).source
    skips = len(edges(macro_arch_picture(macro()), kind="skip"))
    # a skip is dashed and leaves the ranks to the main chain
    assert m.count("style=dashed") == m.count("constraint=false") == skips
    assert m.count("peripheries=2") == 2 and m.count('label="reduce /2"') == 2


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz 'dot' program not installed")
@pytest.mark.parametrize("kind", ["micro", "macro", "chain"])
def test_render_with_dot(tmp_path: Path, kind: str) -> None:
    from tests.toy_space import ChainArch

    p = {
        "micro": lambda: micro_arch_picture(micro()),
        "macro": lambda: macro_arch_picture(macro(), reductions=(3, 7)),
        "chain": lambda: arch_dot(ChainArch(("conv_3x3", "avg_pool_3x3"))),
    }[kind]()
    stem = tmp_path / "out" / f"{kind}.epoch3"  # a dot in the stem must survive
    paths = render(p, stem)
    assert [p.name for p in paths] == [
        f"{kind}.epoch3.dot",
        f"{kind}.epoch3.png",
        f"{kind}.epoch3.svg",
    ]
    assert paths[0].read_text() == viz_dot.to_dot(p).source
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
    p = micro_arch_picture(micro())
    with caplog.at_level(logging.INFO, logger=viz_dot.__name__):
        paths = render(p, tmp_path / "arch")
        paths2 = render(macro_arch_picture(macro()), tmp_path / "macro", formats=("png",))
    assert paths == [tmp_path / "arch.dot", tmp_path / "arch.png"]
    assert paths2 == [tmp_path / "macro.dot", tmp_path / "macro.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "arch.dot",
        "arch.png",
        "macro.dot",
        "macro.png",
    ]
    assert (tmp_path / "arch.dot").read_text() == viz_dot.to_dot(p).source
    assert (tmp_path / "arch.png").read_bytes().startswith(PNG_SIGNATURE)
    hints = [r for r in caplog.records if "pictures with matplotlib" in r.getMessage()]
    assert len(hints) == 1  # logged once, not per call
    assert "apt-get install graphviz" in hints[0].getMessage()


def test_render_failure_keeps_dot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.setattr(shutil, "which", lambda *a, **k: "/usr/bin/dot")

    def boom(*a, **k):
        raise graphviz.ExecutableNotFound(("dot",))

    monkeypatch.setattr(graphviz.Digraph, "pipe", boom)
    with caplog.at_level(logging.WARNING, logger=viz_dot.__name__):
        paths = render(micro_arch_picture(micro()), tmp_path / "arch")
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

"""Pictures without Graphviz: the DOT reader, the layered layout and the matplotlib drawing
(enas_lightning/viz/mpl_dag.py), and that render() uses Graphviz when it is there."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from enas_lightning.arch import parse_ints
from enas_lightning.spaces.macro.arch import AUTHORS_MACRO_FINAL, MacroArch
from enas_lightning.spaces.micro.arch import AUTHORS_MICRO_FINAL, MicroArch
from enas_lightning.viz import arch_dot, render
from enas_lightning.viz import dot as viz_dot
from enas_lightning.viz import mpl_dag as viz_render
from enas_lightning.viz.mpl_dag import layout, parse_dot, render_dot_source

HAS_DOT = shutil.which("dot") is not None
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def micro() -> MicroArch:
    return MicroArch.from_ints(parse_ints(AUTHORS_MICRO_FINAL))


def macro(layers: int = 12) -> MacroArch:
    n = layers * (layers + 1) // 2
    return MacroArch.from_ints(parse_ints(" ".join(AUTHORS_MACRO_FINAL.split()[:n])))


def test_parse_dot_reads_the_micro_graph() -> None:
    arch = micro()
    g = parse_dot(arch_dot(arch).source)
    assert g.rankdir == "LR"
    assert sorted(g.clusters) == ["cluster_normal", "cluster_reduce"]
    assert g.clusters["cluster_normal"]["label"] == "normal cell"
    for key in ("normal", "reduce"):
        cell = arch.cells[key]
        members = [n for n, c in g.cluster_of.items() if c == f"cluster_{key}"]
        assert len(members) == 2 + len(cell.nodes) + 1  # two inputs, B nodes, the output
        op_edges = [
            e for a, b, e in g.edges if b.startswith(f"{key}_n") and a.startswith(f"{key}_")
        ]
        # every node's two ops label its two incoming edges, in the authors' order
        assert [e["label"] for e in op_edges] == [op for n in cell.nodes for op in n.ops]
        to_out = [a for a, b, _ in g.edges if b == f"{key}_out"]
        assert len(to_out) == len(cell.loose_ends)
    assert g.nodes["normal_in0"]["label"] == "c_{k-2}"
    assert g.nodes["normal_in0"]["fillcolor"] == "darkseagreen2"
    assert g.nodes["normal_n0"]["style"] == "filled,rounded"  # node defaults are applied


def test_parse_dot_general_syntax() -> None:
    source = """// a comment
    strict digraph "g" {
      rankdir=TB; node [shape=box, style=filled]
      a -> b -> c [label="x \\"y\\""];
      /* block
         comment */
      subgraph cluster_1 { label=one; d [fillcolor=khaki] }
      c:port -> d
    }"""
    g = parse_dot(source)
    assert g.rankdir == "TB"
    assert list(g.nodes) == ["a", "b", "c", "d"]
    assert [(a, b) for a, b, _ in g.edges] == [("a", "b"), ("b", "c"), ("c", "d")]
    assert g.edges[0][2]["label"] == 'x "y"'
    assert g.cluster_of["d"] == "cluster_1" and g.cluster_of["a"] is None
    assert g.clusters["cluster_1"]["label"] == "one"
    assert g.nodes["d"] == {"shape": "box", "style": "filled", "fillcolor": "khaki"}


@pytest.mark.parametrize("space", ["micro", "macro"])
def test_layout_ranks_run_along_rankdir(space: str) -> None:
    """Every edge points forward (left to right for LR, downwards for TB); no two boxes overlap."""
    arch = micro() if space == "micro" else macro()
    g = parse_dot(arch_dot(arch).source)
    pos = layout(g)
    assert set(pos) == set(g.nodes)
    for a, b, _ in g.edges:
        if space == "micro":
            assert pos[a][0] < pos[b][0], (a, b)
        else:
            assert pos[a][1] > pos[b][1], (a, b)
    sizes = {n: viz_render.node_size(g, n) for n in g.nodes}
    names = list(g.nodes)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            apart_x = abs(pos[a][0] - pos[b][0]) >= (sizes[a][0] + sizes[b][0]) / 2
            apart_y = abs(pos[a][1] - pos[b][1]) >= (sizes[a][1] + sizes[b][1]) / 2
            assert apart_x or apart_y, (a, b)


def test_layout_survives_a_cycle() -> None:
    g = parse_dot("digraph { a -> b -> c -> a; c -> d }")
    pos = layout(g)
    assert len(set(pos.values())) == 4


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_render_dot_source_draws_the_boxes_in_their_colours(tmp_path: Path) -> None:
    paths = render_dot_source(arch_dot(micro()).source, tmp_path / "arch", ("png", "svg"))
    assert paths == [tmp_path / "arch.png"]  # PNG only when PNG is asked for (cost)
    png = paths[0].read_bytes()
    assert png.startswith(PNG_SIGNATURE)
    image = pixels(paths[0])
    assert image.shape[0] > 300 and image.shape[1] > 300
    colours = {tuple(c) for c in image.reshape(-1, 3)[::7]}
    # the fills: lightblue nodes, darkseagreen2 inputs, palegoldenrod outputs
    for rgb in ((173, 216, 230), (180, 238, 180), (238, 232, 170)):
        assert rgb in colours, rgb
    svg = render_dot_source(arch_dot(micro()).source, tmp_path / "only", ("svg",))
    assert svg == [tmp_path / "only.svg"] and "<svg" in svg[0].read_text()


def test_render_uses_matplotlib_without_dot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(viz_dot.shutil, "which", lambda *a, **k: None)
    paths = render(arch_dot(macro()), tmp_path / "best_arch")
    assert [p.name for p in paths] == ["best_arch.dot", "best_arch.png"]
    assert pixels(paths[1]).std() > 10  # not a blank picture


def test_render_survives_a_failing_fallback(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(viz_dot.shutil, "which", lambda *a, **k: None)

    def boom(*a, **k):
        raise RuntimeError("no fonts")

    monkeypatch.setattr(viz_render, "render_dot_source", boom)
    assert render(arch_dot(micro()), tmp_path / "a") == [tmp_path / "a.dot"]


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz 'dot' program not installed (CI installs it)")
def test_render_prefers_graphviz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def not_called(*a, **k):
        raise AssertionError("the matplotlib fallback ran although dot is installed")

    monkeypatch.setattr(viz_render, "render_dot_source", not_called)
    paths = render(arch_dot(micro()), tmp_path / "arch")
    assert [p.suffix for p in paths] == [".dot", ".png", ".svg"]
    assert paths[1].read_bytes().startswith(PNG_SIGNATURE)


def test_fallback_picture_reaches_tensorboard(tmp_path: Path, monkeypatch) -> None:
    """The drawn PNG goes to TensorBoard like Graphviz's (tracking.log_image)."""
    from pytorch_lightning.loggers import TensorBoardLogger
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from enas_lightning.tracking import log_image

    monkeypatch.setattr(viz_dot.shutil, "which", lambda *a, **k: None)
    png = render(arch_dot(micro()), tmp_path / "pictures" / "greedy_epoch0")[-1]
    logger = TensorBoardLogger(save_dir=str(tmp_path), name="", version="tb")
    log_image(logger, "pictures/greedy_arch", png, step=3)
    logger.experiment.flush()
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert events.Tags()["images"] == ["pictures/greedy_arch"]
    image = events.Images("pictures/greedy_arch")[0]
    assert image.step == 3 and image.height == pixels(png).shape[0]

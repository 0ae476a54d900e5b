"""Pictures without Graphviz: grandalf's layered layout of the space's picture record and the
matplotlib drawing (enas_lightning/viz/mpl_dag.py), and that render() uses Graphviz when it is
there."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from enas_lightning.arch import parse_ints
from enas_lightning.spaces.macro.arch import AUTHORS_MACRO_FINAL, MacroArch
from enas_lightning.spaces.micro.arch import AUTHORS_MICRO_FINAL, MicroArch
from enas_lightning.viz import arch_dot, mpl_dag, render
from enas_lightning.viz import dot as viz_dot
from enas_lightning.viz.graph import Picture
from enas_lightning.viz.mpl_dag import label_size, layout, render_picture
from tests.toy_space import ChainArch

HAS_DOT = shutil.which("dot") is not None
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def micro() -> MicroArch:
    return MicroArch.from_ints(parse_ints(AUTHORS_MICRO_FINAL))


def macro(layers: int = 12) -> MacroArch:
    n = layers * (layers + 1) // 2
    return MacroArch.from_ints(parse_ints(" ".join(AUTHORS_MACRO_FINAL.split()[:n])))


def overlap(a: tuple[float, float], sa, b: tuple[float, float], sb) -> bool:
    return abs(a[0] - b[0]) < (sa[0] + sb[0]) / 2 and abs(a[1] - b[1]) < (sa[1] + sb[1]) / 2


def boxes(p: Picture, lay: mpl_dag.Layout) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """Every node box and edge label box: centre and size, inches."""
    out = [(lay.pos[n], lay.size[n]) for n in p.nodes]
    return out + [
        (at, label_size(e.label)) for e, at in zip(p.edges, lay.labels, strict=True) if at
    ]


@pytest.mark.parametrize("space", ["micro", "macro", "chain"])
def test_layout_ranks_run_along_rankdir(space: str) -> None:
    """Every edge points forward (left to right for LR, downwards for TB); no two boxes or
    labels overlap; each route starts and ends at its nodes."""
    arch = {"micro": micro, "macro": macro, "chain": lambda: ChainArch(("conv_3x3",) * 3)}[space]()
    p = arch_dot(arch)
    lay = layout(p)
    assert set(lay.pos) == set(p.nodes)
    for e, route in zip(p.edges, lay.routes, strict=True):
        a, b = lay.pos[e.tail], lay.pos[e.head]
        assert a[0] < b[0] if p.rankdir == "LR" else a[1] > b[1], e
        assert route[0] == pytest.approx(a) and route[-1] == pytest.approx(b)
    placed = boxes(p, lay)
    for i, (a, sa) in enumerate(placed):
        for b, sb in placed[i + 1 :]:
            assert not overlap(a, sa, b, sb), (a, b)


def test_layout_labels_sit_on_their_edges() -> None:
    p = arch_dot(micro())
    lay = layout(p)
    for e, route, at in zip(p.edges, lay.routes, lay.labels, strict=True):
        assert (at is not None) == bool(e.label)
        if at is not None:  # the route passes through its label
            assert any(q == pytest.approx(at) for q in route)


def test_layout_stacks_the_clusters() -> None:
    p = arch_dot(micro())
    lay = layout(p)
    normal, reduce = ([lay.pos[n][1] for n in p.members(c)] for c in ("normal", "reduce"))
    assert min(normal) > max(reduce)  # LR: ranks left to right, cells one above the other


def test_layout_keeps_the_main_chain_straight_and_skips_beside_it() -> None:
    """The macro picture's skips run in lanes to the right of the chain (Graphviz's
    constraint=false), so every layer sits in one column and no skip crosses a box."""
    p = arch_dot(macro())
    lay = layout(p)
    xs = {round(lay.pos[n][0], 6) for n in p.nodes}
    assert len(xs) == 1
    right = max(lay.pos[n][0] + lay.size[n][0] / 2 for n in p.nodes)
    for e, route in zip(p.edges, lay.routes, strict=True):
        if e.kind == "skip" and len(route) > 2:
            assert all(x > right for x, _ in route[1:-1]), e
    # lanes: two skips that run beside the same rank never share a lane
    lanes = [
        (route[1][0], route[1][1], route[-2][1])
        for e, route in zip(p.edges, lay.routes, strict=True)
        if e.kind == "skip" and len(route) > 2
    ]
    for i, (x, top, bottom) in enumerate(lanes):
        for x2, top2, bottom2 in lanes[i + 1 :]:
            if x == x2:
                assert bottom > top2 or bottom2 > top


def test_lanes_nest_shorter_spans_inside() -> None:
    assert mpl_dag._lanes([(1, 5), (2, 3), (4, 4), (6, 7)]) == [1, 0, 0, 0]


def test_layout_survives_a_cycle_and_loose_nodes() -> None:
    p = Picture("cycle", "TB")
    for n in "abcde":
        p.node(n, n)
    for a, b in ("ab", "bc", "ca", "cd"):
        p.edge(a, b)
    lay = layout(p)  # e has no edge: a component of its own
    assert len({tuple(round(v, 6) for v in q) for q in lay.pos.values()}) == 5


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_render_picture_draws_the_boxes_in_their_colours(tmp_path: Path) -> None:
    paths = render_picture(arch_dot(micro()), tmp_path / "arch", ("png", "svg"))
    assert paths == [tmp_path / "arch.png"]  # PNG only when PNG is asked for (cost)
    png = paths[0].read_bytes()
    assert png.startswith(PNG_SIGNATURE)
    image = pixels(paths[0])
    assert image.shape[0] > 300 and image.shape[1] > 300
    colours = {tuple(c) for c in image.reshape(-1, 3)[::7]}
    # the fills: lightblue nodes, darkseagreen2 inputs, palegoldenrod outputs
    for rgb in ((173, 216, 230), (180, 238, 180), (238, 232, 170)):
        assert rgb in colours, rgb
    svg = render_picture(arch_dot(micro()), tmp_path / "only", ("svg",))
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

    monkeypatch.setattr(mpl_dag, "render_picture", boom)
    assert render(arch_dot(micro()), tmp_path / "a") == [tmp_path / "a.dot"]


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz 'dot' program not installed (CI installs it)")
def test_render_prefers_graphviz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def not_called(*a, **k):
        raise AssertionError("the matplotlib fallback ran although dot is installed")

    monkeypatch.setattr(mpl_dag, "render_picture", not_called)
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


def test_search_draws_an_unchanged_greedy_architecture_once(tmp_path: Path, monkeypatch) -> None:
    """The search's greedy picture of an epoch whose greedy architecture is the previous
    epoch's is a copy of the previous files (same names per epoch, same bytes); a changed
    architecture, or a previous picture removed meanwhile, is drawn again."""
    from enas_lightning.search import artifacts

    drawn: list[Path] = []

    def counting_render(p, stem, *a, **k):
        drawn.append(Path(stem))
        return render(p, stem, *a, **k)

    monkeypatch.setattr(artifacts, "render", counting_render)
    callback = artifacts.SearchArtifacts(tmp_path)
    pics = tmp_path / "pictures"
    callback.draw(micro(), pics / "greedy_epoch0")
    callback.draw(micro(), pics / "greedy_epoch1")
    assert drawn == [pics / "greedy_epoch0"]
    first = sorted(p.name for p in pics.glob("greedy_epoch0.*"))
    assert first and sorted(p.name for p in pics.glob("greedy_epoch1.*")) == [
        n.replace("epoch0", "epoch1") for n in first
    ]
    for name in first:
        copy = pics / name.replace("epoch0", "epoch1")
        assert copy.read_bytes() == (pics / name).read_bytes()
    other = macro(4)
    callback.draw(other, pics / "greedy_epoch2")
    assert drawn[-1] == pics / "greedy_epoch2"
    (pics / "greedy_epoch2.dot").unlink()
    callback.draw(other, pics / "greedy_epoch3")
    assert drawn[-1] == pics / "greedy_epoch3" and (pics / "greedy_epoch3.dot").exists()

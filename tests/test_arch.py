"""Architecture records: the authors' integer codec, JSON files and every rejection path."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import pytest

from enas_lightning.arch import load_arch, parse_ints, save_arch
from enas_lightning.errors import ArchError, ENASError
from enas_lightning.spaces.macro.arch import AUTHORS_MACRO_FINAL, STEM, MacroArch, MacroLayer
from enas_lightning.spaces.macro.ops import AUTHORS_MACRO_OPS
from enas_lightning.spaces.micro.arch import MicroArch, MicroCell, MicroNode
from enas_lightning.spaces.micro.ops import AUTHORS_MICRO_OPS

# The authors' published final micro (CIFAR-10) arc: normal cell's 20 integers then reduction's.
AUTHORS_MICRO_ARC = (
    "0 2 0 0 0 4 0 1 1 4 0 1 1 0 0 1 0 2 1 1 1 0 1 0 0 3 0 2 1 1 3 1 1 0 0 4 0 3 1 1"
)


def macro_arc(layers: int = 12, seed: int = 0) -> list[int]:
    """A random valid macro arc: per layer i, an op then i skip bits."""
    rng = random.Random(seed)
    out: list[int] = []
    for i in range(layers):
        out += [rng.randrange(len(AUTHORS_MACRO_OPS))] + [rng.randint(0, 1) for _ in range(i)]
    return out


MACRO_ARC = " ".join(map(str, macro_arc()))


def test_micro_authors_arc_round_trip() -> None:
    ints = parse_ints(AUTHORS_MICRO_ARC)
    assert len(ints) == 40
    arch = MicroArch.from_ints(ints)
    assert arch.num_nodes == 5
    assert " ".join(map(str, arch.to_ints())) == AUTHORS_MICRO_ARC
    # spot checks against a by-hand decoding of the string
    assert arch.normal.nodes[0] == MicroNode((0, 0), ("avg_pool_3x3", "sep_conv_3x3"))
    assert arch.reduce.nodes[2] == MicroNode((1, 3), ("sep_conv_5x5", "sep_conv_5x5"))
    assert arch.normal.loose_ends == (2, 3, 4, 5, 6)
    assert arch.reduce.loose_ends == (2, 4, 5, 6)
    assert load_arch(AUTHORS_MICRO_ARC, "micro", AUTHORS_MICRO_OPS, size=5) == arch


def test_macro_arc_round_trip() -> None:
    ints = parse_ints(MACRO_ARC)
    assert len(ints) == 78
    arch = MacroArch.from_ints(ints)
    assert arch.num_layers == 12
    assert " ".join(map(str, arch.to_ints())) == MACRO_ARC
    assert load_arch(MACRO_ARC, "macro", AUTHORS_MACRO_OPS, size=12) == arch
    # 24 layers = 300 integers
    big = macro_arc(24, seed=1)
    assert len(big) == 300
    assert MacroArch.from_ints(big).to_ints() == big


def test_macro_decodes_skips_by_hand() -> None:
    # layer 0: op 1; layer 1: op 0, bit 0 = the stem; layer 2: op 5, bit 1 = layer 0 only;
    # layer 3: op 2, bits 0 and 2 = the stem and layer 1
    arch = MacroArch.from_ints([1, 0, 1, 5, 0, 1, 2, 1, 0, 1])
    assert arch.layers == (
        MacroLayer("sep_conv_3x3", ()),
        MacroLayer("conv_3x3", (STEM,)),
        MacroLayer("max_pool_3x3", (0,)),
        MacroLayer("conv_5x5", (STEM, 1)),
    )
    assert arch.skip_rate == pytest.approx(4 / 6)
    assert str(arch).splitlines()[3].endswith("skips from [stem, 1]")


def authors_skip_sources(ints: list[int], layers: int) -> list[list[str]]:
    """Per layer, the names of the outputs that melodyguan/enas general_child.py feeds to the
    layer's skip merge, by the code's own bookkeeping (``_model``: ``layers = [stem]``, each
    layer's output appended after it is built; ``_fixed_layer``/``_enas_layer``: skip bit ``i``
    takes ``prev_layers[i]``, the layer's input is ``prev_layers[-1]``)."""
    prev_layers, start, out = ["stem"], 0, []
    for layer_id in range(layers):
        skip = ints[start + 1 : start + 1 + layer_id]
        out.append([prev_layers[i] for i in range(layer_id) if skip[i] == 1])
        assert prev_layers[-1] == ("stem" if layer_id == 0 else f"layer {layer_id - 1}")
        prev_layers.append(f"layer {layer_id}")
        start += 1 + layer_id
    return out


def test_published_macro_arc_decodes_to_the_authors_skips(tmp_path: Path) -> None:
    ints = parse_ints(AUTHORS_MACRO_FINAL)
    arch = load_arch(AUTHORS_MACRO_FINAL, "macro", AUTHORS_MACRO_OPS, size=24)
    ours = [["stem" if j == STEM else f"layer {j}" for j in layer.skips] for layer in arch.layers]
    assert ours == authors_skip_sources(ints, 24)
    # by hand from the script's lines: layer 2 is "0 1 0", layer 5 "3 1 1 0 1 0", layer 3
    # "2 0 0 1" (its last bit is layer 1, not layer 2 = its own input)
    assert arch.layers[2] == MacroLayer("conv_3x3", (STEM,))
    assert arch.layers[5] == MacroLayer("sep_conv_5x5", (STEM, 0, 2))
    assert arch.layers[3] == MacroLayer("conv_5x5", (1,))
    from_stem = [i for i, layer in enumerate(arch.layers) if STEM in layer.skips]
    assert from_stem == [2, 5, 11, 14, 20, 22, 23]
    # no layer takes a skip from its own input
    assert all(i - 1 not in layer.skips for i, layer in enumerate(arch.layers))
    assert sum(len(layer.skips) for layer in arch.layers) == sum(
        sum(ints[i * (i + 1) // 2 + 1 : i * (i + 1) // 2 + 1 + i]) for i in range(24)
    )
    # round trips: integers, JSON file, and the JSON's readable layers alone
    assert " ".join(map(str, arch.to_ints())) == AUTHORS_MACRO_FINAL
    save_arch(arch, tmp_path / "a.json", AUTHORS_MACRO_OPS)
    d = json.loads((tmp_path / "a.json").read_text())
    assert d["layers"][5]["skips"] == [-1, 0, 2]
    assert load_arch(tmp_path / "a.json", "macro", AUTHORS_MACRO_OPS) == arch
    d.pop("ints")
    assert MacroArch.from_dict(d) == arch
    # "stem" is accepted in a hand-written JSON for -1
    d["layers"][5]["skips"] = ["stem", 0, 2]
    assert MacroArch.from_dict(d) == arch


def test_parse_ints_formats() -> None:
    assert parse_ints("0 1 2, 3") == [0, 1, 2, 3]
    assert parse_ints("[0,1,\n2 ,3]") == [0, 1, 2, 3]


@pytest.mark.parametrize("space", ["micro", "macro"])
def test_json_round_trip(tmp_path: Path, space: str) -> None:
    if space == "micro":
        arch, ops, text = (
            MicroArch.from_ints(parse_ints(AUTHORS_MICRO_ARC)),
            AUTHORS_MICRO_OPS,
            AUTHORS_MICRO_ARC,
        )
    else:
        arch, ops, text = MacroArch.from_ints(parse_ints(MACRO_ARC)), AUTHORS_MACRO_OPS, MACRO_ARC
    path = tmp_path / "arch.json"
    save_arch(arch, path, ops, epoch=7)
    d = json.loads(path.read_text())
    assert d["space"] == space and d["ints"] == text and d["epoch"] == 7
    assert load_arch(path, space, ops) == arch
    assert load_arch(str(path), space, ops) == arch
    # the integer string stored in the JSON loads to the same record
    assert load_arch(d["ints"], space, ops) == arch
    # a search run's best_arch.json wraps the record under "arch"
    wrapped = tmp_path / "best_arch.json"
    wrapped.write_text(json.dumps({"reward": 0.9, "arch": d}))
    assert load_arch(wrapped, space, ops) == arch


def test_micro_json_lists_loose_ends(tmp_path: Path) -> None:
    arch = MicroArch.from_ints(parse_ints(AUTHORS_MICRO_ARC))
    d = arch.to_dict()
    assert d["normal_concat"] == [2, 3, 4, 5, 6]
    assert d["reduce_concat"] == [2, 4, 5, 6]


def test_loose_ends_hand_made_cell() -> None:
    # node 2 = f(in0) + g(in0); node 3 = f(node 2) + g(node 2); node 4 = f(in0) + g(node 3).
    # Used: 0, 2, 3.  Loose: input 1 (never used) and node 4.
    cell = MicroCell(
        (
            MicroNode((0, 0), ("identity", "identity")),
            MicroNode((2, 2), ("identity", "sep_conv_3x3")),
            MicroNode((0, 3), ("avg_pool_3x3", "identity")),
        )
    )
    assert cell.loose_ends == (1, 4)
    assert cell.depth == 3  # in0 -> node 2 -> node 3 -> node 4
    # every node used but the last: only the last is loose
    chain = MicroCell(
        (
            MicroNode((0, 1), ("identity", "identity")),
            MicroNode((2, 2), ("identity", "identity")),
        )
    )
    assert chain.loose_ends == (3,)
    assert chain.depth == 2
    wide = MicroCell(tuple(MicroNode((0, 1), ("identity", "identity")) for _ in range(3)))
    assert wide.loose_ends == (2, 3, 4) and wide.depth == 1


def test_records_frozen_hashable_equal_by_value() -> None:
    a = MicroArch.from_ints(parse_ints(AUTHORS_MICRO_ARC))
    b = MicroArch.from_ints(parse_ints(AUTHORS_MICRO_ARC))
    assert a == b and hash(a) == hash(b) and a is not b
    assert len({a, b}) == 1
    m1, m2 = MacroArch.from_ints(parse_ints(MACRO_ARC)), MacroArch.from_ints(parse_ints(MACRO_ARC))
    assert m1 == m2 and hash(m1) == hash(m2) and len({m1, m2}) == 1
    assert m1 != MacroArch.from_ints(macro_arc(seed=5))
    for record, field in (
        (a, "normal"),
        (a.normal, "nodes"),
        (a.normal.nodes[0], "ops"),
        (m1, "layers"),
        (m1.layers[0], "op"),
    ):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(record, field, None)


# --- rejections: each an ArchError whose message names where the problem is ----------------


def micro_ints() -> list[int]:
    return parse_ints(AUTHORS_MICRO_ARC)


def with_value(ints: list[int], pos: int, value: int) -> str:
    out = list(ints)
    out[pos] = value
    return " ".join(map(str, out))


@pytest.mark.parametrize(
    ("space", "ops", "text", "where"),
    [
        # wrong lengths
        ("micro", AUTHORS_MICRO_OPS, "0 1 0 1 0", "5 integers"),
        ("micro", AUTHORS_MICRO_OPS, " ".join(["0"] * 36), "36 integers"),
        ("macro", AUTHORS_MACRO_OPS, " ".join(["0"] * 77), "77 integers"),
        ("macro", AUTHORS_MACRO_OPS, "", "0 integers"),
        # op index out of range: normal cell node 1 op 2 (position 7), reduction node 4 op 1
        ("micro", AUTHORS_MICRO_OPS, with_value(micro_ints(), 7, 5), "normal cell node 1 op 2"),
        ("micro", AUTHORS_MICRO_OPS, with_value(micro_ints(), 37, 9), "reduction cell node 4 op 1"),
        ("micro", AUTHORS_MICRO_OPS, with_value(micro_ints(), 1, -1), "normal cell node 0 op 1"),
        ("macro", AUTHORS_MACRO_OPS, with_value(macro_arc(), 3, 6), "layer 2: op index 6"),
        # input index pointing at itself or a later node
        ("micro", AUTHORS_MICRO_OPS, with_value(micro_ints(), 2, 2), "normal cell node 0 input 2"),
        ("micro", AUTHORS_MICRO_OPS, with_value(micro_ints(), 4, 3), "normal cell node 1 input 1"),
        (
            "micro",
            AUTHORS_MICRO_OPS,
            with_value(micro_ints(), 28, 7),
            "reduction cell node 2 input 1",
        ),
        ("micro", AUTHORS_MICRO_OPS, with_value(micro_ints(), 0, -1), "normal cell node 0 input 1"),
        # macro arc given to the micro space (78 integers)
        ("micro", AUTHORS_MICRO_OPS, MACRO_ARC, "78 integers"),
        # non-integer token
        ("micro", AUTHORS_MICRO_OPS, AUTHORS_MICRO_ARC.replace("4", "x", 1), "'x'"),
        ("macro", AUTHORS_MACRO_OPS, MACRO_ARC + " 1.5", "'1.5'"),
        ("micro", AUTHORS_MICRO_OPS, "0 1 ²", "'²'"),
        # skip bit not 0/1: position 2 is layer 1's skip bit 0 (the stem), position 5 layer 2's
        # bit 1 (layer 0)
        (
            "macro",
            AUTHORS_MACRO_OPS,
            with_value(macro_arc(), 2, 2),
            "layer 1: skip bit 0 (from the stem) is 2",
        ),
        (
            "macro",
            AUTHORS_MACRO_OPS,
            with_value(macro_arc(), 5, -1),
            "layer 2: skip bit 1 (from layer 0) is -1",
        ),
    ],
)
def test_rejects_bad_integer_strings(
    space: str, ops: tuple[str, ...], text: str, where: str
) -> None:
    with pytest.raises(ArchError, match=None) as info:
        load_arch(text, space, ops)
    assert where in str(info.value), str(info.value)
    assert isinstance(info.value, ENASError)


def test_rejects_wrong_size() -> None:
    with pytest.raises(ArchError, match="expected 32"):
        load_arch(AUTHORS_MICRO_ARC, "micro", AUTHORS_MICRO_OPS, size=4)
    with pytest.raises(ArchError, match="search_space.layers=24"):
        load_arch(MACRO_ARC, "macro", AUTHORS_MACRO_OPS, size=24)


def test_rejects_macro_json_as_micro(tmp_path: Path) -> None:
    path = tmp_path / "macro.json"
    save_arch(MacroArch.from_ints(macro_arc()), path, AUTHORS_MACRO_OPS)
    with pytest.raises(ArchError, match="macro search space but search_space=micro"):
        load_arch(path, "micro", AUTHORS_MICRO_OPS)
    # and the other way round
    micro_path = tmp_path / "micro.json"
    save_arch(MicroArch.from_ints(micro_ints()), micro_path, AUTHORS_MICRO_OPS)
    with pytest.raises(ArchError, match="micro search space but search_space=macro"):
        load_arch(micro_path, "macro", AUTHORS_MACRO_OPS)


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        ({"space": "micro", "normal": []}, "'normal' and 'reduce'"),
        ({"space": "micro", "reduce": []}, "'normal' and 'reduce'"),
        (
            {"space": "micro", "normal": [{"inputs": [0, 1]}], "reduce": [{"inputs": [0, 1]}]},
            "normal cell: each node needs",
        ),
        (
            {
                "space": "micro",
                "normal": [{"inputs": [0, 1], "ops": ["identity", "identity"]}],
                "reduce": [{"ops": ["identity", "identity"]}],
            },
            "reduction cell: each node needs",
        ),
        (
            {
                "space": "micro",
                "normal": [{"inputs": [0, 1, 1], "ops": ["identity", "identity"]}],
                "reduce": [{"inputs": [0, 1], "ops": ["identity", "identity"]}],
            },
            "normal cell node 0: 'inputs' must be a list of 2",
        ),
        (
            {
                "space": "micro",
                "normal": [{"inputs": "01", "ops": ["identity", "identity"]}],
                "reduce": [{"inputs": [0, 1], "ops": ["identity", "identity"]}],
            },
            "normal cell node 0: 'inputs' must be a list of 2",
        ),
        ({"space": "micro", "normal": {}, "reduce": []}, "normal cell: expected a list"),
        ({"arch": "0 1 2"}, "must be a JSON object"),
    ],
)
def test_rejects_bad_micro_json(tmp_path: Path, payload: dict, where: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(payload))
    with pytest.raises(ArchError) as info:
        load_arch(path, "micro", AUTHORS_MICRO_OPS)
    assert where in str(info.value), str(info.value)


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        ({"space": "macro"}, "'layers'"),
        ({"space": "macro", "layers": [{"skips": []}]}, "'layers'"),
        (
            {"space": "macro", "layers": [{"op": "conv_3x3", "skips": [0]}]},
            "layer 0: skip from layer 0",
        ),
        (
            {"space": "macro", "layers": [{"op": "conv_3x3", "skips": [-1]}]},
            "layer 0: skip from the stem is not allowed",
        ),
        (
            {"space": "macro", "layers": [{"op": "conv_3x3"}, {"op": "conv_3x3", "skips": [1]}]},
            "layer 1: skip from layer 1",
        ),
        # layer 1's input is layer 0: not a skip (the authors' bits never select it)
        (
            {"space": "macro", "layers": [{"op": "conv_3x3"}, {"op": "conv_3x3", "skips": [0]}]},
            "layer 1: skip from layer 0 is not allowed: the stem (-1); layer 0 is the layer's",
        ),
        (
            {
                "space": "macro",
                "layers": [{"op": "conv_3x3"}] * 3 + [{"op": "conv_3x3", "skips": [-2]}],
            },
            "layer 3: skip from layer -2 is not allowed: the stem (-1) or layers 0..1",
        ),
        (
            {"space": "macro", "layers": [{"op": "conv_3x3"}, {"op": "conv_3x3", "skips": ["x"]}]},
            "skips from -1 (the stem) or earlier layers",
        ),
        ({"space": "macro", "layers": [{"op": "conv_9x9"}]}, "layer 0: op 'conv_9x9'"),
        (
            {"space": "macro", "layers": [{"op": "conv_3x3"}, {"op": "conv_3x3", "skips": "0"}]},
            "layer 1: 'skips' must be a list",
        ),
    ],
)
def test_rejects_bad_macro_json(tmp_path: Path, payload: dict, where: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(payload))
    with pytest.raises(ArchError) as info:
        load_arch(path, "macro", AUTHORS_MACRO_OPS)
    assert where in str(info.value), str(info.value)


def test_rejects_missing_file_and_unknown_space(tmp_path: Path) -> None:
    with pytest.raises(ArchError, match="no such file"):
        load_arch(tmp_path / "nope.json", "micro", AUTHORS_MICRO_OPS)
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    with pytest.raises(ArchError, match="not a readable JSON"):
        load_arch(bad, "micro", AUTHORS_MICRO_OPS)
    with pytest.raises(ArchError, match="search_space='nas'"):
        load_arch(AUTHORS_MICRO_ARC, "nas", AUTHORS_MICRO_OPS)


def test_records_reject_direct_construction_errors() -> None:
    cell = MicroCell((MicroNode((0, 2), ("identity", "identity")),))
    with pytest.raises(ArchError, match="normal cell node 0 input 2"):
        MicroArch(cell, cell).validate()
    with pytest.raises(ArchError, match="reduction cell has 2"):
        MicroArch(cell, MicroCell(cell.nodes * 2)).validate()
    with pytest.raises(ArchError, match="layer 2: skips"):
        MacroArch(
            (MacroLayer("conv_3x3"), MacroLayer("conv_3x3"), MacroLayer("conv_3x3", (0, 0)))
        ).validate()

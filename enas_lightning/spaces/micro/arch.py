"""Micro (cell) architectures.

A cell has 2 input nodes (indices 0 and 1: the outputs of the previous two cells) and B computed
nodes (indices 2 .. B+1). Computed node j = op1(node[in1]) + op2(node[in2]) with in1, in2 < j.
The cell's output is the concatenation of its loose ends: every node, inputs included, that no
computed node uses.

The authors' integer format: per computed node ``in1 op1 in2 op2``; the normal cell's 4B
integers then the reduction cell's 4B (40 for B=5). Op integers index an op vocabulary, by
default the authors' order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from enas_lightning.errors import ArchError

# the authors' op order: their op integers index it (ENAS_REFERENCE.md)
AUTHORS_MICRO_OPS = ("sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3", "identity")

# The cell the authors published (their scripts/cifar10_micro_final.sh, ``fixed_arc``):
# normal cell (5 nodes x "in1 op1 in2 op2"), then the reduction cell
AUTHORS_MICRO_FINAL = (
    "0 2 0 0 0 4 0 1 0 4 1 1 1 0 0 1 0 2 1 1 1 0 1 0 0 3 0 2 1 1 3 1 1 0 0 4 0 3 1 1"
)


@dataclass(frozen=True)
class MicroNode:
    """One computed node: ``ops[0](node[inputs[0]]) + ops[1](node[inputs[1]])``."""

    inputs: tuple[int, int]
    ops: tuple[str, str]


@dataclass(frozen=True)
class MicroCell:
    """A normal or reduction cell: its computed nodes in order."""

    nodes: tuple[MicroNode, ...]

    @property
    def loose_ends(self) -> tuple[int, ...]:
        """Indices (0 .. B+1) of the nodes no computed node uses, ascending."""
        used = {i for node in self.nodes for i in node.inputs}
        return tuple(i for i in range(len(self.nodes) + 2) if i not in used)

    @property
    def depth(self) -> int:
        """Computed nodes on the cell's longest path from an input to its output.

        1 when every node reads only the cell's inputs (a wide cell), B for a chain of all B
        nodes (a deep one). With the loose-end count it describes the cell's shape: on
        Fashion-MNIST, normal cells of depth 4 (of 4 nodes) retrained worse than the rest, and
        uniform cells with a normal cell of depth 1, the shape the ENAS controller drifts to,
        retrained better than uniform cells (experiments/RESULTS.md, issue 20, sixteenth and
        seventeenth rounds).
        """
        level = [0, 0]
        for node in self.nodes:
            level.append(1 + max(level[i] for i in node.inputs))
        return max(level)

    def validate(self, where: str, ops: tuple[str, ...] | None = None) -> None:
        """Raise :class:`ArchError` naming the cell, node and slot of the first problem."""
        if len(self.nodes) < 1:
            raise ArchError(f"{where}: a cell needs at least one computed node")
        for j, node in enumerate(self.nodes):
            if len(node.inputs) != 2 or len(node.ops) != 2:
                raise ArchError(f"{where} node {j}: needs exactly 2 inputs and 2 ops")
            for slot, (i, op) in enumerate(zip(node.inputs, node.ops, strict=True)):
                if not isinstance(i, int) or not 0 <= i < j + 2:
                    raise ArchError(
                        f"{where} node {j} input {slot + 1}: index {i} points at itself or a "
                        f"later node; allowed 0..{j + 1}"
                    )
                if ops is not None and op not in ops:
                    raise ArchError(
                        f"{where} node {j} op {slot + 1}: {op!r} is not in the search space's "
                        f"ops ({', '.join(ops)})"
                    )

    def to_list(self) -> list[dict[str, list]]:
        return [{"inputs": list(n.inputs), "ops": list(n.ops)} for n in self.nodes]

    @classmethod
    def from_list(cls, nodes: list[dict[str, Any]], where: str) -> MicroCell:
        if not isinstance(nodes, list):
            raise ArchError(f"{where}: expected a list of nodes, got {type(nodes).__name__}")
        for j, n in enumerate(nodes):
            # check the shapes first: indexing [0], [1] alone would silently drop a third input
            # and would accept a string such as "01" as two inputs
            for key in ("inputs", "ops"):
                v = n.get(key) if isinstance(n, dict) else None
                if v is not None and (not isinstance(v, list) or len(v) != 2):
                    raise ArchError(f"{where} node {j}: {key!r} must be a list of 2, got {v!r}")
        try:
            return cls(
                tuple(
                    MicroNode(
                        (int(n["inputs"][0]), int(n["inputs"][1])),
                        (str(n["ops"][0]), str(n["ops"][1])),
                    )
                    for n in nodes
                )
            )
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise ArchError(
                f"{where}: each node needs 'inputs': [i, j] and 'ops': [name, name] ({e})"
            ) from None


@dataclass(frozen=True)
class MicroArch:
    """A micro architecture: one normal and one reduction cell with the same node count."""

    normal: MicroCell
    reduce: MicroCell
    space: ClassVar[str] = "micro"

    @property
    def num_nodes(self) -> int:
        return len(self.normal.nodes)

    @property
    def cells(self) -> dict[str, MicroCell]:
        return {"normal": self.normal, "reduce": self.reduce}

    def validate(self, ops: tuple[str, ...] | None = None, num_nodes: int | None = None) -> None:
        if len(self.reduce.nodes) != len(self.normal.nodes):
            raise ArchError(
                f"micro arch: normal cell has {len(self.normal.nodes)} nodes but reduction cell "
                f"has {len(self.reduce.nodes)}"
            )
        if num_nodes is not None and self.num_nodes != num_nodes:
            raise ArchError(
                f"micro arch has {self.num_nodes} nodes per cell but search_space.num_nodes="
                f"{num_nodes}"
            )
        self.normal.validate("normal cell", ops)
        self.reduce.validate("reduction cell", ops)

    # --- the authors' integer format -------------------------------------------------------
    def to_ints(self, ops: tuple[str, ...] = AUTHORS_MICRO_OPS) -> list[int]:
        out: list[int] = []
        for cell in (self.normal, self.reduce):
            for node in cell.nodes:
                for i, op in zip(node.inputs, node.ops, strict=True):
                    if op not in ops:
                        raise ArchError(f"op {op!r} has no integer in the vocabulary {ops}")
                    out += [i, ops.index(op)]
        return out

    @classmethod
    def from_ints(
        cls,
        ints: list[int],
        ops: tuple[str, ...] = AUTHORS_MICRO_OPS,
        num_nodes: int | None = None,
    ) -> MicroArch:
        """Decode and validate the authors' format (``4 * num_nodes`` integers per cell)."""
        n = len(ints)
        if num_nodes is None:
            if n == 0 or n % 8:
                raise ArchError(
                    f"micro arc has {n} integers; expected 8 per node (4 per node and cell), "
                    "e.g. 40 for 5 nodes"
                )
            num_nodes = n // 8
        if n != 8 * num_nodes:
            raise ArchError(
                f"micro arc has {n} integers; expected {8 * num_nodes} "
                f"(2 cells x {num_nodes} nodes x 4)"
            )
        cells = []
        for c, name in enumerate(("normal cell", "reduction cell")):
            nodes = []
            for j in range(num_nodes):
                i1, o1, i2, o2 = ints[(c * num_nodes + j) * 4 : (c * num_nodes + j) * 4 + 4]
                for slot, o in ((1, o1), (2, o2)):
                    if not 0 <= o < len(ops):
                        raise ArchError(
                            f"{name} node {j} op {slot}: op index {o} out of range; allowed "
                            f"0..{len(ops) - 1} ({', '.join(ops)})"
                        )
                nodes.append(MicroNode((i1, i2), (ops[o1], ops[o2])))
            cells.append(MicroCell(tuple(nodes)))
        arch = cls(cells[0], cells[1])
        arch.validate(ops)
        return arch

    # --- JSON ------------------------------------------------------------------------------
    def to_dict(self, ops: tuple[str, ...] = AUTHORS_MICRO_OPS) -> dict[str, Any]:
        d: dict[str, Any] = {
            "space": self.space,
            "normal": self.normal.to_list(),
            "reduce": self.reduce.to_list(),
            "normal_concat": list(self.normal.loose_ends),
            "reduce_concat": list(self.reduce.loose_ends),
        }
        if all(
            op in ops for cell in (self.normal, self.reduce) for n in cell.nodes for op in n.ops
        ):
            d["ops"] = list(ops)
            d["ints"] = " ".join(map(str, self.to_ints(ops)))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MicroArch:
        if d.get("space", "micro") != "micro":
            raise ArchError(f"this is a {d.get('space')} architecture, not a micro one")
        if "normal" not in d or "reduce" not in d:
            raise ArchError("micro arch JSON needs 'normal' and 'reduce' node lists")
        arch = cls(
            MicroCell.from_list(d["normal"], "normal cell"),
            MicroCell.from_list(d["reduce"], "reduction cell"),
        )
        arch.validate()
        return arch

    def __str__(self) -> str:
        def cell(c: MicroCell) -> str:
            nodes = [
                f"{j + 2}=" + "+".join(f"{op}({i})" for i, op in zip(n.inputs, n.ops, strict=True))
                for j, n in enumerate(c.nodes)
            ]
            return "  ".join(nodes) + f"  -> concat{list(c.loose_ends)}"

        return f"normal: {cell(self.normal)}\nreduce: {cell(self.reduce)}"

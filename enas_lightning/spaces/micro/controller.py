"""The micro controller: samples a normal cell, then a reduction cell.

For each computed node it takes four decisions: input 1, input 2 (attention over the anchors of
all earlier nodes of the cell, the two cell inputs included), then op 1, op 2 (softmax over the
op vocabulary). Reduction-cell sampling continues from the LSTM state the normal cell left.
Follows the authors' ``micro_controller.py``: op logits ``c / op_tanh_reduce * tanh(W h + b)``
with ``b`` learnable and initialised ``[10, 10, 0, ...]``, plus the fixed
``[0.25, 0.25, -0.25, ...]`` in the normal cell only.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from enas_lightning.controller.base import Controller, Sample
from enas_lightning.spaces.micro.arch import MicroArch, MicroCell, MicroNode


class MicroController(Controller):
    """Samples ``[n, 2, B, 4]`` decisions (cell, node, ``in1 op1 in2 op2``)."""

    def __init__(
        self,
        ops: tuple[str, ...],
        num_nodes: int = 5,
        lstm_size: int = 64,
        lstm_layers: int = 1,
        tanh_constant: float | None = 1.1,
        op_tanh_reduce: float = 2.5,
        temperature: float | None = None,
        op_bias: bool = True,
        uniform: bool = False,
        lstm_bias: bool = True,
    ) -> None:
        super().__init__(
            ops, lstm_size, lstm_layers, tanh_constant, temperature, uniform, lstm_bias
        )
        self.num_nodes = num_nodes
        self.op_tanh_reduce = op_tanh_reduce
        self.op_bias = op_bias
        k = len(self.ops)
        self.b_soft = nn.Parameter(torch.zeros(1, k))
        # the reference favours the first two ops (its separable convs) at the start
        fixed = torch.tensor([0.25, 0.25] + [-0.25] * (k - 2))[:k]
        self.register_buffer("b_soft_no_learn", fixed.view(1, k), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        with torch.no_grad():
            k = len(self.ops)
            init = torch.tensor([10.0, 10.0] + [0.0] * (k - 2))[:k] if self.op_bias else 0.0
            self.b_soft.copy_(torch.zeros(1, k) + init)

    def forward(
        self,
        n: int = 1,
        arcs: Tensor | None = None,
        greedy: bool = False,
        generator: torch.Generator | None = None,
    ) -> Sample:
        if arcs is not None:
            n = arcs.shape[0]
        b = self.num_nodes
        device = self.g_emb.device
        out = torch.zeros(n, 2, b, 4, dtype=torch.long, device=device)
        log_prob = self.g_emb.new_zeros(n)
        entropy = self.g_emb.new_zeros(n)
        op_probs = []
        state = self.zero_state(n)
        op_c = None if self.tanh_constant is None else self.tanh_constant / self.op_tanh_reduce
        rows = torch.arange(n, device=device)
        for c in range(2):
            g = self.g_emb.expand(n, -1)
            inputs = g
            anchors: list[Tensor] = []
            anchors_w1: list[Tensor] = []
            for _ in range(2):  # the two cell inputs get anchors but no decisions
                h, state = self.step(inputs, state)
                anchors.append(torch.zeros_like(h))
                anchors_w1.append(self.w_attn_1(h))
            for j in range(b):
                keys = torch.stack(anchors_w1, 1)  # [n, j+2, H]
                values = torch.stack(anchors, 1)
                for slot in range(2):  # input decisions
                    h, state = self.step(inputs, state)
                    logits = self.scale(self.attention(keys, h), self.tanh_constant)  # [n, j+2]
                    forced = None if arcs is None else arcs[:, c, j, 2 * slot]
                    idx, lp, ent = self.decide(logits, forced, greedy, generator)
                    out[:, c, j, 2 * slot] = idx
                    log_prob = log_prob + lp
                    entropy = entropy + ent
                    inputs = values[rows, idx]
                for slot in range(2):  # op decisions
                    h, state = self.step(inputs, state)
                    logits = self.scale(self.w_soft(h) + self.b_soft, op_c)
                    if c == 0 and self.op_bias and not self.uniform:
                        logits = logits + self.b_soft_no_learn
                    forced = None if arcs is None else arcs[:, c, j, 2 * slot + 1]
                    op, lp, ent = self.decide(logits, forced, greedy, generator)
                    out[:, c, j, 2 * slot + 1] = op
                    log_prob = log_prob + lp
                    entropy = entropy + ent
                    op_probs.append(torch.softmax(logits, -1).detach())
                    inputs = self.w_emb(op)
                h, state = self.step(inputs, state)
                anchors.append(h)
                anchors_w1.append(self.w_attn_1(h))
                inputs = g
        return Sample(
            arcs=out,
            log_prob=log_prob,
            entropy=entropy,
            penalty=torch.zeros_like(log_prob),
            op_probs=torch.stack(op_probs, 1),
        )

    def op_labels(self) -> list[str]:
        """One label per op decision, in ``Sample.op_probs`` order."""
        return [
            f"{cell}/node{j}/op{slot + 1}"
            for cell in ("normal", "reduce")
            for j in range(self.num_nodes)
            for slot in range(2)
        ]

    def to_archs(self, arcs: Tensor) -> list[MicroArch]:
        rows = arcs.tolist()
        archs = []
        for a in rows:
            cells = [
                MicroCell(
                    tuple(
                        MicroNode((i1, i2), (self.ops[o1], self.ops[o2])) for i1, o1, i2, o2 in cell
                    )
                )
                for cell in a
            ]
            archs.append(MicroArch(cells[0], cells[1]))
        return archs

    def from_archs(self, archs: list[MicroArch]) -> Tensor:
        rows = [
            [
                [
                    [n.inputs[0], self.ops.index(n.ops[0]), n.inputs[1], self.ops.index(n.ops[1])]
                    for n in cell.nodes
                ]
                for cell in (a.normal, a.reduce)
            ]
            for a in archs
        ]
        return torch.tensor(rows, dtype=torch.long, device=self.g_emb.device)

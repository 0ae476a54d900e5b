"""The macro controller: per layer an op, then a yes/no decision per possible skip source.

Follows the authors' ``general_controller.py`` (``_build_sampler``): op logits ``c * tanh(W h)``
(no bias); anchor ``a_j`` is the LSTM output after layer j's op step; layer k >= 1 makes k skip
decisions with attention over the anchors ``a_0 .. a_{k-1}``, ``q_b = v . tanh(W1 a_b + W2 h)``,
an independent two-way choice per bit from the logits ``[-q_b, q_b]`` (scaled by ``c * tanh``);
the next input is the mean of the chosen anchors. Skip bit b selects what the child builds from
it (``general_child._model``): the stem for b = 0, layer b - 1 for b >= 1, i.e. layer b's input.
So the anchor of bit b is layer b's state (the layer that reads that source), as in the authors'
code; layer k-1, whose output is layer k's own input, has no bit.

The skip penalty pulls the skip probability towards ``skip_target``:
``KL(Bernoulli(p_b) || Bernoulli(skip_target))`` summed over a layer's skip bits ``b`` and averaged
over the layers. ``p_b`` is the probability with which the skip is actually sampled (the
reference applied a sigmoid to the pre-softmax logit, which is not quite that probability).
"""

from __future__ import annotations

import torch
from torch import Tensor

from enas_lightning.controller.base import Controller, Sample
from enas_lightning.spaces.macro.arch import MacroArch, MacroLayer, bit_source, source_bit


class MacroController(Controller):
    """Samples ``[n, L, L + 1]`` decisions: column 0 the op, column ``1 + b`` skip bit ``b``.

    Bit ``b`` of layer ``i`` (``b < i``) is the authors' bit: a skip from the stem (b = 0) or from
    layer ``b - 1``; :meth:`to_archs` turns it into the record's source ``b - 1`` (-1: the stem).
    """

    def __init__(
        self,
        ops: tuple[str, ...],
        num_layers: int = 12,
        lstm_size: int = 64,
        lstm_layers: int = 1,
        tanh_constant: float | None = 1.5,
        temperature: float | None = None,
        skip_target: float = 0.4,
        uniform: bool = False,
    ) -> None:
        super().__init__(ops, lstm_size, lstm_layers, tanh_constant, temperature, uniform)
        self.num_layers = num_layers
        self.skip_target = skip_target
        self.reset_parameters()

    def forward(
        self,
        n: int = 1,
        arcs: Tensor | None = None,
        greedy: bool = False,
        generator: torch.Generator | None = None,
    ) -> Sample:
        if arcs is not None:
            n = arcs.shape[0]
        big_l = self.num_layers
        out = torch.zeros(n, big_l, big_l + 1, dtype=torch.long, device=self.g_emb.device)
        log_prob = self.g_emb.new_zeros(n)
        entropy = self.g_emb.new_zeros(n)
        penalty = self.g_emb.new_zeros(n)
        op_probs = []
        state = self.zero_state(n)
        g = self.g_emb.expand(n, -1)
        inputs = g
        anchors: list[Tensor] = []
        anchors_w1: list[Tensor] = []
        t = self.skip_target
        for layer in range(big_l):
            h, state = self.step(inputs, state)
            logits = self.scale(self.w_soft(h), self.tanh_constant)
            forced = None if arcs is None else arcs[:, layer, 0]
            op, lp, ent = self.decide(logits, forced, greedy, generator)
            out[:, layer, 0] = op
            log_prob, entropy = log_prob + lp, entropy + ent
            op_probs.append(torch.softmax(logits, -1).detach())
            h, state = self.step(self.w_emb(op), state)
            if layer > 0:
                keys = torch.stack(anchors_w1, 1)  # [n, layer, H]
                q = self.attention(keys, h)
                logits = self.scale(torch.stack([-q, q], -1), self.tanh_constant)  # [n, layer, 2]
                forced = None if arcs is None else arcs[:, layer, 1 : 1 + layer]
                skip, lp, ent = self.decide(logits, forced, greedy, generator)
                out[:, layer, 1 : 1 + layer] = skip
                log_prob = log_prob + lp.sum(-1)
                entropy = entropy + ent.sum(-1)
                p = torch.softmax(logits, -1)[..., 1].clamp(1e-6, 1 - 1e-6)
                kl = p * torch.log(p / t) + (1 - p) * torch.log((1 - p) / (1 - t))
                penalty = penalty + kl.sum(-1) / (big_l - 1)
                chosen = skip.to(h.dtype)
                values = torch.stack(anchors, 1)
                inputs = (chosen.unsqueeze(1) @ values).squeeze(1) / (1.0 + chosen.sum(-1, True))
            else:
                inputs = g
            anchors.append(h)
            anchors_w1.append(self.w_attn_1(h))
        return Sample(out, log_prob, entropy, penalty, torch.stack(op_probs, 1))

    def op_labels(self) -> list[str]:
        return [f"layer{i}" for i in range(self.num_layers)]

    def to_archs(self, arcs: Tensor) -> list[MacroArch]:
        archs = []
        for a in arcs.tolist():
            archs.append(
                MacroArch(
                    tuple(
                        MacroLayer(
                            self.ops[row[0]], tuple(bit_source(b) for b in range(i) if row[1 + b])
                        )
                        for i, row in enumerate(a)
                    )
                )
            )
        return archs

    def from_archs(self, archs: list[MacroArch]) -> Tensor:
        big_l = self.num_layers
        out = torch.zeros(len(archs), big_l, big_l + 1, dtype=torch.long)
        for k, a in enumerate(archs):
            for i, layer in enumerate(a.layers):
                out[k, i, 0] = self.ops.index(layer.op)
                for j in layer.skips:
                    out[k, i, 1 + source_bit(j)] = 1
        return out.to(self.g_emb.device)

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
over the layers (:func:`skip_kl`). With ``skip_penalty="sampled"`` (default) ``p_b`` is the
probability with which the skip is actually sampled, ``softmax([-l, l])[1] = sigmoid(2 l)``;
with ``"authors"`` it is ``sigmoid(l)``, as the reference computes it, so the penalty's optimum
samples skips at ``sigmoid(2 logit(skip_target))`` (about 0.31 for 0.4), not at the target.

``entropy="full"`` (default) sums each decision's entropy; ``"chosen"`` only the chosen value's
term ``-p log p`` (the reference's macro ``sample_entropy``: ``log_prob * exp(-log_prob)``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from enas_lightning.controller.base import Controller, Sample
from enas_lightning.spaces.macro.arch import MacroArch, MacroLayer, bit_source, source_bit

SKIP_PENALTIES = ("sampled", "authors")
ENTROPIES = ("full", "chosen")


def skip_kl(logits: Tensor, target: float, mode: str = "sampled") -> Tensor:
    """``KL(Bernoulli(p) || Bernoulli(target))`` per skip bit, from its logits ``[..., 2]``
    (``[-l, l]``, no-skip then skip) -> ``[...]``.

    ``mode="sampled"``: ``p = softmax(logits)[..., 1]``, the probability the skip is sampled
    with. ``"authors"``: ``p = sigmoid(l)`` (``general_controller.py``, ``_build_sampler``:
    ``skip_prob = tf.sigmoid(logit)``), while the skip is sampled with ``sigmoid(2 l)``.
    """
    if mode == "authors":
        p = torch.sigmoid(logits[..., 1])
    else:
        p = torch.softmax(logits, -1)[..., 1]
    p = p.clamp(1e-6, 1 - 1e-6)
    return p * torch.log(p / target) + (1 - p) * torch.log((1 - p) / (1 - target))


def chosen_entropy(log_prob: Tensor) -> Tensor:
    """The chosen value's term of the entropy, ``-p log p`` from its log-probability (any
    shape), without gradient: the reference's ``tf.stop_gradient(log_prob * tf.exp(-log_prob))``
    with its ``log_prob = -log p``."""
    return -(log_prob * log_prob.exp()).detach()


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
        lstm_bias: bool = True,
        skip_penalty: str = "sampled",
        entropy: str = "full",
    ) -> None:
        super().__init__(
            ops, lstm_size, lstm_layers, tanh_constant, temperature, uniform, lstm_bias
        )
        if skip_penalty not in SKIP_PENALTIES:
            raise ValueError(f"skip_penalty {skip_penalty!r}: one of {', '.join(SKIP_PENALTIES)}")
        if entropy not in ENTROPIES:
            raise ValueError(f"entropy {entropy!r}: one of {', '.join(ENTROPIES)}")
        self.num_layers = num_layers
        self.skip_target = skip_target
        self.skip_penalty = skip_penalty
        self.entropy = entropy
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
            if self.entropy == "chosen":
                ent = chosen_entropy(lp)
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
                if self.entropy == "chosen":
                    ent = chosen_entropy(lp)
                out[:, layer, 1 : 1 + layer] = skip
                log_prob = log_prob + lp.sum(-1)
                entropy = entropy + ent.sum(-1)
                kl = skip_kl(logits, t, self.skip_penalty)
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

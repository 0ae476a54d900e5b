"""What the two controllers share: the stacked LSTM, the decision sampler, the output record.

Every architecture is sampled as a sequence of categorical decisions; each decision's logits come
from the LSTM's top hidden state and the chosen value is fed back as the next input. All
decisions of ``n`` architectures are taken in one batched pass (the batch dimension is the
architecture), so sampling 100 architectures costs about as much as sampling one.

Passing ``arcs`` teacher-forces the decisions instead of sampling them; this is how log
probabilities of given architectures are recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F


@dataclass
class Sample:
    """``n`` sampled architectures.

    ``arcs``: the decisions as integers, laid out by the space's controller (``[n, 2, B, 4]``
    for the cell space, ``[n, L, L + 1]`` for the whole-network space);
    ``log_prob`` and ``entropy``: ``[n]``, summed over decisions (``log_prob`` carries gradients);
    ``penalty``: ``[n]`` extra loss per architecture (a skip penalty, else zeros);
    ``op_probs``: ``[n, D, num_ops]`` probabilities of each op decision (for plots).
    """

    arcs: Tensor
    log_prob: Tensor
    entropy: Tensor
    penalty: Tensor
    op_probs: Tensor


class Controller(nn.Module):
    """Base class: LSTM cells, a learned start input, and the categorical decision step.

    Args:
        ops: the op vocabulary, in the order of the integer encoding.
        lstm_size: hidden units (64 in the paper).
        lstm_layers: stacked LSTM layers.
        tanh_constant: ``c`` in ``logits = c * tanh(logits)``, bounding the logits; ``None`` off.
        temperature: divides the logits before the tanh; ``None`` off.
        uniform: sample every decision uniformly and never learn (the random-search baseline):
            the logits are zeros, so probabilities, log-probabilities and entropies stay exact.
        lstm_bias: the LSTM cells' biases (``nn.LSTMCell``'s); the authors' LSTM
            (``common_ops.lstm``) has none: ``False``.
    """

    def __init__(
        self,
        ops: tuple[str, ...],
        lstm_size: int = 64,
        lstm_layers: int = 1,
        tanh_constant: float | None = 1.1,
        temperature: float | None = None,
        uniform: bool = False,
        lstm_bias: bool = True,
    ) -> None:
        super().__init__()
        self.ops = tuple(ops)
        self.lstm_size = lstm_size
        self.tanh_constant = tanh_constant
        self.temperature = temperature
        self.uniform = uniform
        self.lstm = nn.ModuleList(
            nn.LSTMCell(lstm_size, lstm_size, bias=lstm_bias) for _ in range(lstm_layers)
        )
        self.g_emb = nn.Parameter(torch.empty(1, lstm_size))
        # op decisions: softmax classifier over the ops, the choice embedded as the next input
        self.w_emb = nn.Embedding(len(self.ops), lstm_size)
        self.w_soft = nn.Linear(lstm_size, len(self.ops), bias=False)
        # input/skip decisions: attention over one anchor per earlier node or layer,
        # q_j = v . tanh(W1 a_j + W2 h)
        self.w_attn_1 = nn.Linear(lstm_size, lstm_size, bias=False)
        self.w_attn_2 = nn.Linear(lstm_size, lstm_size, bias=False)
        self.v_attn = nn.Linear(lstm_size, 1, bias=False)

    def attention(self, keys: Tensor, h: Tensor) -> Tensor:
        """Scores ``[n, m]`` of ``m`` anchors (``keys = W1 a``: ``[n, m, H]``) for state ``h``."""
        return self.v_attn(torch.tanh(keys + self.w_attn_2(h).unsqueeze(1))).squeeze(-1)

    def reset_parameters(self) -> None:
        """The reference initialises every controller weight uniformly in [-0.1, 0.1]."""
        for p in self.parameters():
            nn.init.uniform_(p, -0.1, 0.1)

    def zero_state(self, n: int) -> list[tuple[Tensor, Tensor]]:
        z = self.g_emb.new_zeros(n, self.lstm_size)
        return [(z, z) for _ in self.lstm]

    def step(
        self, x: Tensor, state: list[tuple[Tensor, Tensor]]
    ) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        """One LSTM step: ``x [n, H]`` -> top hidden state ``[n, H]`` and the new state."""
        new = []
        for cell, (h, c) in zip(self.lstm, state, strict=True):
            h, c = cell(x, (h, c))
            new.append((h, c))
            x = h
        return x, new

    def scale(self, logits: Tensor, tanh_constant: float | None) -> Tensor:
        """Temperature then ``c * tanh``; zeros when sampling uniformly."""
        if self.uniform:
            return torch.zeros_like(logits)
        if self.temperature is not None:
            logits = logits / self.temperature
        if tanh_constant is not None:
            logits = tanh_constant * torch.tanh(logits)
        return logits

    @staticmethod
    def decide(
        logits: Tensor,
        forced: Tensor | None,
        greedy: bool,
        generator: torch.Generator | None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Pick one value per row of ``logits [..., K]``.

        Returns the choice ``[...]`` (long), its log-probability and the entropy ``[...]``.
        """
        log_p = F.log_softmax(logits, dim=-1)
        if forced is not None:
            choice = forced
        elif greedy:
            choice = log_p.argmax(dim=-1)
        else:
            flat = log_p.detach().exp().reshape(-1, log_p.shape[-1])
            choice = torch.multinomial(flat, 1, generator=generator).view(log_p.shape[:-1])
        chosen = log_p.gather(-1, choice.unsqueeze(-1)).squeeze(-1)
        entropy = -(log_p.exp() * log_p).sum(-1)
        return choice, chosen, entropy

    def forward(
        self,
        n: int = 1,
        arcs: Tensor | None = None,
        greedy: bool = False,
        generator: torch.Generator | None = None,
    ) -> Sample:
        raise NotImplementedError

    def op_labels(self) -> list[str]:
        """One label per op decision, in ``Sample.op_probs`` order (for the plots)."""
        raise NotImplementedError

    def to_archs(self, arcs: Tensor) -> list:
        """Integer decisions -> architecture records."""
        raise NotImplementedError

    def from_archs(self, archs: list) -> Tensor:
        """Architecture records -> integer decisions (for teacher forcing)."""
        raise NotImplementedError

    @torch.no_grad()
    def sample_archs(
        self,
        n: int,
        generator: torch.Generator | None = None,
        greedy: bool = False,
        uniform: bool = False,
    ) -> list:
        """Sample ``n`` architectures as records, without building a graph.

        ``uniform``: sample from the uniform distribution over the space (every decision
        uniform, as ``controller=random`` samples) whatever the controller has learned; the
        supernet warm-up and the derivation's random reference use it.
        """
        was, self.uniform = self.uniform, self.uniform or uniform
        try:
            return self.to_archs(self(n, greedy=greedy, generator=generator).arcs)
        finally:
            self.uniform = was

"""The micro and macro controllers: valid samples, exact log-probabilities and entropies,
logit bounds, temperature, greedy decoding, batched sampling, biases, LSTM state, skip penalty,
and learning: REINFORCE moves probability to a rewarded decision, the skip penalty pulls the
skip rate to its target (both through ``SearchModule.controller_step``)."""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from enas_lightning.search.module import SearchModule
from enas_lightning.spaces.macro.arch import STEM
from enas_lightning.spaces.macro.controller import MacroController, skip_kl
from enas_lightning.spaces.macro.ops import AUTHORS_MACRO_OPS
from enas_lightning.spaces.micro.controller import MicroController
from enas_lightning.spaces.micro.ops import AUTHORS_MICRO_OPS

MICRO_K = len(AUTHORS_MICRO_OPS)
MACRO_K = len(AUTHORS_MACRO_OPS)


def micro(**kw) -> MicroController:
    torch.manual_seed(kw.pop("seed", 0))
    kw.setdefault("num_nodes", 3)
    return MicroController(AUTHORS_MICRO_OPS, lstm_size=16, **kw)


def macro(**kw) -> MacroController:
    torch.manual_seed(kw.pop("seed", 0))
    kw.setdefault("num_layers", 5)
    kw.setdefault("tanh_constant", 1.5)
    return MacroController(AUTHORS_MACRO_OPS, lstm_size=16, **kw)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


BOTH = pytest.mark.parametrize("make", [micro, macro], ids=["micro", "macro"])


# --- samples ------------------------------------------------------------------------------------
def test_micro_samples_are_valid() -> None:
    ctrl = micro(num_nodes=4)
    s = ctrl(100, generator=gen())
    assert s.arcs.shape == (100, 2, 4, 4)
    node = torch.arange(4).view(1, 1, 4)
    for slot in (0, 2):  # input indices: 0 .. node + 1 (the 2 cell inputs count)
        assert (s.arcs[..., slot] >= 0).all() and (s.arcs[..., slot] < node + 2).all()
    for slot in (1, 3):
        assert (s.arcs[..., slot] >= 0).all() and (s.arcs[..., slot] < MICRO_K).all()
    # the last node can read every earlier node, and does in some sample
    assert (s.arcs[:, :, 3, 0] == 4).any()
    for arch in ctrl.to_archs(s.arcs):
        arch.validate(AUTHORS_MICRO_OPS, num_nodes=4)
    assert torch.equal(ctrl.from_archs(ctrl.to_archs(s.arcs)), s.arcs)


def test_macro_samples_are_valid() -> None:
    ctrl = macro(num_layers=6)
    s = ctrl(200, generator=gen())
    assert s.arcs.shape == (200, 6, 7)
    assert ((s.arcs[:, :, 0] >= 0) & (s.arcs[:, :, 0] < MACRO_K)).all()
    # layer i has i skip bits: column 1 + b of layer i is 0 unless b < i
    upper = torch.ones(6, 6, dtype=torch.bool).triu()  # b >= i
    assert (s.arcs[:, :, 1:][:, upper] == 0).all()
    assert set(s.arcs[:, :, 1:].unique().tolist()) == {0, 1}
    archs = ctrl.to_archs(s.arcs)
    for arc, arch in zip(s.arcs.tolist(), archs, strict=True):
        arch.validate(AUTHORS_MACRO_OPS, num_layers=6)
        # the authors' bits: b = 0 the stem, b >= 1 layer b - 1; the same integers as their codec
        for i, layer in enumerate(arch.layers):
            assert layer.skips == tuple(b - 1 for b in range(i) if arc[i][1 + b])
        assert arch.to_ints() == [x for i, row in enumerate(arc) for x in row[: 1 + i]]
    assert any(STEM in layer.skips for arch in archs for layer in arch.layers)
    assert torch.equal(ctrl.from_archs(archs), s.arcs)


# --- log-probabilities -------------------------------------------------------------------------
@BOTH
def test_teacher_forcing_reproduces_sampled_log_prob(make) -> None:
    ctrl = make()
    s = ctrl(16, generator=gen(1))
    forced = ctrl(arcs=s.arcs)
    assert torch.equal(forced.arcs, s.arcs)
    torch.testing.assert_close(forced.log_prob, s.log_prob)
    torch.testing.assert_close(forced.entropy, s.entropy)
    torch.testing.assert_close(forced.penalty, s.penalty)
    # rows are independent: each architecture forced alone gives the same numbers
    for k in (0, 7, 15):
        alone = ctrl(arcs=s.arcs[k : k + 1])
        torch.testing.assert_close(alone.log_prob, s.log_prob[k : k + 1])
    assert (s.log_prob < 0).all() and s.log_prob.requires_grad


def all_micro_arcs(num_nodes: int, k: int) -> torch.Tensor:
    """Every ``[2, B, 4]`` decision tensor of a micro space with ``k`` ops."""
    per_node = [
        list(itertools.product(range(j + 2), range(k), range(j + 2), range(k)))
        for j in range(num_nodes)
    ]
    cells = list(itertools.product(*per_node))
    arcs = [[list(map(list, a)), list(map(list, b))] for a in cells for b in cells]
    return torch.tensor(arcs)


def all_macro_arcs(num_layers: int, k: int) -> torch.Tensor:
    rows = []
    for ops in itertools.product(range(k), repeat=num_layers):
        bits_per_layer = [list(itertools.product((0, 1), repeat=i)) for i in range(num_layers)]
        for bits in itertools.product(*bits_per_layer):
            arc = torch.zeros(num_layers, num_layers + 1, dtype=torch.long)
            for i in range(num_layers):
                arc[i, 0] = ops[i]
                arc[i, 1 : 1 + i] = torch.tensor(bits[i], dtype=torch.long)
            rows.append(arc)
    return torch.stack(rows)


@pytest.mark.parametrize("space", ["micro", "macro"])
def test_log_probs_are_a_distribution_matching_sampling_frequencies(space: str) -> None:
    """Independent check of the log-probability on a space small enough to enumerate: the
    probabilities of all architectures sum to 1, and sampling frequencies match them."""
    if space == "micro":
        torch.manual_seed(0)
        ctrl = MicroController(
            ("sep_conv_3x3", "max_pool_3x3"), num_nodes=1, lstm_size=8, tanh_constant=None
        )
        every = all_micro_arcs(1, 2)  # (2 * 2 * 2 * 2) ** 2 = 256
        # no tanh bound and larger weights: the distribution is far from uniform
        with torch.no_grad():
            for p in ctrl.parameters():
                p.mul_(10)
    else:
        torch.manual_seed(0)
        ctrl = MacroController(
            ("conv_3x3", "max_pool_3x3"), num_layers=3, lstm_size=8, tanh_constant=None
        )
        every = all_macro_arcs(3, 2)  # 2**3 ops * 2**3 skip bits = 64
        with torch.no_grad():
            for p in ctrl.parameters():
                p.mul_(10)
    with torch.no_grad():
        p = ctrl(arcs=every).log_prob.exp()
    assert len(set(map(tuple, every.flatten(1).tolist()))) == len(every)
    torch.testing.assert_close(p.sum(), torch.tensor(1.0), atol=1e-5, rtol=0)
    assert p.max() > 3 / len(every)  # not uniform, so the check below means something
    n = 10000
    with torch.no_grad():
        s = ctrl(n, generator=gen(3))
    index = {tuple(a): i for i, a in enumerate(every.flatten(1).tolist())}
    counts = torch.zeros(len(every))
    for a in s.arcs.flatten(1).tolist():
        counts[index[tuple(a)]] += 1
    freq = counts / n
    # binomial standard error; 5 sigma per cell
    tol = 5 * (p * (1 - p) / n).sqrt() + 1e-3
    assert ((freq - p).abs() <= tol).all()
    # the sampled log-probabilities are those of the enumeration
    torch.testing.assert_close(
        s.log_prob.exp(), p[[index[tuple(a)] for a in s.arcs.flatten(1).tolist()]]
    )


def test_macro_log_prob_splits_into_op_and_skip_terms() -> None:
    """With the skip attention switched off (v = 0) every skip is a fair coin, so the
    log-probability is the ops' log-probabilities (from ``op_probs``) plus n_skips * log(1/2)."""
    ctrl = macro(num_layers=4)
    with torch.no_grad():
        ctrl.v_attn.weight.zero_()
    s = ctrl(8, generator=gen())
    ops = s.arcs[:, :, 0]
    op_lp = s.op_probs.gather(-1, ops.unsqueeze(-1)).squeeze(-1).log().sum(1)
    n_skip_decisions = 4 * 3 // 2
    torch.testing.assert_close(s.log_prob, op_lp + n_skip_decisions * math.log(0.5))


# --- entropy, bounds, temperature, greedy --------------------------------------------------------
def test_uniform_entropy_is_maximal() -> None:
    b = 3
    ctrl = micro(num_nodes=b, uniform=True)
    s = ctrl(5, generator=gen())
    per_cell = sum(2 * math.log(j + 2) + 2 * math.log(MICRO_K) for j in range(b))
    torch.testing.assert_close(s.entropy, torch.full((5,), 2 * per_cell))
    torch.testing.assert_close(s.log_prob, torch.full((5,), -2 * per_cell))
    big_l = 5
    ctrl = macro(num_layers=big_l, uniform=True)
    s = ctrl(5, generator=gen())
    maximal = big_l * math.log(MACRO_K) + (big_l * (big_l - 1) // 2) * math.log(2)
    torch.testing.assert_close(s.entropy, torch.full((5,), maximal))
    # a learning controller is below the maximum, never negative
    for make, top in ((micro, 2 * per_cell), (macro, maximal)):
        s = make()(50, generator=gen())
        assert (s.entropy >= 0).all() and (s.entropy < top).all()


@BOTH
def test_tanh_constant_bounds_the_logits(make) -> None:
    ctrl = make()
    huge = torch.tensor([[-1e4, -3.0, 0.0, 3.0, 1e4]])
    for c in (0.5, 1.1, 2.5):
        out = ctrl.scale(huge, c)
        assert out.abs().max() <= c + 1e-6
        assert out.abs().max() > 0.99 * c
    # through sampling: blow the weights up; op log-odds stay within the bound
    with torch.no_grad():
        for p in ctrl.parameters():
            p.mul_(1000)
    probs = ctrl(20, generator=gen()).op_probs
    log_odds = probs.log().amax(-1) - probs.log().amin(-1)
    if isinstance(ctrl, MicroController):
        c = ctrl.tanh_constant / ctrl.op_tanh_reduce
        bound = 2 * c + 0.5  # plus the fixed normal-cell bias (+0.25 vs -0.25)
    else:
        bound = 2 * ctrl.tanh_constant
    assert log_odds.max() <= bound + 1e-4


@BOTH
def test_higher_temperature_gives_higher_entropy(make) -> None:
    arcs = make()(8, generator=gen()).arcs
    ent = [make(temperature=t)(arcs=arcs).entropy for t in (None, 5.0, 100.0)]
    assert (ent[1] > ent[0]).all() and (ent[2] > ent[1]).all()


@BOTH
def test_greedy_is_deterministic_argmax(make) -> None:
    ctrl = make()
    a = ctrl(3, greedy=True, generator=gen(1))
    b = ctrl(1, greedy=True, generator=gen(2))
    assert torch.equal(a.arcs, b.arcs.expand_as(a.arcs))
    # every op decision is the most likely op given the decisions before it
    ops = a.arcs[..., 1::2].flatten(1) if isinstance(ctrl, MicroController) else a.arcs[..., 0]
    assert torch.equal(ops, a.op_probs.argmax(-1))
    # and its log-probability is the maximal per-decision one: no sample of the same prefix beats
    # it decision by decision; in total it beats the typical sample
    samples = ctrl(200, generator=gen(3))
    assert a.log_prob[0] >= samples.log_prob.median()
    assert ctrl.sample_archs(1, greedy=True) == ctrl.to_archs(a.arcs[:1])


def test_batched_sampling_matches_one_at_a_time() -> None:
    ctrl = micro(num_nodes=1)
    # op frequencies of normal node 0, op 1: one batched call vs many single calls
    with torch.no_grad():
        batch = ctrl(3000, generator=gen(0)).arcs[:, 0, 0, 1]
        g = gen(1)
        single = torch.cat([ctrl(1, generator=g).arcs[:, 0, 0, 1] for _ in range(200)])
    fb = torch.bincount(batch, minlength=MICRO_K).float() / len(batch)
    fs = torch.bincount(single, minlength=MICRO_K).float() / len(single)
    se = (fb * (1 - fb) / len(single)).sqrt()
    assert ((fb - fs).abs() <= 5 * se + 0.01).all()
    # and the same seed gives the same samples
    assert torch.equal(ctrl(10, generator=gen(5)).arcs, ctrl(10, generator=gen(5)).arcs)
    assert not torch.equal(ctrl(10, generator=gen(5)).arcs, ctrl(10, generator=gen(6)).arcs)


# --- micro specifics ---------------------------------------------------------------------------
def test_micro_op_bias_init_and_fixed_normal_bias() -> None:
    ctrl = micro()
    torch.testing.assert_close(ctrl.b_soft.data, torch.tensor([[10.0, 10.0, 0.0, 0.0, 0.0]]))
    fixed = torch.tensor([[0.25, 0.25, -0.25, -0.25, -0.25]])
    torch.testing.assert_close(ctrl.b_soft_no_learn, fixed)
    assert not any(p is ctrl.b_soft_no_learn for p in ctrl.parameters())
    # with the op projection at zero the op logits are the biases alone
    with torch.no_grad():
        ctrl.w_soft.weight.zero_()
    s = ctrl(4, generator=gen())
    c = 1.1 / 2.5
    reduce = c * torch.tanh(torch.tensor([10.0, 10.0, 0.0, 0.0, 0.0]))
    normal = reduce + fixed[0]
    b = ctrl.num_nodes
    torch.testing.assert_close(s.op_probs[:, : 2 * b], normal.softmax(-1).expand(4, 2 * b, -1))
    torch.testing.assert_close(s.op_probs[:, 2 * b :], reduce.softmax(-1).expand(4, 2 * b, -1))
    # sep convs favoured at the start, but everything still has a real chance
    assert 0.1 < normal.softmax(-1)[3] < normal.softmax(-1)[0]
    # op_bias=False: no learnable nor fixed bias
    plain = micro(op_bias=False)
    assert (plain.b_soft == 0).all()


def test_reduction_cell_continues_from_the_normal_cells_state() -> None:
    ctrl = micro()
    with torch.no_grad():  # larger weights: influence survives the ~20 LSTM steps in between
        for p in ctrl.parameters():
            p.mul_(8)
    arcs = ctrl(1, generator=gen()).arcs
    b = ctrl.num_nodes
    base = ctrl(arcs=arcs).op_probs[0, 2 * b :]
    last = b - 1
    ops_changed = arcs.clone()  # the normal cell's last op
    ops_changed[0, 0, last, 3] = (arcs[0, 0, last, 3] + 1) % MICRO_K
    input_changed = arcs.clone()  # the last node's first input: a computed node vs a cell input
    input_changed[0, 0, last, 0] = 2 if arcs[0, 0, last, 0] != 2 else 0
    for other in (ops_changed, input_changed):
        changed = ctrl(arcs=other).op_probs[0, 2 * b :]
        assert (changed - base).abs().max() > 1e-6


# --- macro skip penalty ------------------------------------------------------------------------
def test_macro_skip_penalty_is_kl_to_the_target() -> None:
    ctrl = macro(num_layers=5)
    s = ctrl(10, generator=gen())
    assert (s.penalty >= 0).all()
    # v = 0 makes every skip probability exactly 1/2
    with torch.no_grad():
        ctrl.v_attn.weight.zero_()
    ctrl.skip_target = 0.5
    assert ctrl(10, generator=gen()).penalty.abs().max() < 1e-6
    ctrl.skip_target = 0.4
    kl = 0.5 * math.log(0.5 / 0.4) + 0.5 * math.log(0.5 / 0.6)
    # summed over the earlier layers, averaged over the L - 1 layers that have skips
    expected = kl * (5 * 4 / 2) / 4
    torch.testing.assert_close(ctrl(3, generator=gen()).penalty, torch.full((3,), expected))
    assert (micro()(3).penalty == 0).all()


def _optimise_skip_logit(mode: str, target: float) -> float:
    """The sampling probability ``softmax([-l, l])[1]`` at the minimum of the penalty alone
    over a free logit ``l``."""
    logit = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([logit], lr=0.5, max_iter=200, tolerance_grad=1e-10)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = skip_kl(torch.stack([-logit, logit], -1), target, mode).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return float(torch.softmax(torch.stack([-logit, logit], -1), -1)[0, 1])


def test_skip_penalty_optimum_samples_the_target_or_the_authors_rate() -> None:
    # sampled (default): the penalty's optimum samples skips at the target
    assert _optimise_skip_logit("sampled", 0.4) == pytest.approx(0.4, abs=1e-4)
    # authors: KL of sigmoid(l) against the target while skips are sampled with sigmoid(2 l),
    # so the optimum l = logit(0.4) samples at sigmoid(2 logit(0.4)) = 0.3077
    authors_rate = 1 / (1 + (0.6 / 0.4) ** 2)
    assert authors_rate == pytest.approx(0.3077, abs=1e-4)
    assert _optimise_skip_logit("authors", 0.4) == pytest.approx(authors_rate, abs=1e-4)
    # at l = 0 both are KL(1/2 || target)
    zero = torch.zeros(2)
    assert float(skip_kl(zero, 0.4, "authors")) == pytest.approx(float(skip_kl(zero, 0.4)))


@pytest.mark.parametrize("mode,rate", [("sampled", 0.4), ("authors", 0.3077)])
def test_controller_trained_on_its_skip_penalty_alone_samples_that_rate(mode, rate) -> None:
    """The penalty through the controller (every weight free, Adam): the skip rate it samples
    at the penalty's optimum under each ``skip_penalty`` setting."""
    ctrl = macro(num_layers=4, skip_penalty=mode)
    opt = torch.optim.Adam(ctrl.parameters(), lr=0.02)
    for k in range(150):
        opt.zero_grad()
        ctrl(32, generator=gen(k)).penalty.mean().backward()
        opt.step()
    with torch.no_grad():
        arcs = ctrl(4000, generator=gen(999)).arcs
    assert float(arcs[:, :, 1:].sum()) / (4000 * 6) == pytest.approx(rate, abs=0.02)


def test_skip_penalty_setting_changes_only_the_penalty() -> None:
    sampled, authors = macro(), macro(skip_penalty="authors")
    a, b = sampled(16, generator=gen(3)), authors(16, generator=gen(3))
    assert torch.equal(a.arcs, b.arcs)
    torch.testing.assert_close(a.log_prob, b.log_prob)
    assert (b.penalty >= 0).all() and (a.penalty - b.penalty).abs().max() > 1e-4
    with pytest.raises(ValueError, match="skip_penalty"):
        macro(skip_penalty="sigmoid")


def test_macro_chosen_entropy_is_the_authors_sampled_term() -> None:
    """``entropy="chosen"``: per decision only ``-p log p`` of the chosen value (the authors'
    macro ``log_prob * exp(-log_prob)``); exact for the uniform controller."""
    big_l = 5
    s = macro(num_layers=big_l, uniform=True, entropy="chosen")(4, generator=gen())
    skips = big_l * (big_l - 1) // 2
    expected = big_l * math.log(MACRO_K) / MACRO_K + skips * math.log(2) / 2
    torch.testing.assert_close(s.entropy, torch.full((4,), expected))
    full, chosen = macro(), macro(entropy="chosen")
    a, b = full(8, generator=gen(2)), chosen(8, generator=gen(2))
    assert torch.equal(a.arcs, b.arcs) and (b.entropy > 0).all() and (b.entropy < a.entropy).all()
    assert not b.entropy.requires_grad  # the authors' stop_gradient
    with pytest.raises(ValueError, match="entropy"):
        macro(entropy="sampled")


# --- LSTM biases --------------------------------------------------------------------------------
@BOTH
def test_lstm_without_biases_as_the_authors(make) -> None:
    with_bias, without = make(), make(lstm_bias=False, lstm_layers=2)
    assert all(cell.bias_ih is not None for cell in with_bias.lstm)
    assert all(cell.bias_ih is None and cell.bias_hh is None for cell in without.lstm)
    assert not any("bias" in name for name, _ in without.lstm.named_parameters())
    two_layers = make(lstm_layers=2)
    n_params = sum(p.numel() for p in two_layers.parameters())
    # two biases of 4 H per LSTM layer, H = 16
    assert n_params - sum(p.numel() for p in without.parameters()) == 2 * 2 * 4 * 16
    s = without(8, generator=gen(1))
    torch.testing.assert_close(without(arcs=s.arcs).log_prob, s.log_prob)


# --- learning through SearchModule.controller_step ----------------------------------------------
class _Stub(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x, arch):  # never called: rewards are stubbed
        raise AssertionError


def controller_module(ctrl, cfg, reward_fn) -> tuple[SearchModule, torch.optim.Optimizer]:
    """A SearchModule whose ``controller_step`` runs outside a Trainer with a toy reward."""
    module = SearchModule(_Stub(), ctrl, None, cfg)
    _, opt = module.configure_optimizers()[0]
    module._trainer = SimpleNamespace(world_size=1, global_rank=0, current_epoch=0)
    module.optimizers = lambda: (None, opt)
    module.manual_backward = lambda loss: loss.backward()
    module.log = lambda *a, **k: None
    module.rewards = lambda archs, g: reward_fn(archs)
    return module, opt


def test_reinforce_moves_probability_to_the_rewarded_decision(make_cfg) -> None:
    cfg = make_cfg(["controller.lr=0.05", "controller.num_aggregate=10"])
    ctrl = micro(num_nodes=2)
    target = AUTHORS_MICRO_OPS[3]  # max_pool_3x3 as normal node 0's first op

    def reward(archs):
        return torch.tensor([float(a.normal.nodes[0].ops[0] == target) for a in archs])

    def prob() -> float:
        with torch.no_grad():
            return float(ctrl(1).op_probs[0, 0, 3])  # independent of the arc: first decision

    module, _ = controller_module(ctrl, cfg, reward)
    before = prob()
    for k in range(40):
        module.controller_step(k, gen(k))
    after = prob()
    # the bounded logits cap this probability (as in the reference): op 3's logit is at most
    # c - 0.25, ops 0 and 1 stay at c + 0.25 (their bias of 10 keeps the tanh saturated), ops 2
    # and 4 are at least -c - 0.25, with c = 1.1 / 2.5
    c = 1.1 / 2.5
    cap = float(torch.tensor([c + 0.25, c + 0.25, -c - 0.25, c - 0.25, -c - 0.25]).softmax(0)[3])
    assert before < 0.13
    assert after > 1.5 * before and after > 0.95 * cap, (before, after, cap)
    assert 0 < float(module.baseline) < 1  # the moving average of the rewards
    assert "baseline" in module.state_dict()


def test_skip_penalty_pulls_the_skip_rate_to_its_target(make_cfg) -> None:
    cfg = make_cfg(["search_space=macro", "controller.lr=0.05", "controller.entropy_weight=0"])
    ctrl = macro(num_layers=4)
    module, _ = controller_module(ctrl, cfg, lambda archs: torch.zeros(len(archs)))

    def skip_rate() -> float:
        with torch.no_grad():
            arcs = ctrl(2000, generator=gen(99)).arcs
        return float(arcs[:, :, 1:].sum()) / (2000 * 6)

    # first push the skip rate up with a high target, then pull it back to 0.4
    ctrl.skip_target = 0.95
    for k in range(40):
        module.controller_step(k, gen(k))
    high = skip_rate()
    assert high > 0.7
    ctrl.skip_target = 0.4
    for k in range(60):
        module.controller_step(k, gen(100 + k))
    rate = skip_rate()
    assert abs(rate - 0.4) < 0.1, (high, rate)
    assert float(module.baseline) == 0.0  # zero reward: the penalty alone moved it

"""The child optimiser's conventions: the authors' L2 term and the gradient clipping modes."""

from __future__ import annotations

import pytest
import torch

from enas_lightning.build import validate
from enas_lightning.config import ChildOptimConfig
from enas_lightning.errors import ConfigError
from enas_lightning.optim import clip_gradients_, sgd_with_sgdr


def quadratic_loss(w: torch.Tensor) -> torch.Tensor:
    """A data loss with a gradient that is not proportional to ``w``."""
    target = torch.linspace(-1.0, 1.0, w.numel(), dtype=w.dtype).reshape(w.shape)
    return ((w - target) ** 3).abs().sum()


def one_step(w0: torch.Tensor, opt_factory, authors_term: float = 0.0) -> torch.Tensor:
    """``w`` after one optimizer step on ``quadratic_loss + authors_term * sum(w**2)``."""
    w = torch.nn.Parameter(w0.clone())
    opt = opt_factory([w])
    loss = quadratic_loss(w) + authors_term * (w**2).sum()
    loss.backward()
    opt.step()
    return w.detach()


@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, True)])
def test_l2_reg_is_the_authors_loss_term(momentum: float, nesterov: bool) -> None:
    """``l2_reg`` means the authors' ``loss += l2_reg * sum(w**2)`` (utils.get_train_ops)."""
    torch.manual_seed(0)
    w0 = torch.randn(4, 3, dtype=torch.float64)
    lr, l2_reg = 0.05, 0.1  # a large l2_reg so that a factor 2 is far above rounding
    o = ChildOptimConfig(lr_max=lr, l2_reg=l2_reg, momentum=momentum, nesterov=nesterov)
    ours = one_step(w0, lambda ps: sgd_with_sgdr(ps, o)[0])

    def plain(ps, weight_decay=0.0):
        return torch.optim.SGD(
            ps, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay
        )

    # the same SGD without decay, on the authors' loss with its L2 term
    authors = one_step(w0, plain, authors_term=l2_reg)
    torch.testing.assert_close(ours, authors, rtol=1e-12, atol=1e-12)
    # by hand, the first step: buf = g; Nesterov applies g + momentum * buf
    w = w0.clone().requires_grad_(True)
    quadratic_loss(w).backward()
    g = w.grad + 2 * l2_reg * w0
    expected = w0 - lr * (g + momentum * g if nesterov else g)
    torch.testing.assert_close(ours, expected, rtol=1e-12, atol=1e-12)
    # torch's weight_decay=l2_reg is half the authors' decay: a different step
    half = one_step(w0, lambda ps: plain(ps, weight_decay=l2_reg))
    assert not torch.allclose(half, authors, rtol=1e-6, atol=1e-9)


def big_and_small() -> list[torch.Tensor]:
    """Two gradients: norm 50 (above the bound 5) and norm 0.1 (below it)."""
    torch.manual_seed(0)
    big, small = torch.randn(6, 4), torch.randn(5)
    return [big * 50 / big.norm(), small * 0.1 / small.norm()]


def test_norm_mode_clips_each_tensor_on_its_own() -> None:
    grads = big_and_small()
    before = [g.clone() for g in grads]
    total = clip_gradients_(grads, 5.0, "norm")
    assert float(total) == pytest.approx((50**2 + 0.1**2) ** 0.5, rel=1e-6)
    assert float(grads[0].norm()) == pytest.approx(5.0, rel=1e-6)  # clipped to the bound
    torch.testing.assert_close(grads[0], before[0] * 5 / 50)  # same direction
    assert torch.equal(grads[1], before[1])  # a small gradient is left alone


def test_global_mode_scales_all_tensors_by_one_factor() -> None:
    grads = big_and_small()
    before = [g.clone() for g in grads]
    total = clip_gradients_(grads, 5.0, "global")
    joint = torch.cat([g.flatten() for g in grads]).norm()
    assert float(joint) == pytest.approx(5.0, rel=1e-5)
    factor = 5.0 / float(total)
    for g, b in zip(grads, before, strict=True):
        torch.testing.assert_close(g, b * factor)
    # the small gradient shrinks with the big one (what per-tensor clipping avoids)
    assert float(grads[1].norm()) < 0.1 / 9


@pytest.mark.parametrize("mode,bound", [("none", 5.0), ("norm", 0.0), ("global", 0.0)])
def test_none_mode_and_a_zero_bound_leave_every_gradient(mode: str, bound: float) -> None:
    grads = big_and_small()
    before = [g.clone() for g in grads]
    total = clip_gradients_(grads, bound, mode)
    assert float(total) == pytest.approx((50**2 + 0.1**2) ** 0.5, rel=1e-6)
    for g, b in zip(grads, before, strict=True):
        assert torch.equal(g, b)


def test_a_non_finite_gradient_shows_in_the_total_norm() -> None:
    grads = big_and_small()
    grads[1][0] = float("inf")
    assert not torch.isfinite(clip_gradients_(grads, 5.0, "norm"))


@pytest.mark.parametrize("section", ["search", "final"])
def test_bad_clip_mode_or_negative_l2_reg_is_one_config_error(make_cfg, section: str) -> None:
    with pytest.raises(ConfigError, match=rf"{section}\.optim\.grad_clip_mode='per_tensor'"):
        validate(make_cfg([f"{section}.optim.grad_clip_mode=per_tensor"]))
    with pytest.raises(ConfigError, match=rf"{section}\.optim\.l2_reg=-0\.1"):
        validate(make_cfg([f"{section}.optim.l2_reg=-0.1"]))
    validate(make_cfg([f"{section}.optim.grad_clip_mode=global"]))  # allowed

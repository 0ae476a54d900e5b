"""The op building blocks: the CPU separable pools compute what PyTorch's pools compute."""

from __future__ import annotations

import pytest
import torch

from enas_lightning.spaces.ops import SamePool


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("kernel", [3, 5])
@pytest.mark.parametrize("shape", [(4, 3, 8, 8), (2, 5, 7, 9), (1, 2, 2, 3)])
def test_separable_pool_equals_torch_pool(kind, kernel, shape):
    torch.manual_seed(0)
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    pool = SamePool(kind, kernel, 1)
    fast, ref = pool._separable(x), pool.torch_pool(x)
    assert fast.shape == ref.shape == x.shape
    torch.testing.assert_close(fast, ref)
    # gradients agree too (random data has no ties)
    (g_fast,) = torch.autograd.grad(fast.sum(), x)
    (g_ref,) = torch.autograd.grad(ref.sum(), x)
    torch.testing.assert_close(g_fast, g_ref)


def test_strided_pool_uses_torch():
    x = torch.randn(2, 3, 8, 8)
    pool = SamePool("max", 3, 2)
    torch.testing.assert_close(pool(x), torch.nn.functional.max_pool2d(x, 3, 2, 1))


@pytest.mark.parametrize(
    ("kind", "grad", "separable"),
    [("avg", True, True), ("avg", False, True), ("max", True, False), ("max", False, True)],
)
def test_cpu_pool_takes_the_kernel_measured_faster(kind, grad, separable, monkeypatch):
    """Max pooling that needs a gradient runs PyTorch's kernel (the separable backward was
    measured 2-11x slower); everything else runs the separable passes. Values are the same."""
    calls = []
    pool = SamePool(kind, 3, 1)
    real = pool._separable
    monkeypatch.setattr(pool, "_separable", lambda x: calls.append(1) or real(x))
    x = torch.randn(2, 3, 6, 6, requires_grad=True)
    with torch.set_grad_enabled(grad):
        out = pool(x)
    assert bool(calls) is separable
    torch.testing.assert_close(out, pool.torch_pool(x))

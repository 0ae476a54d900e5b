"""DDP's "Grad strides do not match bucket view strides" on one-channel images, and its fix
(``enas_lightning/grad_layout.py``): the gradients keep their parameters' strides, with the same
values. The two-rank run without the warning is in ``tests/test_ddp.py``."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.nn import functional as F

from enas_lightning.data.augment import augment_batch
from enas_lightning.grad_layout import match_grad_strides
from enas_lightning.spaces.micro.arch import AUTHORS_MICRO_OPS
from enas_lightning.spaces.micro.controller import MicroController
from enas_lightning.spaces.micro.supernet import MicroSupernet

# one intra-op thread, restored after each test (conftest.py)
pytestmark = pytest.mark.usefixtures("one_thread")


def grads(net, x, y, archs) -> list[dict[str, torch.Tensor]]:
    out = []
    for arch in archs:
        net.zero_grad(set_to_none=True)
        torch.manual_seed(0)  # dropout
        logits = net(x, arch)
        F.cross_entropy(logits[0] if isinstance(logits, tuple) else logits, y).backward()
        out.append({n: p.grad for n, p in net.named_parameters() if p.grad is not None})
    return out


def test_one_channel_gradients_keep_their_parameters_strides_and_values():
    torch.manual_seed(0)
    ops = tuple(AUTHORS_MICRO_OPS)
    net = MicroSupernet(10, 1, 3, 4, 3, ops, dropout_keep=0.9, image_size=8)
    archs = MicroController(ops, num_nodes=3).sample_archs(3, torch.Generator().manual_seed(1))
    images = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    # the training batch as the search gets it: gathered by the augmentation, NHWC strides
    x = augment_batch(images, 1, True, 0, torch.Generator().manual_seed(3))
    y = torch.arange(16) % 10
    assert x.is_contiguous() and x.stride() == (64, 1, 8, 1)

    plain = grads(net, x, y, archs)
    params = dict(net.named_parameters())
    # the cause: depthwise and pointwise weights get gradients with other size-1 strides
    differ = {n for g in plain for n, t in g.items() if t.stride() != params[n].stride()}
    assert any(n.endswith("weight") and params[n].shape[1] == 1 for n in differ)

    hooked_net = copy.deepcopy(net)
    assert match_grad_strides(hooked_net) > 0
    assert match_grad_strides(hooked_net) == 0  # once per network
    hooked = grads(hooked_net, x, y, archs)
    hooked_params = dict(hooked_net.named_parameters())
    for g, h in zip(plain, hooked, strict=True):
        assert g.keys() == h.keys()
        for n in g:
            assert h[n].stride() == hooked_params[n].stride(), n
            assert torch.equal(g[n], h[n]), n

"""The authors' initialisation of the supernet's weights (``search.init=authors``).

Every weight of the authors' code comes from ``common_ops.create_weight``, whose default
initializer is Keras' ``he_normal``: TF 1.x's ``VarianceScaling(scale=2, mode="fan_in",
distribution="normal")``, a normal with ``sigma = sqrt(2 / fan_in)`` truncated at two
``sigma`` (the TF 1.x of 2018 does not rescale the truncated draw, so the sample standard
deviation is ``0.8796 * sigma``; later versions divide sigma by 0.8796). TF's fan-in is taken from the *shape of the variable*: the
first dimension of a 2-D shape, ``k_h * k_w * in`` of a 4-D ``[k_h, k_w, in, out]`` one. The
micro supernet stores several weights as 2-D tensors with one row per input a node can read, so
their fan-in is that number of rows, and they start several times larger than torch's
defaults (which the project otherwise keeps). Their BatchNorm starts as torch's (scale 1,
offset 0) and their classifier has no bias (ours starts at zero).

================================================  ======================  ========================
weight (this project)                             authors' variable       fan-in
================================================  ======================  ========================
micro sep conv depthwise, node ``j``              ``[j+2, k*k*C]``        ``j + 2``
micro sep conv pointwise, node ``j``              ``[j+2, C*C]``          ``j + 2``
micro cell output 1x1 conv (``out_weight``)       ``[B+2, C*C]``          ``B + 2``
every other ``nn.Conv2d``                         ``[k, k, in, out]``     ``k * k * in``
macro sep conv depthwise (groups = ``C``)         ``[k, k, C, 1]``        ``k * k * C``
macro sep conv pointwise                          ``[C, C]``              ``C``
``nn.Linear`` (classifiers)                       ``[in, classes]``       ``in``
================================================  ======================  ========================

"Every other" is the stems, calibrations, factorized reductions, the aux head and the macro
branches' convs: there the authors' 4-D layout gives torch's fan-in, except that a depthwise
conv counts all ``C`` input channels as TF's ``[k, k, C, 1]`` does (torch counts ``k * k``).
The micro rows come from the supernet (``MicroSupernet.authors_fan_in``); a supernet without
that method (the macro one, a plug-in space's) gets the 4-D and linear rules everywhere.
Parameters that are neither a ``Conv2d``'s or ``Linear``'s weight nor named by the space
(BatchNorm's) keep their initialisation; ``Conv2d`` and ``Linear`` biases start at 0.

The draws come from their own generator (seeded from ``seed``), so the controller, built after
the supernet from torch's global generator, starts the same under either setting.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from enas_lightning.seeding import step_seed

INITS = ("torch", "authors")
TRUNCATED_STD = 0.87962566103423978  # std of a unit normal truncated at +-2
_INIT_STREAM = 3 * 10**6  # this module's key in seeding.step_seed (no other stream uses it)


def tf_fan_in(module: nn.Conv2d | nn.Linear) -> int:
    """TF's fan-in of the weight the authors' code would create for ``module``."""
    if isinstance(module, nn.Linear):
        return module.in_features
    kh, kw = module.kernel_size
    return kh * kw * module.in_channels  # [k, k, in, out] (depthwise: [k, k, in, multiplier])


def authors_fan_in(net: nn.Module) -> dict[nn.Parameter, int]:
    """Every weight the authors' initialisation sets, with its fan-in (see the module table)."""
    fan: dict[nn.Parameter, int] = {}
    for m in net.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            fan[m.weight] = tf_fan_in(m)
    space_rows = getattr(net, "authors_fan_in", None)
    if space_rows is not None:
        fan.update(space_rows())
    return fan


@torch.no_grad()
def authors_init_(net: nn.Module, seed: int) -> int:
    """Re-initialise ``net``'s weights in place as the authors' ``he_normal``.

    Each weight ``w`` with fan-in ``n`` is drawn from a normal of standard deviation
    ``sqrt(2 / n)`` truncated at twice that (sample std ``0.88 * sqrt(2 / n)``); conv and linear
    biases are zeroed. Returns the number of weight tensors drawn.
    """
    fan = authors_fan_in(net)
    gen = torch.Generator().manual_seed(step_seed(seed, _INIT_STREAM))
    drawn = 0
    for p in net.parameters():  # a fixed order: the same seed gives the same weights
        if p in fan:
            sigma = math.sqrt(2.0 / max(1, fan[p]))
            # drawn on the CPU (the supernet is built there), then copied in place
            w = torch.empty(p.shape, dtype=torch.float32)
            nn.init.trunc_normal_(w, 0.0, sigma, -2 * sigma, 2 * sigma, generator=gen)
            p.copy_(w)
            drawn += 1
    for m in net.modules():
        if isinstance(m, nn.Conv2d | nn.Linear) and m.bias is not None:
            m.bias.zero_()
    return drawn

"""Whole-batch data augmentation on the batch's own device.

The ENAS reference augments CIFAR-10 images with zero padding + random crop, random horizontal
flips and (optionally) cutout. Here this is done for a whole batch at once with index arithmetic
(no Python loop over images), so it runs on the GPU where the data already lives. Padding and
cutout write zeros in *normalised* space, as the reference does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from enas_lightning.errors import ConfigError


def augment_batch(
    x: Tensor,
    pad: int,
    flip: bool,
    cutout: int = 0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Randomly crop, flip and cut out each image of a batch.

    Args:
        x: images ``[N, C, H, W]``; not modified.
        pad: zero padding on every side before a random ``H x W`` crop (0 = no crop).
        flip: flip each image horizontally with probability 0.5.
        cutout: side of a square, centred at a uniformly random pixel of each image and clipped at
            the borders, that is set to 0 (0 = off).
        generator: source of randomness, on ``x``'s device; ``None`` uses torch's global one.

    Returns:
        A new tensor ``[N, C, H, W]`` of ``x``'s dtype, device and memory format.

    Random numbers are drawn in a fixed order (crop offsets, flips, cutout centres), so the same
    generator state gives the same result.
    """
    if x.dim() != 4:
        raise ValueError(f"augment_batch expects images [N, C, H, W], got shape {tuple(x.shape)}")
    if pad < 0:
        raise ConfigError("dataset.pad", pad, "0 (no crop) or more")
    if cutout < 0:
        raise ConfigError("dataset.cutout", cutout, "0 (off) or more")
    n, _, h, w = x.shape
    device = x.device
    out = x
    if pad > 0:
        padded = F.pad(x, (pad, pad, pad, pad))  # [N, C, H + 2p, W + 2p], zeros
        top = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=device)
        left = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=device)
        rows = top[:, None] + torch.arange(h, device=device)  # [N, H]
        cols = left[:, None] + torch.arange(w, device=device)  # [N, W]
        batch = torch.arange(n, device=device)[:, None, None]  # [N, 1, 1]
        # Advanced indices around a slice put their broadcast shape first: [N, H, W, C].
        out = padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    if flip:
        flipped = torch.rand(n, generator=generator, device=device) < 0.5  # [N]
        out = torch.where(flipped[:, None, None, None], out.flip(3), out)
    if cutout > 0:
        cy = torch.randint(0, h, (n,), generator=generator, device=device)
        cx = torch.randint(0, w, (n,), generator=generator, device=device)
        mask = cutout_mask(cy, cx, h, w, cutout)  # [N, H, W]
        out = out.masked_fill(mask[:, None], 0.0)
    if out is x:
        out = x.clone()  # nothing applied: still hand back a tensor the caller may modify
    # the batch keeps the split's memory format (channels_last for channels-last networks)
    nhwc = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return out.contiguous(memory_format=torch.channels_last if nhwc else torch.contiguous_format)


def cutout_mask(centre_y: Tensor, centre_x: Tensor, height: int, width: int, size: int) -> Tensor:
    """Boolean masks of ``size x size`` squares centred at the given pixels, clipped at borders.

    Args:
        centre_y: row of each square's centre, int ``[N]``.
        centre_x: column of each square's centre, int ``[N]``.
        height: image height ``H``.
        width: image width ``W``.
        size: side of the square; for an even side the centre is the lower-right of the middle 4.

    Returns:
        ``[N, H, W]`` bool, True inside the square.
    """
    device = centre_y.device
    y0 = centre_y - size // 2  # [N]
    x0 = centre_x - size // 2
    ys = torch.arange(height, device=device)
    xs = torch.arange(width, device=device)
    in_rows = (ys >= y0[:, None]) & (ys < (y0 + size)[:, None])  # [N, H]
    in_cols = (xs >= x0[:, None]) & (xs < (x0 + size)[:, None])  # [N, W]
    return in_rows[:, :, None] & in_cols[:, None, :]

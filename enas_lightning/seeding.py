"""Counter-based randomness: every step seeds its generators from its position.

A step's random numbers (child sampling, augmentation, dropout, drop path) are a function of
``(seed, rank, epoch, step)``. A resumed run therefore draws exactly what the uninterrupted run
would have drawn without carrying generator states in checkpoints, and every DDP rank has its
own reproducible stream.
"""

from __future__ import annotations

import numpy as np
import torch


def step_seed(*keys: int) -> int:
    """A 32-bit seed mixed from integer keys.

    numpy's ``SeedSequence`` mixes them, so nearby positions get unrelated seeds (a sum or a
    packed integer would collide or overflow the 32 bits torch's CPU generator keeps).
    """
    return int(np.random.SeedSequence([k % 2**32 for k in keys]).generate_state(1)[0])


def seed_step(device: torch.device, *keys: int) -> torch.Generator:
    """Seed torch's global generators for this step and return a device generator for it."""
    seed = step_seed(*keys)
    torch.manual_seed(seed)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen

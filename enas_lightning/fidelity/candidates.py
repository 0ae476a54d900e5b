"""The architectures a fidelity run measures: half from the search's controller, half uniform."""

from __future__ import annotations

import logging

import torch

from enas_lightning.controller import Controller
from enas_lightning.spaces import ArchRecord

log = logging.getLogger(__name__)

SOURCES = ("controller", "uniform")  # index i is sampled from SOURCES[i % 2]
MAX_DRAWS = 100  # tries per index for an architecture not drawn before


def sample_candidates(
    trained: Controller, uniform: Controller, k: int, seed: int
) -> list[tuple[str, ArchRecord]]:
    """``k`` distinct architectures: ``(source, arch)``, source ``controller`` at even indices.

    Index ``i`` depends only on ``(seed, i)`` and the architectures before it, so the first
    ``k`` of a run with more are the same (a rerun with a larger ``fidelity.num_archs`` adds to
    the saved rows). A controller that keeps drawing architectures already taken gets
    ``MAX_DRAWS`` tries, then the repeat is kept (and a warning logged).
    """
    from enas_lightning.seeding import step_seed

    ops = tuple(trained.ops)
    taken: set[tuple[int, ...]] = set()
    out: list[tuple[str, ArchRecord]] = []
    for i in range(k):
        source = SOURCES[i % 2]
        controller = trained if source == "controller" else uniform
        for draw in range(MAX_DRAWS):
            g = torch.Generator().manual_seed(step_seed(seed, 7919, i, draw))
            arch = controller.sample_archs(1, g)[0]
            key = tuple(arch.to_ints(ops))
            if key not in taken:
                break
        else:
            log.warning(
                "architecture %d: the %s kept repeating earlier draws; kept a repeat", i, source
            )
        taken.add(key)
        out.append((source, arch))
    return out

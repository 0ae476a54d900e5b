"""Counting a candidate's standalone cost: building the network against walking its structure.

The derivation counts the parameters and multiply-adds of every candidate's standalone network
(``final.*``; ~100 candidates), and ``reward=cost_aware`` of every rewarded child (1,000 per
epoch at the paper's settings). ``Space.cost`` used to build each network and run it once on a
zero image; the micro and macro spaces now count without building (``spaces/cost.py``
``Tally``). This times both on ``--archs`` uniformly sampled architectures at the paper presets'
final size (CIFAR-10 shapes), and the quickstart's, checking the counts agree:

    PYTHONPATH=. python bench/cost_count.py [--archs 20] [--no-append]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_average, report, table  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

# (label, config overrides, image shape, classes)
SETTINGS = (
    ("micro, paper final (15 layers, 36 ch, aux)", ["search_space=micro"], (3, 32, 32), 10),
    (
        "macro, paper final (24 layers, 96 ch)",
        ["search_space=macro", "search_space.layers=24"],
        (3, 32, 32),
        10,
    ),
    ("quickstart final (3 layers, 16 ch)", ["experiment=quickstart"], (1, 8, 8), 10),
)


def seconds_per_arch(overrides: list[str], shape: tuple[int, int, int], classes: int, n: int):
    """Seconds per architecture building, walking (pieces new), walking again (pieces cached);
    whether every count agreed."""
    from hydra import compose, initialize_config_dir

    from enas_lightning.spaces import get_space
    from enas_lightning.spaces.base import Space
    from enas_lightning.tasks.latency_table import uniform_archs

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        cfg = compose("config", overrides=overrides)

    space = get_space(cfg.search_space.name)
    archs = uniform_archs(cfg, n, seed=0)
    start = time.perf_counter()
    built = [Space.cost(space, cfg.final, a, classes, shape) for a in archs]
    build_s = (time.perf_counter() - start) / n
    start = time.perf_counter()
    walked = [space.cost(cfg.final, a, classes, shape) for a in archs]
    walk_s = (time.perf_counter() - start) / n
    # again: every piece is cached now, as it soon is in a search that counts every child
    start = time.perf_counter()
    again = [space.cost(cfg.final, a, classes, shape) for a in archs]
    cached_s = (time.perf_counter() - start) / n
    return build_s, walk_s, cached_s, built == walked == again


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archs", type=int, default=20)
    p.add_argument("--no-append", action="store_true")
    a = p.parse_args()
    import torch

    from enas_lightning.config import register_configs

    torch.set_num_threads(1)
    register_configs()
    before = load_average()
    rows = []
    for label, overrides, shape, classes in SETTINGS:
        build_s, walk_s, cached_s, same = seconds_per_arch(overrides, shape, classes, a.archs)
        rows.append(
            [
                label,
                f"{build_s * 1e3:.1f} ms",
                f"{walk_s * 1e3:.1f} ms ({build_s / walk_s:.0f}x)",
                f"{cached_s * 1e3:.2f} ms ({build_s / cached_s:.0f}x)",
                "yes" if same else "NO",
            ]
        )
        if not same:
            raise SystemExit(f"{label}: the counts differ")
    header = ["final network", "build and count", "walk, pieces new", "walk, cached", "same"]
    body = table(header, rows)
    report(
        "Counting a candidate's cost (CPU)",
        {"archs": a.archs, "threads": 1},
        body,
        notes=[
            "Per architecture. 'pieces new': the first walk over the architectures, which builds"
            " each distinct piece once; 'cached': the same walk again."
        ],
        append=not a.no_append,
        load_before=before,
    )


if __name__ == "__main__":
    main()

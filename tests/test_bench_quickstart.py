"""``bench/quickstart.py`` reads the warm-up and controller epochs' seconds from the search's
epoch lines (the format of ``enas_lightning.search.progress.EpochLine``)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import quickstart  # noqa: E402

LOG = """\
[2026-12-05 23:56:21,993][enas_lightning.search][INFO] - epoch 1/4 (warm-up) | child loss \
2.3294 acc 0.1286 | reward - baseline 0.0000 entropy - | lr 0.1 | 12.6 s | greedy: 1 4 1 4
Epoch 2/4 ━━━━━━━━ 45/45 0:00:09 • 0:00:00 loss: 1.416 acc: 0.500
[2026-12-05 23:57:15,047][enas_lightning.search][INFO] - epoch 3/4 | child loss 2.1719 acc \
0.2027 | reward 0.1729 baseline 0.1109 entropy 44.900 | lr 0.0503 | 36.3 s | greedy: 1 1 1 1
epoch 4/4 | child loss 2.1 acc 0.2 | reward 0.16 baseline 0.14 entropy 44.8 | mean latency_ms \
1.25 | lr 0.0151 | 35.9 s | greedy: 1 3 1 3
"""


def test_epoch_seconds_splits_warm_up_from_controller_epochs() -> None:
    warm, ctrl = quickstart.epoch_seconds(LOG)
    assert warm == [12.6]
    assert ctrl == [36.3, 35.9]  # the cost-aware line's extra column does not shift it


def test_epoch_seconds_reads_the_lines_the_search_writes() -> None:
    """The lines as ``EpochLine.line`` writes them today (a warm-up epoch, a controller epoch
    and a cost-aware one): a change to that format that the bench no longer reads fails here."""
    from types import SimpleNamespace

    from enas_lightning.search.history import EpochSummary
    from enas_lightning.search.progress import EpochLine

    trainer = SimpleNamespace(max_epochs=3, callback_metrics={})
    base = {"baseline": 0.1, "lr": 0.05}
    summaries = [
        EpochSummary(epoch=0, warmup=True, **base),
        EpochSummary(epoch=1, warmup=False, reward=0.5, entropy=44.9, **base),
        EpochSummary(
            epoch=2,
            warmup=False,
            reward=0.5,
            entropy=44.9,
            space_stats={"cost_params": 1e4},
            **base,
        ),
    ]
    lines = [
        EpochLine.line(trainer, None, s, t) for s, t in zip(summaries, (4.2, 8.8, 9.1), strict=True)
    ]
    log = "".join(f"[2026-12-06 03:00:00,000][enas_lightning.search][INFO] - {x}\n" for x in lines)
    assert quickstart.epoch_seconds(log) == ([4.2], [8.8, 9.1])

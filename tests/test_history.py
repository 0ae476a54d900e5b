"""The epoch history's record: the dict format of checkpoints and history.json is kept."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from enas_lightning.search.history import EpochSummary


@dataclass(frozen=True)
class FakeArch:
    ints: tuple[int, ...]

    def to_dict(self, ops: tuple[str, ...] = ("a", "b")) -> dict[str, Any]:
        return {"ops": list(ops), "ints": list(self.ints)}


# as the search wrote them before EpochSummary: a warm-up epoch, then one with a controller phase
WARMUP = {"epoch": 0, "warmup": True, "baseline": 0.0, "lr": 0.05, "greedy_arch": {"ints": [0]}}
LEARNED = {
    "epoch": 1,
    "warmup": False,
    "baseline": 0.25,
    "lr": 0.04,
    "op_probs": {"layer0": [0.5, 0.5], "layer1": [0.25, 0.75]},
    "reward": 0.3,
    "entropy": 1.5,
    "skip_rate": 0.4,
    "greedy_arch": {"ints": [1, 0]},
}


@pytest.mark.parametrize("d", [WARMUP, LEARNED, {"epoch": 2, "baseline": 0.5, "lr": 0.01}])
def test_dicts_round_trip_with_their_key_order(d: dict[str, Any]) -> None:
    back = EpochSummary.from_dict(d, lambda a: FakeArch(tuple(a["ints"]))).to_dict()
    expected = dict(d)
    if "warmup" not in d:  # a checkpoint from before search.warmup_epochs: no warm-up then
        expected = {"epoch": d["epoch"], "warmup": False, **d}
    if "greedy_arch" in d:  # written back by the architecture record
        expected["greedy_arch"] = {"ops": ["a", "b"], **d["greedy_arch"]}
    assert json.dumps(back) == json.dumps(expected)  # same keys, same order, same values


def test_fields_and_greedy_arch_written_with_the_ops_given() -> None:
    h = EpochSummary.from_dict(LEARNED, lambda a: FakeArch(tuple(a["ints"])))
    assert h.controller_ran and h.reward == 0.3 and h.entropy == 1.5
    assert h.space_stats == {"skip_rate": 0.4} and h.space_stats.get("missing") is None
    assert h.baseline == 0.25
    assert h.greedy_arch == FakeArch((1, 0))
    assert h.to_dict()["greedy_arch"] == {"ops": ["a", "b"], "ints": [1, 0]}  # checkpoints
    assert h.to_dict(("x",))["greedy_arch"] == {"ops": ["x"], "ints": [1, 0]}  # history.json
    w = EpochSummary.from_dict(WARMUP)  # no loader: the dict is kept as it is
    assert not w.controller_ran and w.op_probs is None and w.greedy_arch == {"ints": [0]}

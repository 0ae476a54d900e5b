"""The macro space's own settings, added to the config sections by ``search_space=macro``."""

from __future__ import annotations

from dataclasses import dataclass

from enas_lightning.config import ControllerConfig, FinalConfig, SearchSpaceConfig


@dataclass
class MacroSearchSpaceConfig(SearchSpaceConfig):
    """``search_space``: how the supernet merges a layer's skips."""

    # sum (the authors' search layer: BN of the sum) | concat (channel concat, ReLU, 1x1 conv,
    # BN; the authors' final layer)
    skip_merge: str = "sum"


@dataclass
class MacroControllerConfig(ControllerConfig):
    """``controller``: the skip penalty, KL(skip probability || skip_target), and the entropy
    added to the reward."""

    skip_target: float = 0.4  # the skip probability the penalty pulls towards, in (0, 1)
    skip_weight: float = 0.8  # the penalty's weight in the controller's loss
    # sampled: the KL of the probability a skip is sampled with, sigmoid(2 l) for the logits
    # [-l, l] (the optimum samples skip_target); authors: of sigmoid(l), as general_controller.py
    # computes it (the optimum samples skips at about 0.31 for skip_target 0.4)
    skip_penalty: str = "sampled"
    # full: each decision's entropy; chosen: only the chosen value's term -p log p, the authors'
    # macro sample_entropy (general_controller.py)
    entropy: str = "full"


@dataclass
class MacroFinalConfig(FinalConfig):
    """``final``: the standalone network's layers."""

    skip_merge: str = "concat"  # concat (the authors' final layer) | sum; see search_space


SETTINGS = {
    "search_space": MacroSearchSpaceConfig,
    "controller": MacroControllerConfig,
    "final": MacroFinalConfig,
}

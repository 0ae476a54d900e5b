"""The per-op latency table: what it holds, its key, where it is cached, and the prediction.

One table per device (``latency.device`` and, on a CPU, the thread count), space and the
settings that fix the shapes its ops run at: the op vocabulary, the standalone network's size
(``final.*`` less the training-only settings), the image shape, the number of classes and
``latency.batch_size``. They are hashed into the file name,
``<cache_dir>/<space>-<device>-<hash>.json``; the JSON holds them in the clear too.

Prediction (:meth:`LatencyTable.predict`): the sum of the entries of the ops an architecture
places plus ``fixed_ms``, the rest of the network (stem, cell-input calibrations, merges and
concatenations, reductions, head), measured once as the mean over ``latency.calibration_archs``
uniformly sampled architectures of their measured latency less their ops' sum. The parts of that
rest that vary with the architecture (how many loose ends a cell concatenates, how many skips a
macro layer merges) are averaged, not modelled; :func:`check_prediction` measures what that
costs (Spearman and mean relative error against end-to-end timings).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from enas_lightning.errors import ConfigError
from enas_lightning.files import write_text
from enas_lightning.latency.timing import device_name, median_ms
from enas_lightning.spaces import OpPlacement, get_space

# final.* settings that change how a network trains, not the shapes it runs at
TRAINING_ONLY = frozenset(
    {
        "epochs",
        "batch_size",
        "eval_batch_size",
        "dropout_keep",
        "drop_path_keep",
        "aux_weight",
        "cutout",
        "test_every",
        "compile",
        "compile_min_steps",
        "channels_last",
        "optim",
    }
)
BUILD_COMMAND = "python -m enas_lightning task=latency_table"


@dataclass
class LatencyTable:
    """``entries``: milliseconds per op placement (:attr:`OpPlacement.key`); ``fixed_ms``: the
    rest of the network; ``settings``: what the key hashes; ``check``: the prediction's
    Spearman and mean relative error on sampled architectures (:func:`check_prediction`)."""

    key: str
    settings: dict[str, Any]
    entries: dict[str, float]
    fixed_ms: float
    check: dict[str, Any] | None = field(default=None)

    def predict(self, placements: Sequence[OpPlacement]) -> float:
        """Predicted milliseconds of a network placing ``placements``: the fixed part plus
        the entry of each placement."""
        missing = [p.key for p in placements if p.key not in self.entries]
        if missing:
            raise ConfigError(
                "latency", self.key, f"no entry for {missing[0]!r}; rebuild it ({BUILD_COMMAND})"
            )
        return self.fixed_ms + sum(self.entries[p.key] for p in placements)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> LatencyTable:
        return cls(**json.loads(text))


def threads(cfg: Any) -> int:
    """The intra-op thread count the networks run with (``trainer.num_threads`` or torch's)."""
    n = int(cfg.trainer.num_threads)
    return n if n > 0 else torch.get_num_threads()


def table_settings(cfg: Any, image_shape: tuple[int, int, int], num_classes: int) -> dict:
    """What the table's timings depend on, as plain values (see the module docstring)."""
    space = get_space(cfg.search_space.name)
    final = OmegaConf.to_container(cfg.final, resolve=True)
    assert isinstance(final, dict)
    return {
        "device": device_name(cfg.latency.device, threads(cfg)),
        "space": space.name,
        "ops": list(cfg.search_space.ops),
        # the search's size fixes the depth of a macro network and the cells' nodes
        "search_space.layers": int(cfg.search_space.layers),
        **{k: v for k, v in space.fingerprint(cfg.search_space).items()},
        "final": {k: v for k, v in sorted(final.items()) if k not in TRAINING_ONLY},
        "image_shape": list(image_shape),
        "num_classes": int(num_classes),
        "batch_size": int(cfg.latency.batch_size),
    }


def table_key(settings: dict) -> str:
    """``<space>-<device>-<12 hex digits of the settings' hash>``."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    return f"{settings['space']}-{settings['device']}-{digest}"


def cache_dir(cfg: Any) -> Path:
    """``latency.cache_dir``, or ``$XDG_CACHE_HOME/enas_lightning/latency`` (by default
    ``~/.cache/enas_lightning/latency``), where the tables of every run are shared."""
    if cfg.latency.cache_dir:
        return Path(str(cfg.latency.cache_dir)).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "enas_lightning" / "latency"


def table_path(cfg: Any, image_shape: tuple[int, int, int], num_classes: int) -> Path:
    return cache_dir(cfg) / f"{table_key(table_settings(cfg, image_shape, num_classes))}.json"


def load_table(cfg: Any, image_shape: tuple[int, int, int], num_classes: int) -> LatencyTable:
    """The cached table of these settings; a :class:`ConfigError` naming the command that
    builds it otherwise."""
    path = table_path(cfg, image_shape, num_classes)
    if not path.is_file():
        settings = table_settings(cfg, image_shape, num_classes)
        raise ConfigError(
            "latency",
            settings["device"],
            f"no latency table for this device, search_space={settings['space']} and sizes "
            f"(expected {path}); build it with: {BUILD_COMMAND} plus this run's search_space, "
            "final, dataset, trainer.num_threads and latency settings",
        )
    return LatencyTable.from_json(path.read_text())


def measure_network(
    cfg: Any, arch: Any, image_shape: tuple[int, int, int], num_classes: int
) -> float:
    """The measured milliseconds of one forward of ``arch``'s standalone network (eval mode,
    ``latency.batch_size`` images) on ``latency.device``."""
    space = get_space(cfg.search_space.name)
    device = torch.device(cfg.latency.device)
    f = space.standalone_final(cfg.final, arch, cfg.search_space)
    with torch.random.fork_rng(devices=[]):  # the caller's random stream stays where it was
        net = space.build_network(f, arch, num_classes, image_shape).to(device)
    x = torch.zeros(cfg.latency.batch_size, *image_shape, device=device)
    return median_ms(net, x, cfg.latency.warmup, cfg.latency.repeats, device)


def measure_op(cfg: Any, placement: OpPlacement) -> float:
    """The measured milliseconds of one op placement on ``latency.device``."""
    space = get_space(cfg.search_space.name)
    device = torch.device(cfg.latency.device)
    with torch.random.fork_rng(devices=[]):
        op = space.build_op(placement).to(device)
    p = placement
    x = torch.zeros(cfg.latency.batch_size, p.channels, p.height, p.width, device=device)
    return median_ms(op, x, cfg.latency.warmup, cfg.latency.repeats, device)


def predict_ms(
    table: LatencyTable, cfg: Any, arch: Any, image_shape: tuple[int, int, int]
) -> float:
    """``arch``'s predicted milliseconds from ``table`` (``final.*`` sizes its network)."""
    space = get_space(cfg.search_space.name)
    f = space.standalone_final(cfg.final, arch, cfg.search_space)
    placements = space.op_placements(f, arch, image_shape)
    assert placements is not None  # a table exists only for a space that places its ops
    return table.predict(placements)


def build_table(
    cfg: Any,
    image_shape: tuple[int, int, int],
    num_classes: int,
    calibration: Sequence[Any],
    progress: Callable[[Sequence[Any], str], Any] = lambda items, what: items,
) -> LatencyTable:
    """Time every op placement the space can place, then the fixed part on the
    ``calibration`` architectures; ``progress(items, description)`` wraps each loop (a
    progress bar)."""
    space = get_space(cfg.search_space.name)
    placements = space.all_op_placements(cfg.final, cfg.search_space, image_shape)
    if placements is None:
        raise ConfigError(
            "search_space.name", space.name, "a space that lists its op placements (micro, macro)"
        )
    settings = table_settings(cfg, image_shape, num_classes)
    entries = {p.key: measure_op(cfg, p) for p in progress(placements, "timing ops")}
    table = LatencyTable(table_key(settings), settings, entries, 0.0)
    rests = [
        measure_network(cfg, arch, image_shape, num_classes)
        - predict_ms(table, cfg, arch, image_shape)
        for arch in progress(calibration, "timing the fixed part")
    ]
    table.fixed_ms = float(sum(rests) / max(1, len(rests)))
    return table


def check_prediction(
    cfg: Any,
    table: LatencyTable,
    archs: Sequence[Any],
    image_shape: tuple[int, int, int],
    num_classes: int,
    progress: Callable[[Sequence[Any], str], Any] = lambda items, what: items,
) -> dict[str, Any]:
    """Predicted against measured end-to-end latency on ``archs``: Spearman's rho, the mean
    relative error ``mean(|predicted - measured| / measured)`` and the pairs (ms)."""
    from scipy.stats import spearmanr

    measured, predicted = [], []
    for arch in progress(archs, "checking the prediction"):
        measured.append(measure_network(cfg, arch, image_shape, num_classes))
        predicted.append(predict_ms(table, cfg, arch, image_shape))
    rho = float(spearmanr(predicted, measured).statistic) if len(archs) > 1 else float("nan")
    rel = [abs(p - m) / m for p, m in zip(predicted, measured, strict=True)]
    return {
        "archs": len(archs),
        "spearman": rho,
        "mean_relative_error": float(sum(rel) / max(1, len(rel))),
        "measured_ms": measured,
        "predicted_ms": predicted,
    }


def save_table(cfg: Any, table: LatencyTable) -> Path:
    """Write ``table`` into the cache (whole or not at all) and return its path."""
    path = cache_dir(cfg) / f"{table.key}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, table.to_json())
    return path

"""Exporting a trained network for use without this project: ``torch.export`` + JSON metadata.

Each file is written whole or not at all, with the umask's mode (:mod:`enas_lightning.files`).

``model.pt2`` holds the network's graph and weights (eval mode: no dropout, no drop path, no aux
head, BatchNorm with running statistics). It needs only PyTorch::

    import json, torch
    model = torch.export.load("export/model.pt2").module()
    pre = json.load(open("export/preprocess.json"))
    mean = torch.tensor(pre["mean"])[:, None, None]
    std = torch.tensor(pre["std"])[:, None, None]
    logits = model((images_0_1 - mean) / std)  # images [B, C, H, W] in [0, 1]
"""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from enas_lightning.arch import save_arch
from enas_lightning.files import write_bytes, write_text

# Largest batch the exported graph is traced for; any batch from 1 to this runs.
MAX_EXPORT_BATCH = 65536


def export_network(
    network: nn.Module,
    out_dir: Path,
    example: Tensor,
    arch: object,
    ops: Sequence[str],
    mean: Sequence[float],
    std: Sequence[float],
    num_classes: int,
) -> dict[str, Path]:
    """Write ``model.pt2``, ``arch.json`` and ``preprocess.json`` to ``out_dir``.

    Args:
        network: the trained network (eager, not ``torch.compile``-d); it is not modified: a CPU
            float32 copy in eval mode is exported, so the file runs on any machine.
        out_dir: created if missing.
        example: a normalised input batch ``[B, C, H, W]`` (any device); only its shape and
            dtype matter. The batch dimension is exported as dynamic (1 to ``MAX_EXPORT_BATCH``).
        arch: the architecture record (any space's, :class:`~enas_lightning.spaces.ArchRecord`).
        ops: the op names the architecture's integer string refers to.
        mean: per-channel mean (``[0, 1]`` scale) the inputs are normalised with.
        std: per-channel standard deviation (``[0, 1]`` scale).
        num_classes: number of logits.

    Returns:
        ``{"model": ..., "arch": ..., "preprocess": ...}`` paths.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # A CPU, contiguous-format copy: exporting from a CUDA or channels_last module would bake
    # its device into the graph's constants, and the caller's module keeps its mode.
    model = copy.deepcopy(network).to(device="cpu", dtype=torch.float32)
    model = model.to(memory_format=torch.contiguous_format).eval()
    x = example.detach().to(device="cpu", dtype=torch.float32).contiguous()
    if x.shape[0] < 2:
        # A batch of 1 would let the tracer specialise the batch dimension to 1.
        x = x.expand(2, *x.shape[1:]).contiguous()
    batch = torch.export.Dim("batch", min=1, max=MAX_EXPORT_BATCH)
    with torch.no_grad():
        program = torch.export.export(model, (x,), dynamic_shapes=({0: batch},))
    paths = {
        "model": out_dir / "model.pt2",
        "arch": out_dir / "arch.json",
        "preprocess": out_dir / "preprocess.json",
    }
    # serialised in memory, then written whole (files.py: the umask's mode, one line on failure)
    model_bytes = io.BytesIO()
    torch.export.save(program, model_bytes)
    write_bytes(paths["model"], model_bytes.getvalue())
    save_arch(arch, paths["arch"], tuple(ops))
    c, h, w = (int(s) for s in x.shape[1:])
    preprocess = {
        "input_shape": [c, h, w],
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
        "num_classes": int(num_classes),
        "dynamic_batch": [1, MAX_EXPORT_BATCH],
        "note": (
            "inputs are float32 images [B, C, H, W] scaled to [0, 1], then normalised per channel: "
            "(x - mean[c]) / std[c]; the model returns logits [B, num_classes]"
        ),
    }
    write_text(paths["preprocess"], json.dumps(preprocess, indent=2) + "\n")
    return paths

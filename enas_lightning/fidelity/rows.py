"""The fidelity run's table, one row per architecture, and what a resume may keep of it.

``fidelity.csv`` is rewritten (atomically) after every architecture, so a rerun in the same
directory keeps the finished rows; ``fidelity_settings.json`` records every setting a row
depends on, and a rerun under other settings is refused (:func:`check_settings`).
"""

from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from enas_lightning.errors import ConfigError
from enas_lightning.fidelity.search_run import SearchRun
from enas_lightning.spaces import ArchRecord

CSV_NAME = "fidelity.csv"
SETTINGS_NAME = "fidelity_settings.json"
COLUMNS = ["index", "source", "arch", "shared_acc", "standalone_acc", "params", "seconds"]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _flat(prefix: str, node: Any) -> dict[str, Any]:
    """``{"final.optim.lr_max": 0.05, ...}`` of a config node."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        if isinstance(value, dict):
            out.update(_flat(f"{prefix}.{key}", value))
        else:
            out[f"{prefix}.{key}"] = value
    return out


def row_settings(fcfg: DictConfig, found: SearchRun) -> dict[str, Any]:
    """Every setting a saved row depends on (``fidelity.num_archs`` only adds rows)."""
    dataset = OmegaConf.to_container(fcfg.dataset, resolve=True)
    for key in ("data_dir", "download"):
        dataset.pop(key)
    return {
        "fidelity.run": _sha256(found.ckpt),  # the same shared weights and controller
        "fidelity.seed": fcfg.fidelity.seed,
        "fidelity.epochs": fcfg.fidelity.epochs,
        "search.eval_batch_size": fcfg.search.eval_batch_size,  # batch-statistics BN
        "trainer.precision": str(fcfg.trainer.precision),
        **_flat("final", OmegaConf.to_container(fcfg.final, resolve=True)),
        **_flat("dataset", dataset),
    }


def check_settings(
    saved: dict[str, Any], mine: dict[str, Any], output_dir: Path, run: str | None
) -> None:
    """Refuse to add rows to ``output_dir`` made under other settings (one line)."""
    for key in sorted(set(saved) | set(mine)):
        if saved.get(key) != mine.get(key):
            if key == "fidelity.run":
                what = "from another search checkpoint"
            else:
                what = f"with {key}={saved.get(key)!r} (this run: {mine.get(key)!r})"
            raise ConfigError(
                key,
                mine.get(key) if key != "fidelity.run" else run,
                f"the rows saved in {output_dir} were made {what}; use the same settings or "
                "another hydra.run.dir",
            )


def read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return [
            {
                **r,
                "index": int(r["index"]),
                "shared_acc": float(r["shared_acc"]),
                "standalone_acc": float(r["standalone_acc"]),
                "params": int(r["params"]),
                "seconds": float(r["seconds"]),
            }
            for r in csv.DictReader(f)
        ]


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """The whole table, atomically: a kill leaves the previous table or this one."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow(
                {
                    **r,
                    "shared_acc": f"{r['shared_acc']:.6f}",
                    "standalone_acc": f"{r['standalone_acc']:.6f}",
                    "seconds": f"{r['seconds']:.1f}",
                }
            )
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def kept_rows(
    path: Path, candidates: list[tuple[str, ArchRecord]], ops: tuple[str, ...], seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The saved rows of this run's ``k`` candidates, and those beyond (kept on file).

    Raises:
        ConfigError: a saved row's architecture or source differs from the candidate's.
    """
    k = len(candidates)
    saved = read_rows(path)
    rows = [r for r in saved if r["index"] < k]
    beyond = [r for r in saved if r["index"] >= k]  # a smaller num_archs keeps them on file
    for r in rows:
        source, arch = candidates[r["index"]]
        if r["arch"] != " ".join(map(str, arch.to_ints(ops))) or r["source"] != source:
            raise ConfigError(
                "fidelity.seed",
                seed,
                f"the same architectures as the rows saved in {path} (row {r['index']} "
                "differs); use another hydra.run.dir",
            )
    return rows, beyond


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        f"{'#':>3}  {'source':<10}  {'shared':>6}  {'standalone':>10}  {'params':>9}  {'s':>6}  arch"
    ]
    for r in rows:
        lines.append(
            f"{r['index']:>3}  {r['source']:<10}  {r['shared_acc']:>6.4f}  {r['standalone_acc']:>10.4f}"
            f"  {r['params']:>9}  {r['seconds']:>6.1f}  {r['arch']}"
        )
    return "\n".join(lines)

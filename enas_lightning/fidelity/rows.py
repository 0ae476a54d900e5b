"""The fidelity run's table, one row per retrain (architecture and seed), and what a resume keeps.

``fidelity.csv`` is rewritten (atomically) after every retrain, so a rerun in the same
directory keeps the finished rows; ``fidelity_settings.json`` records every setting a row
depends on, and a rerun under other settings is refused (:func:`check_settings`).
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from enas_lightning.errors import ConfigError
from enas_lightning.fidelity.search_run import SearchRun
from enas_lightning.files import writing
from enas_lightning.spaces import ArchRecord

CSV_NAME = "fidelity.csv"
SETTINGS_NAME = "fidelity_settings.json"
COLUMNS = [
    "index",
    "source",
    "arch",
    "seed",  # the retrain seed (train_final's seed: initial weights, batch order, augmentation)
    "shared_acc",
    "standalone_acc",
    "params",
    "param_free_share",  # the share of the architecture's op choices without weights
    "seconds",
]


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
    """Every setting a saved row depends on (``fidelity.num_archs`` and
    ``fidelity.retrain_seeds`` only add rows)."""
    dataset = OmegaConf.to_container(fcfg.dataset, resolve=True)
    for key in ("data_dir", "download"):
        dataset.pop(key)
    s = fcfg.search
    # fine-tuned shared-weight scores (recorded only when on: directories from before keep)
    finetune = (
        {
            "search.derive_finetune_steps": s.derive_finetune_steps,
            "search.derive_finetune_lr": float(s.derive_finetune_lr),
        }
        if s.derive_finetune_steps > 0
        else {}
    )
    if s.derive_uniform_steps > 0:  # the uniform finish of the shared weights, when on
        finetune |= {
            "search.derive_uniform_steps": s.derive_uniform_steps,
            "search.derive_uniform_lr": float(s.derive_uniform_lr),
        }
    return {
        "fidelity.run": _sha256(found.ckpt),  # the same shared weights and controller
        "fidelity.seed": fcfg.fidelity.seed,
        "fidelity.epochs": fcfg.fidelity.epochs,
        "search.eval_batch_size": fcfg.search.eval_batch_size,  # batch-statistics BN
        **finetune,
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


def read_rows(path: Path, default_seed: int) -> list[dict[str, Any]]:
    """The saved rows; a table written before the ``seed`` and ``param_free_share`` columns
    existed reads as retrained with ``default_seed`` (``fidelity.seed``, which its settings
    file has) and with the share unknown (``None``)."""
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return [
            {
                **r,
                "index": int(r["index"]),
                "seed": int(r.get("seed") or default_seed),
                "shared_acc": float(r["shared_acc"]),
                "standalone_acc": float(r["standalone_acc"]),
                "params": int(r["params"]),
                "param_free_share": float(r["param_free_share"])
                if r.get("param_free_share")
                else None,
                "seconds": float(r["seconds"]),
            }
            for r in csv.DictReader(f)
        ]


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """The whole table, atomically: a kill or a full disk leaves the previous table (a full
    disk is one line naming the file, see enas_lightning/files.py)."""
    with writing(path) as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            share = r["param_free_share"]
            w.writerow(
                {
                    **r,
                    "shared_acc": f"{r['shared_acc']:.6f}",
                    "standalone_acc": f"{r['standalone_acc']:.6f}",
                    "param_free_share": "" if share is None else f"{share:.4f}",
                    "seconds": f"{r['seconds']:.1f}",
                }
            )


class Rows:
    """The table of a fidelity run: one row per retrain, keyed by ``(index, seed)``.

    ``rows`` are those of this run's architectures and retrain seeds; ``beyond`` the others on
    file (from a run with a larger ``fidelity.num_archs`` or other seeds), written back
    unchanged. :meth:`add` rewrites the whole file after every retrain.
    """

    def __init__(self, path: Path, rows: list[dict[str, Any]], beyond: list[dict[str, Any]]):
        self.path, self.rows, self.beyond = path, rows, beyond

    @classmethod
    def resume(
        cls,
        path: Path,
        candidates: list[tuple[str, ArchRecord]],
        ops: tuple[str, ...],
        seeds: list[int],
        fcfg: DictConfig,
    ) -> Rows:
        """The rows saved in ``path`` (none if there is no file) against this run's candidates.

        Raises:
            ConfigError: a saved row's architecture or source differs from the candidate's.
        """
        from enas_lightning.spaces import get_space

        space = get_space(fcfg.search_space.name)
        k = len(candidates)
        rows, beyond = [], []
        for r in read_rows(path, fcfg.fidelity.seed):
            if r["index"] >= k:
                beyond.append(r)
                continue
            source, arch = candidates[r["index"]]
            if r["arch"] != " ".join(map(str, arch.to_ints(ops))) or r["source"] != source:
                raise ConfigError(
                    "fidelity.seed",
                    fcfg.fidelity.seed,
                    f"the same architectures as the rows saved in {path} (row {r['index']} "
                    "differs); use another hydra.run.dir",
                )
            if r["param_free_share"] is None:  # a table from before the column
                r["param_free_share"] = space.param_free_share(arch)
            (rows if r["seed"] in seeds else beyond).append(r)
        return cls(path, rows, beyond)

    def done(self) -> set[tuple[int, int]]:
        """The finished ``(index, seed)`` retrains."""
        return {(r["index"], r["seed"]) for r in self.rows}

    def shared_acc(self, index: int) -> float | None:
        """The saved shared-weight score of architecture ``index`` (any seed's row), if any."""
        for r in [*self.rows, *self.beyond]:
            if r["index"] == index:
                return r["shared_acc"]
        return None

    def add(self, row: dict[str, Any]) -> None:
        """Keep ``row`` and rewrite the file."""
        self.rows.append(row)
        write_rows(
            self.path, sorted(self.rows + self.beyond, key=lambda r: (r["index"], r["seed"]))
        )


def format_table(archs: list[dict[str, Any]]) -> str:
    """One line per architecture (:func:`enas_lightning.fidelity.summary.per_arch`): the
    standalone accuracy is the seed mean, with the seeds' standard deviation when there are
    several; ``s`` the seconds of all its retrains."""
    seeds = max(len(a["standalone_accs"]) for a in archs)
    sd = f"  {'sd':>6}" if seeds > 1 else ""
    lines = [
        f"{'#':>3}  {'source':<10}  {'shared':>6}  {'standalone':>10}{sd}  {'params':>9}"
        f"  {'p-free':>6}  {'s':>6}  arch"
    ]
    for a in archs:
        sd = f"  {a['standalone_sd']:>6.4f}" if seeds > 1 else ""
        share = "-" if a["param_free_share"] is None else f"{a['param_free_share']:.2f}"
        lines.append(
            f"{a['index']:>3}  {a['source']:<10}  {a['shared_acc']:>6.4f}"
            f"  {a['standalone_acc']:>10.4f}{sd}  {a['params']:>9}  {share:>6}"
            f"  {a['seconds']:>6.1f}  {a['arch']}"
        )
    return "\n".join(lines)

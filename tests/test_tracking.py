"""Tracking: resolved config, W&B offline run contents, pictures, the controller progress bar."""

from __future__ import annotations

import glob
import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from enas_lightning import tracking
from enas_lightning.search.progress import SearchProgressBar, search_progress_bar
from tests._cli import enas, tiny
from tests._offline import cli_env

ROOT = Path(__file__).resolve().parents[1]
HAS_DOT = shutil.which("dot") is not None
TINY = tiny({"search.derive_samples": 2})


def run_cli(args: list[str], tmp_path: Path, timeout: int = 1500) -> subprocess.CompletedProcess:
    p = enas(args, tmp_path, cli_env(tmp_path), timeout)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p


def wandb_records(path: Path) -> list[Any]:
    """The protobuf records of an offline ``run-*.wandb`` file (W&B 0.31 writes it from Go; the
    format is LevelDB's log: 32 KiB blocks of chunks with a 7-byte header)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, buf, out = 7, 32768, b"", []
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # block trailer too short for a header
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if length == 0 and kind == 0:  # zero padding
            pos += left
            continue
        buf += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST chunk
            r = pb.Record()
            r.ParseFromString(buf)
            out.append(r)
            buf = b""
    return out


AUTHORS_MICRO_ARC = (
    "0 2 0 0 0 4 0 1 1 4 0 1 1 0 0 1 0 2 1 1 1 0 1 0 0 3 0 2 1 1 3 1 1 0 0 4 0 3 1 1"
)

# --------------------------------------------------------------------------- fast


def test_search_callbacks_follow_config() -> None:
    cfg = OmegaConf.structured(tracking.Config)
    cbs = tracking.search_callbacks(cfg)
    kinds = [type(c) for c in cbs]
    assert tracking.ConfigLogger in kinds and tracking.SearchTracking in kinds
    assert SearchProgressBar in kinds
    cfg.trainer.enable_progress_bar = False
    cfg.logger.name = "none"
    kinds = [type(c) for c in tracking.search_callbacks(cfg)]
    assert kinds == [tracking.ConfigLogger]
    assert search_progress_bar(False) == []


def test_resolved_config_outside_hydra_keeps_interpolation() -> None:
    cfg = OmegaConf.structured(tracking.Config)
    params = tracking.resolved_config(cfg)
    assert params["controller"]["lr"] == cfg.controller.lr
    assert params["output_dir"] == "${hydra:runtime.output_dir}"


def test_log_derivation_pictures_best_arch_without_logger(tmp_path: Path) -> None:
    from enas_lightning.arch import parse_ints
    from enas_lightning.search.derivation import Derivation
    from enas_lightning.spaces.micro.arch import MicroArch

    ops = ("sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3", "identity")
    arc = MicroArch.from_ints(parse_ints(AUTHORS_MICRO_ARC))
    d = Derivation(candidates=[arc], accuracies=[0.5], greedy_index=None)
    path = tmp_path / "best_arch.json"
    path.write_text("{}")
    tracking.log_derivation(False, d, path, tmp_path, ops)
    assert (tmp_path / "best_arch.dot").read_text().startswith("digraph")
    if HAS_DOT:
        assert (tmp_path / "best_arch.png").exists() and (tmp_path / "best_arch.svg").exists()


# --------------------------------------------------------------------------- runs


@pytest.mark.slow
def test_tiny_search_with_progress_bar_csv_config_and_best_picture(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process tiny search: the controller bar counts train_steps each epoch, the CSV logger
    gets the resolved config, the derived architecture is pictured."""
    from enas_lightning.app import run

    made: list[Any] = []
    original = tracking.search_callbacks

    def capture(cfg: Any) -> list[Any]:
        cbs = original(cfg)
        made.extend(cbs)
        return cbs

    monkeypatch.setattr(tracking, "search_callbacks", capture)
    GlobalHydra.instance().clear()
    with initialize_config_module("enas_lightning.conf", version_base="1.3"):
        cfg = compose("config", overrides=[*TINY, "search.epochs=2", f"output_dir={tmp_path}"])
    acc = run(cfg)
    assert 0.0 <= acc <= 1.0
    bars = [c for c in made if isinstance(c, SearchProgressBar)]
    assert len(bars) == 1
    assert bars[0].controller_totals == [2, 2]  # controller.train_steps, per epoch
    hparams = (tmp_path / "logs" / "hparams.yaml").read_text()
    assert "train_steps: 2" in hparams and "num_aggregate: 3" in hparams
    logged = (tmp_path / "logs" / "metrics.csv").read_text()
    assert "derive/best_val_acc" in logged
    for name in ("best", "greedy", "controller_mean", "uniform_mean"):
        assert f"derive/{name}_param_free_share" in logged
    assert (tmp_path / "best_arch.dot").exists()
    if HAS_DOT:
        assert (tmp_path / "best_arch.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_wandb_offline_run_holds_history_table_and_artifact(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_cli([*TINY, "search.epochs=2", "logger=wandb", f"hydra.run.dir={out}"], tmp_path)
    check_wandb_run(out)


def check_wandb_run(out: Path) -> None:
    runs = sorted((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    run_dir = runs[0]
    records = wandb_records(next(run_dir.glob("run-*.wandb")))
    by_kind: dict[str, list[Any]] = {}
    for r in records:
        by_kind.setdefault(r.WhichOneof("record_type"), []).append(r)

    # the resolved config
    config = {u.key: json.loads(u.value_json) for r in by_kind["config"] for u in r.config.update}
    assert config["controller"]["train_steps"] == 2
    assert config["output_dir"] == str(out)

    # the search metrics, the table and the controller plots in the history
    keys = {"/".join(i.nested_key) or i.key for r in by_kind["history"] for i in r.history.item}
    # (step values only every trainer.log_every_n_steps, so look for either suffix)
    for k in ("child/loss", "child/acc", "ctrl/reward", "ctrl/entropy", "ctrl/loss", "lr"):
        assert any(key.startswith(k) for key in keys), (k, sorted(keys))
    assert any(k.startswith("search/sampled_archs") for k in keys)
    assert any(k.startswith("plots/op_probs") for k in keys)
    assert any(k.startswith("plots/controller") for k in keys)

    # the table of each epoch's sampled architectures (2 updates x 3 architectures)
    tables = sorted(run_dir.glob("files/media/table/search/sampled_archs_*.table.json"))
    assert len(tables) == 2
    table = json.loads(tables[0].read_text())
    assert table["columns"] == tracking.TABLE_COLUMNS
    assert len(table["data"]) == 6
    epochs, _, arcs, rewards, pictures = zip(*table["data"], strict=True)
    assert set(epochs) == {0} and all(isinstance(r, float) for r in rewards)
    assert all(len(a.split()) == 4 * 3 * 2 for a in arcs)  # 2 cells x 3 nodes x 4 ints
    if HAS_DOT:
        assert sum(p is not None for p in pictures) == tracking.TABLE_PICTURES

    # artifacts: the tables (with their pictures) and the derived architecture
    artifacts = {r.artifact.type: r.artifact for r in by_kind["artifact"]}
    arch = artifacts["architecture"]
    contents = {c.path for c in arch.manifest.contents}
    assert "best_arch.json" in contents and "best_arch.dot" in contents
    if HAS_DOT:
        assert "best_arch.png" in contents
        table_files = {c.path for c in artifacts["run_table"].manifest.contents}
        assert any(p.endswith(".png") for p in table_files), table_files

    # derived accuracies in the summary match best_arch.json
    summary = {
        "/".join(u.nested_key) or u.key: u.value_json
        for r in by_kind["summary"]
        for u in r.summary.update
    }
    best = json.loads((out / "best_arch.json").read_text())
    assert float(summary["derive/best_val_acc"]) == pytest.approx(best["val_acc"])
    for name, key in (
        ("best", "param_free_share"),
        ("greedy", "greedy_param_free_share"),
        ("controller_mean", "controller_mean_param_free_share"),
        ("uniform_mean", "uniform_mean_param_free_share"),
    ):
        assert float(summary[f"derive/{name}_param_free_share"]) == pytest.approx(best[key])
    assert "exit" in by_kind  # wandb.finish() ran
    assert (out / "best_arch.dot").exists()


def test_wandb_records_reader_rejects_other_files(tmp_path: Path) -> None:
    p = tmp_path / "x.wandb"
    p.write_bytes(b"not wandb")
    with pytest.raises(AssertionError):
        wandb_records(p)


if __name__ == "__main__":  # pragma: no cover - debugging aid: dump an offline run
    for f in glob.glob(sys.argv[1]):
        for rec in wandb_records(Path(f)):
            print(rec.WhichOneof("record_type"))


def test_the_logger_gets_the_plots_only_on_the_epochs_that_redraw_them(
    tmp_path: Path, monkeypatch
) -> None:
    """With ``plot_every=2`` over 5 epochs the plot images go to the logger after epochs 2, 4
    and 5: on the others the files on disk are an earlier epoch's."""
    from types import SimpleNamespace

    sent: list[tuple[str, int]] = []
    monkeypatch.setattr(tracking, "is_wandb", lambda logger: False)
    monkeypatch.setattr(tracking, "is_tensorboard", lambda logger: True)
    monkeypatch.setattr(tracking, "log_image", lambda lg, key, p, step: sent.append((key, step)))
    (tmp_path / "plots").mkdir()
    for name in ("op_probs", "controller"):
        (tmp_path / "plots" / f"{name}.png").write_bytes(b"png")
    callback = tracking.SearchTracking(pictures=False, plot_every=2)
    module = SimpleNamespace(summarize_epoch=lambda: None, epoch_samples=[])
    for epoch in range(5):
        trainer = SimpleNamespace(
            is_global_zero=True,
            loggers=[object()],
            default_root_dir=str(tmp_path),
            global_step=10 * epoch,
            current_epoch=epoch,
            max_epochs=5,
            should_stop=False,
        )
        callback.on_train_epoch_end(trainer, module)
    assert sent == [(f"plots/{n}", s) for s in (10, 30, 40) for n in ("op_probs", "controller")]

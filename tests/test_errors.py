"""Bad input is rejected before training, in one line, leaving an earlier run dir untouched.

The command line is run in-process (``enas_lightning.app.main`` with ``sys.argv`` set) to keep the
test fast; ``tests/test_resume.py`` covers the real subprocess entry point.
"""

from __future__ import annotations

import io
import pickle
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from enas_lightning import app
from enas_lightning.data.download import md5
from tests._cli import space_of, tiny
from tests._resil_util import RESIL_CHANGES

VALID = "0 0 1 1 2 0 1 0 0 0 1 1 2 0 1 0"  # micro, num_nodes=2: normal then reduce


def write_cifar(path: Path, n: int = 20) -> None:
    """A small archive in the real CIFAR-10 python format."""
    rng = np.random.default_rng(0)
    with tarfile.open(path, "w:gz") as tar:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            batch = {
                b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                b"labels": [int(i % 10) for i in range(n)],
            }
            raw = pickle.dumps(batch, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))


def image_tree(root: Path, bad: bool = False) -> Path:
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (10 + i, 12), (40 * i, 9, 200)).save(root / c / f"{i}.png")
    if bad:
        (root / "a" / "broken.png").write_bytes(b"not a png at all")
    return root


def cases(tmp: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (overrides after TINY, a fragment the one-line message must contain)."""
    good = tmp / "good"
    good.mkdir(parents=True)
    write_cifar(good / "cifar-10-python.tar.gz")
    trunc = tmp / "trunc"
    trunc.mkdir()
    raw = (good / "cifar-10-python.tar.gz").read_bytes()
    (trunc / "cifar-10-python.tar.gz").write_bytes(raw[: len(raw) // 2])
    corrupt = tmp / "corrupt"
    corrupt.mkdir()
    (corrupt / "cifar-10-python.tar.gz").write_bytes(raw[:100] + b"\0" * 200 + raw[300:])
    md5sum = md5(good / "cifar-10-python.tar.gz")
    ckpt = tmp / "other.ckpt"
    torch.save({"enas": {"fingerprint": {"search_space.channels": 99}}}, ckpt)
    from enas_lightning.arch.io import load_arch, save_arch

    ops = ("sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3", "identity")
    micro_json = tmp / "micro.json"
    save_arch(load_arch(VALID, "micro", ops, 2), micro_json, ops)
    cifar = ["dataset=cifar10", "dataset.download=false", "dataset.val_size=10"]
    inspect = ["task=inspect", "search_space.num_nodes=2"]
    return {
        "unknown search space": (["search_space=nasnet"], "search_space='nasnet'"),
        "fp16 search": (["trainer.precision=16-mixed"], "trainer.precision='16-mixed'"),
        "unknown dataset": (["dataset=mnist"], "dataset='mnist'"),
        "unknown logger": (["logger=mlflow"], "logger='mlflow'"),
        "unknown trainer": (["trainer=tpu"], "trainer='tpu'"),
        "unknown op": (["search_space.ops=[sep_conv_3x3,conv_9x9]"], "conv_9x9"),
        "nodes < 1": (["search_space.num_nodes=0"], "search_space.num_nodes=0"),
        "unknown skip merge in search": (
            ["search_space=macro", "search_space.skip_merge=mean"],
            "search_space.skip_merge='mean' is not allowed: one of concat, sum",
        ),
        "unknown skip merge in final": (
            ["search_space=macro", "final.skip_merge=cat"],
            "final.skip_merge='cat' is not allowed: one of concat, sum",
        ),
        "a macro setting with micro": (
            ["search_space=micro", "controller.skip_weight=0.5"],
            "controller.skip_weight='0.5' is not allowed: a setting of search_space=macro",
        ),
        "a micro setting with macro": (
            ["search_space=macro", "search_space.num_nodes=3"],
            "search_space.num_nodes='3' is not allowed: a setting of search_space=micro",
        ),
        "too few layers": (["search_space.layers=2"], "search_space.layers=2"),
        "fake images too small": (["dataset.image_size=2"], "dataset.image_size"),
        "image folder too small": (
            [
                "dataset=image_folder",
                f"dataset.data_dir={image_tree(tmp / 'imgs')}",
                "dataset.image_size=2",
                "dataset.val_size=2",
                "dataset.test_size=2",
                "search.batch_size=1",
            ],
            "dataset.image_size",
        ),
        "batch larger than a split": (["search.batch_size=1000"], "search.batch_size=1000"),
        "more devices than exist": (["trainer.devices=4096"], "trainer.devices=4096"),
        "missing cifar archive": ([*cifar, f"dataset.data_dir={tmp / 'none'}"], "no CIFAR-10"),
        "truncated cifar archive": (
            [*cifar, f"dataset.data_dir={trunc}", f"dataset.md5={md5sum}"],
            "checksum mismatch",
        ),
        "corrupted cifar archive": (
            [*cifar, f"dataset.data_dir={corrupt}", "dataset.md5=''"],
            "cifar-10-python.tar.gz",
        ),
        "arch of wrong length": ([*inspect, "arch='0 0 1 1'"], "arch"),
        "arch op out of range": (
            [*inspect, f"arch='{VALID.replace('0 0 1 1', '0 9 1 1', 1)}'"],
            "9",
        ),
        "arch forward input": ([*inspect, f"arch='{VALID.replace('0 0 1 1', '2 0 1 1', 1)}'"], "2"),
        "arch of the other space": (
            ["task=inspect", "search_space=macro", f"arch={micro_json}"],
            "macro",
        ),
        "inspect without arch": (["task=inspect"], "arch"),
        "incompatible checkpoint": ([f"ckpt_path={ckpt}"], "search_space.channels"),
        "missing checkpoint": ([f"ckpt_path={tmp / 'nope.ckpt'}"], "ckpt_path"),
        "resume without checkpoint": (["resume=true"], "resume=true"),
        "unreadable image folder": (
            [
                "dataset=image_folder",
                f"dataset.data_dir={image_tree(tmp / 'bad', bad=True)}",
                "dataset.image_size=8",
                "dataset.val_size=2",
                "dataset.test_size=2",
                "search.batch_size=1",
            ],
            "broken.png",
        ),
        "misspelt key": (["search.epochz=3"], "search.epochz"),
        "wrong type": (["search.epochs=abc"], "search.epochs='abc'"),
    }


def snapshot(d: Path) -> dict[str, int]:
    return {str(p.relative_to(d)): p.stat().st_mtime_ns for p in sorted(d.rglob("*"))}


def test_bad_input_one_line_no_traceback_run_dir_untouched(tmp_path, monkeypatch, capsys):
    run = tmp_path / "earlier_run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("task: search\n")
    (run / "app.log").write_text("earlier log\n")
    (run / "best_arch.json").write_text("{}\n")
    before = snapshot(run)
    all_cases = cases(tmp_path / "inputs")
    assert len(all_cases) >= 20
    failures = []
    for name, (overrides, fragment) in all_cases.items():
        base = tiny(RESIL_CHANGES, space=space_of(overrides))
        argv = ["enas_lightning", *base, *overrides, f"hydra.run.dir={run}"]
        monkeypatch.setattr(sys, "argv", argv)
        with pytest.raises(SystemExit) as exc:
            app.main()
        err = capsys.readouterr().err.strip()
        lines = err.splitlines()
        ok = (
            exc.value.code not in (0, None)
            and len(lines) == 1
            and lines[0].startswith("error: ")
            and fragment in lines[0]
            and "Traceback" not in err
        )
        if not ok:
            failures.append(f"{name}: exit {exc.value.code}: {err!r}")
        if snapshot(run) != before:
            failures.append(f"{name}: changed the run directory")
            before = snapshot(run)
    assert not failures, "\n".join(failures)

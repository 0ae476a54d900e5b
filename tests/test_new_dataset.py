"""Adding a dataset is one module and one registration: a toy dataset runs the search.

``tests/toy_dataset.py`` registers ``stripes`` (8 x 8 grayscale stripes, two classes); the
search then loads, splits and normalises it through the same code paths as the built-in
datasets (docs/new_dataset.md).
"""

from __future__ import annotations

import importlib.metadata
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

from enas_lightning.app import run
from enas_lightning.config import DatasetConfig
from enas_lightning.data import datasets
from enas_lightning.data.datasets import DATASETS, data_shape, get_dataset, load_splits
from enas_lightning.data.download import md5
from enas_lightning.errors import ConfigError
from tests.conftest import compose_cfg
from tests.toy_dataset import STRIPES

STRIPES_CLI = ["dataset.name=stripes", "dataset.pad=1", "dataset.flip=false"]


@pytest.fixture(autouse=True)
def _clear_hydra():
    yield
    GlobalHydra.instance().clear()


def test_the_toy_dataset_is_registered_by_name() -> None:
    assert DATASETS["stripes"] is STRIPES and get_dataset("stripes") is STRIPES
    assert list(DATASETS)[:4] == ["cifar10", "digits", "fake", "image_folder"]
    with pytest.raises(
        ConfigError,
        match="dataset.name='nope' is not allowed: one of cifar10, digits, fake, image_folder, ",
    ) as err:
        get_dataset("nope")
    assert "stripes" in str(err.value) and "\n" not in str(err.value)


def test_toy_dataset_is_split_and_normalised_like_the_built_in_ones() -> None:
    cfg = DatasetConfig(name="stripes", train_size=100, test_size=20, val_size=30, seed=4)
    s = load_splits(cfg)
    assert (s.name, s.num_classes, s.image_shape) == ("stripes", 2, (1, 8, 8))
    assert data_shape(cfg) == (s.num_classes, s.image_shape)
    assert (len(s.train_x), len(s.val_x), len(s.test_x)) == (70, 30, 20)
    assert abs(float(s.train_x.mean())) < 1e-5 and abs(float(s.train_x.std()) - 1) < 1e-2
    again = load_splits(cfg)
    assert torch.equal(s.val_x, again.val_x) and torch.equal(s.test_y, again.test_y)
    with pytest.raises(ConfigError, match=r"dataset.val_size=100.*at most 99"):
        load_splits(DatasetConfig(name="stripes", train_size=100, val_size=100))


def test_toy_dataset_runs_search_and_inspect(tmp_path: Path) -> None:
    search_dir = tmp_path / "search"
    run(compose_cfg(search_dir, [*STRIPES_CLI, "task=search"]))
    GlobalHydra.instance().clear()
    history = json.loads(next(search_dir.rglob("history.json")).read_text())
    assert len(history) == 2  # one summary per search epoch
    best = json.loads(next(search_dir.rglob("best_arch.json")).read_text())
    assert best["space"] == "micro"
    # inspect sizes the network from the dataset's shape: one input channel, two classes
    inspect_dir = tmp_path / "inspect"
    arch = next(search_dir.rglob("best_arch.json"))
    run(compose_cfg(inspect_dir, [*STRIPES_CLI, "task=inspect", f"arch={arch}"]))
    assert (inspect_dir / "arch.json").is_file()


def test_a_dataset_of_another_package_is_found_by_its_entry_point(monkeypatch, tmp_path) -> None:
    """An installed package announces its dataset in the ``enas_lightning.datasets`` group;
    the registry imports that module on its first lookup, and the import registers it. This one
    downloads its file with the shared fetch (MD5-checked) and reads it with the safe
    unpickler."""
    rng = np.random.default_rng(0)
    arrays = {
        "x": rng.integers(0, 256, (40, 3, 4, 4), dtype=np.uint8),
        "y": np.arange(40, dtype=np.int64) % 3,
    }
    source = tmp_path / "web" / "tiny.pkl"
    source.parent.mkdir()
    source.write_bytes(pickle.dumps(arrays))
    (tmp_path / "plugin_dataset.py").write_text(
        "import torch\n"
        "from enas_lightning.data.datasets import Dataset, RawImages, register_dataset\n"
        "from enas_lightning.data.download import fetch\n"
        "from enas_lightning.data.unpickle import safe_loads\n"
        "class Tiny(Dataset):\n"
        "    name = 'plugin_tiny'\n"
        "    def shape(self, cfg):\n"
        "        return 3, (3, 4, 4)\n"
        "    def load(self, cfg):\n"
        "        d = safe_loads(fetch(cfg, 'tiny.pkl', 'tiny archive').read_bytes())\n"
        "        x, y = torch.from_numpy(d['x']), torch.from_numpy(d['y'])\n"
        "        return RawImages(x[:32], y[:32], x[32:], y[32:], 3)\n"
        "register_dataset(Tiny())\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    ep = importlib.metadata.EntryPoint("plugin_tiny", "plugin_dataset", datasets.ENTRY_POINT_GROUP)
    monkeypatch.setattr(
        importlib.metadata, "entry_points", lambda group: [ep] if group == ep.group else []
    )
    # as in a new process: nothing looked up yet (restored afterwards)
    monkeypatch.setattr(DATASETS, "_items", dict(DATASETS._items))
    monkeypatch.setattr(DATASETS, "_loaded", False)
    assert "plugin_tiny" in DATASETS and list(DATASETS)[:4] == list(datasets.BUILTIN)

    cfg = DatasetConfig(
        name="plugin_tiny",
        data_dir=str(tmp_path / "data"),
        url=source.as_uri(),
        md5=md5(source),
        val_size=8,
    )
    s = load_splits(cfg)
    assert (len(s.train_x), len(s.val_x), len(s.test_x), s.image_shape) == (24, 8, 8, (3, 4, 4))
    assert (tmp_path / "data" / "tiny.pkl").read_bytes() == source.read_bytes()

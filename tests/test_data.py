"""Tests of the data layer: dataset loading, augmentation and the on-device batch loader."""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from enas_lightning.data import (
    DatasetConfig,
    EpochBatches,
    augment_batch,
    cutout_mask,
    load_splits,
)
from enas_lightning.errors import ConfigError, DataError

# ---------------------------------------------------------------------------------------------
# CIFAR-10 on a small archive in the real format

PER_TRAIN_BATCH = 6  # 5 batches → 30 training images
PER_TEST = 8


def _cifar_batch(rng: np.random.Generator, n: int, offset: int) -> dict[bytes, object]:
    return {
        b"batch_label": b"test",
        b"labels": [(offset + i) % 10 for i in range(n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img{offset + i}.png".encode() for i in range(n)],
    }


def _write_cifar(directory: Path) -> tuple[Path, str]:
    """Write ``cifar-10-python.tar.gz`` into ``directory``; returns its path and md5."""
    rng = np.random.default_rng(0)
    members = {f"data_batch_{i}": _cifar_batch(rng, PER_TRAIN_BATCH, 6 * i) for i in range(1, 6)}
    members["test_batch"] = _cifar_batch(rng, PER_TEST, 0)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, batch in members.items():
            payload = pickle.dumps(batch, protocol=2)  # protocol of the real (Python 2) archive
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path, hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def cifar(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    return _write_cifar(tmp_path_factory.mktemp("cifar"))


def _cifar_cfg(path: Path, md5: str, **kw: object) -> DatasetConfig:
    return DatasetConfig(name="cifar10", data_dir=str(path.parent), md5=md5, download=False, **kw)


def test_cifar10_shapes_labels_and_normalisation(cifar: tuple[Path, str]) -> None:
    path, md5 = cifar
    s = load_splits(_cifar_cfg(path, md5, val_size=0), holdout=False)
    assert s.image_shape == (3, 32, 32) and s.num_classes == 10
    assert s.train_x.shape == (30, 3, 32, 32) and s.train_x.dtype == torch.float32
    assert s.test_x.shape == (PER_TEST, 3, 32, 32) and s.test_y.dtype == torch.int64
    assert s.val_x.shape == (0, 3, 32, 32) and s.val_y.shape == (0,)
    assert torch.bincount(s.train_y, minlength=10).tolist() == [3] * 10
    assert torch.allclose(s.train_x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(s.train_x.std(dim=(0, 2, 3), correction=0), torch.ones(3), atol=1e-4)
    # Stats are in [0, 1] scale; uniform random bytes have mean ~0.5.
    assert all(0.45 < m < 0.55 for m in s.mean) and len(s.std) == 3


def test_cifar10_pixels_keep_channel_layout(cifar: tuple[Path, str]) -> None:
    path, md5 = cifar
    s = load_splits(_cifar_cfg(path, md5, val_size=0), holdout=False)
    with tarfile.open(path) as tar:
        f = tar.extractfile("cifar-10-batches-py/test_batch")
        assert f is not None
        raw = pickle.load(f, encoding="bytes")[b"data"][0]
    mean, std = torch.tensor(s.mean), torch.tensor(s.std)
    pixels = s.test_x[0] * std[:, None, None] + mean[:, None, None]
    expected = torch.from_numpy(raw.reshape(3, 32, 32).astype(np.float32) / 255)
    assert torch.allclose(pixels, expected, atol=1e-5)


def test_cifar10_holdout(cifar: tuple[Path, str]) -> None:
    path, md5 = cifar
    cfg = _cifar_cfg(path, md5, val_size=7)
    a, b = load_splits(cfg), load_splits(cfg)
    assert a.train_x.shape[0] == 23 and a.val_x.shape[0] == 7 and a.test_x.shape[0] == PER_TEST
    assert torch.equal(a.val_x, b.val_x) and torch.equal(a.val_y, b.val_y)
    assert torch.allclose(a.train_x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    c = load_splits(replace(cfg, seed=1))
    assert not torch.equal(a.val_y, c.val_y) or not torch.equal(a.val_x, c.val_x)
    with pytest.raises(ConfigError, match="dataset.val_size"):
        load_splits(replace(cfg, val_size=30))


def test_cifar10_bad_md5(cifar: tuple[Path, str]) -> None:
    path, _ = cifar
    with pytest.raises(DataError, match="checksum mismatch") as err:
        load_splits(_cifar_cfg(path, "0" * 32))
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_cifar10_truncated_archive(cifar: tuple[Path, str], tmp_path: Path) -> None:
    path, _ = cifar
    broken = tmp_path / path.name
    data = path.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    md5 = hashlib.md5(broken.read_bytes()).hexdigest()  # checksum passes, contents do not
    with pytest.raises(DataError, match="CIFAR-10") as err:
        load_splits(_cifar_cfg(broken, md5))
    assert "\n" not in str(err.value)


def test_cifar10_corrupt_pickle(tmp_path: Path) -> None:
    path = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            payload = b"\x80\x02garbage"
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    with pytest.raises(DataError, match="not a CIFAR-10"):
        load_splits(_cifar_cfg(path, ""))


def test_cifar10_rejects_code_in_pickle(tmp_path: Path) -> None:
    path = tmp_path / "cifar-10-python.tar.gz"
    evil = pickle.dumps({b"data": Path("x"), b"labels": []})  # any non-numpy class
    with tarfile.open(path, "w:gz") as tar:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(evil)
            tar.addfile(info, io.BytesIO(evil))
    with pytest.raises(DataError, match="unexpected object"):
        load_splits(_cifar_cfg(path, ""))


def test_safe_unpickler_builds_only_allowed_classes() -> None:
    from enas_lightning.data.unpickle import safe_loads

    arrays = {"x": np.arange(6, dtype=np.uint8).reshape(2, 3), "y": [1, 2]}
    got = safe_loads(pickle.dumps(arrays))
    assert np.array_equal(got["x"], arrays["x"]) and got["y"] == [1, 2]
    with pytest.raises(pickle.UnpicklingError, match="unexpected object pathlib"):
        safe_loads(pickle.dumps(Path("x")))
    path_class = (type(Path("x")).__module__, type(Path("x")).__name__)
    assert safe_loads(pickle.dumps(Path("x")), allowed={path_class}) == Path("x")


def test_cifar10_missing_offline(tmp_path: Path) -> None:
    cfg = DatasetConfig(name="cifar10", data_dir=str(tmp_path / "none"), download=False)
    with pytest.raises(DataError, match=r"dataset\.data_dir=") as err:
        load_splits(cfg)
    assert "\n" not in str(err.value)


def test_cifar10_download_failure(tmp_path: Path) -> None:
    cfg = DatasetConfig(
        name="cifar10", data_dir=str(tmp_path / "d"), url=(tmp_path / "absent.tar.gz").as_uri()
    )
    with pytest.raises(DataError, match=r"dataset\.data_dir=.*download.*failed"):
        load_splits(cfg)
    assert not any((tmp_path / "d").iterdir())  # no half-written archive or temp file left


def test_cifar10_download_file_url(cifar: tuple[Path, str], tmp_path: Path) -> None:
    path, md5 = cifar
    target = tmp_path / "dl"
    cfg = DatasetConfig(
        name="cifar10", data_dir=str(target), url=path.as_uri(), md5=md5, val_size=5
    )
    s = load_splits(cfg)
    assert (target / "cifar-10-python.tar.gz").read_bytes() == path.read_bytes()
    assert [p.name for p in target.iterdir()] == ["cifar-10-python.tar.gz"]
    assert s.train_x.shape[0] == 25 and s.val_x.shape[0] == 5


# ---------------------------------------------------------------------------------------------
# digits, fake, validation


def test_digits() -> None:
    cfg = DatasetConfig(name="digits", val_size=200)
    s = load_splits(cfg)
    assert s.image_shape == (1, 8, 8) and s.num_classes == 10
    assert (s.train_x.shape[0], s.val_x.shape[0], s.test_x.shape[0]) == (1797 - 360 - 200, 200, 360)
    assert len(s.mean) == 1 and abs(float(s.train_x.mean())) < 1e-5
    t = load_splits(cfg)
    assert torch.equal(s.train_x, t.train_x) and torch.equal(s.test_y, t.test_y)
    u = load_splits(replace(cfg, seed=3))
    assert not torch.equal(s.test_y, u.test_y)
    full = load_splits(replace(cfg, test_size=100), holdout=False)
    assert (full.train_x.shape[0], full.val_x.shape[0], full.test_x.shape[0]) == (1697, 0, 100)


def test_fake_is_learnable() -> None:
    cfg = DatasetConfig(name="fake", channels=2, image_size=6, num_classes=4, val_size=16)
    s = load_splits(cfg)
    assert s.image_shape == (2, 6, 6) and s.num_classes == 4
    assert (s.train_x.shape[0], s.val_x.shape[0], s.test_x.shape[0]) == (240, 16, 64)
    # Nearest class mean on the training split classifies the test split well above chance.
    means = torch.stack([s.train_x[s.train_y == c].mean(0) for c in range(4)]).flatten(1)
    pred = torch.cdist(s.test_x.flatten(1), means).argmin(1)
    assert (pred == s.test_y).float().mean() > 0.5


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="dataset.name='mnist'.*one of cifar10, digits"):
        load_splits(DatasetConfig(name="mnist"))
    with pytest.raises(ConfigError, match="dataset.val_size=-1"):
        load_splits(DatasetConfig(val_size=-1))
    with pytest.raises(ConfigError, match=r"dataset.val_size=5000.*at most 1436"):
        load_splits(DatasetConfig(name="digits", val_size=5000))


# ---------------------------------------------------------------------------------------------
# image folders


def _write_folder(root: Path) -> None:
    (root / "cat").mkdir(parents=True)
    (root / "dog").mkdir()
    (root / "cat" / "notes.txt").write_text("ignored")
    sizes = [(10, 7), (5, 12), (9, 9), (16, 4), (6, 6)]
    for i, (w, h) in enumerate(sizes):
        suffix = "jpeg" if i == 4 else "png"
        Image.new("RGB", (w, h), (200, 10 * i, 30)).save(root / "cat" / f"c{i}.{suffix}")
        Image.new("L", (h, w), 20 * i).save(root / "dog" / f"d{i}.jpg")
    Image.new("RGBA", (3, 5), (1, 2, 3, 4)).save(root / "dog" / "d5.PNG")
    Image.new("P", (8, 8)).save(root / "cat" / "c5.png")


def test_image_folder(tmp_path: Path) -> None:
    _write_folder(tmp_path)
    cfg = DatasetConfig(
        name="image_folder", data_dir=str(tmp_path), image_size=5, channels=3, val_size=2
    )
    s = load_splits(cfg)
    assert s.image_shape == (3, 5, 5) and s.num_classes == 2
    # 12 images: test 10 % → 1, val 2, train 9
    assert (s.train_x.shape[0], s.val_x.shape[0], s.test_x.shape[0]) == (9, 2, 1)
    all_y = torch.cat([s.train_y, s.val_y, s.test_y])
    assert torch.bincount(all_y).tolist() == [6, 6]
    g = load_splits(replace(cfg, channels=1, test_size=3, val_size=0))
    assert g.image_shape == (1, 5, 5) and g.test_x.shape[0] == 3
    with pytest.raises(ConfigError, match=r"dataset.val_size=12.*at most"):
        load_splits(replace(cfg, val_size=12))
    with pytest.raises(ConfigError, match="dataset.image_size=0"):
        load_splits(replace(cfg, image_size=0))


def test_image_folder_unreadable(tmp_path: Path) -> None:
    _write_folder(tmp_path)
    (tmp_path / "dog" / "broken.png").write_bytes(b"not an image")
    cfg = DatasetConfig(name="image_folder", data_dir=str(tmp_path), image_size=4, val_size=1)
    with pytest.raises(DataError, match="broken.png") as err:
        load_splits(cfg)
    assert "dataset.data_dir" in str(err.value) and "\n" not in str(err.value)


def test_image_folder_needs_two_classes(tmp_path: Path) -> None:
    (tmp_path / "only").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "only" / "a.png")
    cfg = DatasetConfig(name="image_folder", data_dir=str(tmp_path), image_size=4, val_size=0)
    with pytest.raises(DataError, match=r"dataset.data_dir=.*at least 2"):
        load_splits(cfg)
    with pytest.raises(DataError, match="dataset.data_dir"):
        load_splits(replace(cfg, data_dir=str(tmp_path / "missing")))


# ---------------------------------------------------------------------------------------------
# augmentation


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_augment_identity_and_copy() -> None:
    x = torch.randn(4, 3, 6, 6)
    y = augment_batch(x, pad=0, flip=False, cutout=0, generator=_gen())
    assert torch.equal(x, y) and y.data_ptr() != x.data_ptr()


def test_augment_keeps_channels_last_and_values() -> None:
    x = torch.randn(8, 3, 6, 6)
    nhwc = x.contiguous(memory_format=torch.channels_last)
    a = augment_batch(x, pad=2, flip=True, cutout=3, generator=_gen())
    b = augment_batch(nhwc, pad=2, flip=True, cutout=3, generator=_gen())
    assert b.is_contiguous(memory_format=torch.channels_last) and not b.is_contiguous()
    assert a.is_contiguous() and torch.equal(a, b)


def test_device_splits_change_memory_format_on_the_same_device() -> None:
    from enas_lightning.data.device import DeviceSplits

    data = DeviceSplits(load_splits(DatasetConfig(name="fake", train_size=16, val_size=8)))
    data.to(torch.device("cpu"), channels_last=True)
    assert data.train_x.is_contiguous(memory_format=torch.channels_last)
    assert not data.train_x.is_contiguous()
    data.to(torch.device("cpu"))
    assert data.train_x.is_contiguous()


def test_augment_does_not_modify_input() -> None:
    x = torch.randn(8, 3, 6, 6)
    before = x.clone()
    augment_batch(x, pad=2, flip=True, cutout=3, generator=_gen())
    assert torch.equal(x, before)


def test_flip_only_flips() -> None:
    x = torch.randn(200, 2, 5, 7)
    y = augment_batch(x, pad=0, flip=True, generator=_gen())
    same = (y == x).flatten(1).all(1)
    mirrored = (y == x.flip(3)).flatten(1).all(1)
    assert bool((same | mirrored).all())
    assert 0.35 < mirrored.float().mean() < 0.65


def test_flip_fraction_is_half() -> None:
    x = torch.arange(4.0).expand(4000, 1, 1, 4)
    y = augment_batch(x, pad=0, flip=True, generator=_gen(1))
    frac = (y[:, 0, 0, 0] == 3).float().mean().item()
    assert abs(frac - 0.5) < 0.04


def test_crop_is_window_of_padded_input() -> None:
    pad = 2
    x = torch.randn(50, 3, 5, 6)
    y = augment_batch(x, pad=pad, flip=False, generator=_gen())
    padded = torch.nn.functional.pad(x, (pad,) * 4)
    offsets = set()
    for i in range(x.shape[0]):
        windows = [
            (dy, dx)
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
            if torch.equal(y[i], padded[i, :, dy : dy + 5, dx : dx + 6])
        ]
        assert windows, f"image {i} is not a crop of its padded input"
        offsets.add(windows[0])
    assert len(offsets) > 5  # offsets really vary per image


def test_cutout_mask_counts() -> None:
    c = torch.tensor([4, 0, 7])
    mask = cutout_mask(c, torch.tensor([4, 0, 7]), 8, 8, 3)
    assert mask.shape == (3, 8, 8)
    assert mask.flatten(1).sum(1).tolist() == [9, 4, 4]  # centred, 2x2 at either corner
    assert mask[0, 3:6, 3:6].all()


def test_cutout_zeroes_square() -> None:
    x = torch.ones(300, 2, 12, 12)
    y = augment_batch(x, pad=0, flip=False, cutout=4, generator=_gen())
    zeros = (y == 0).flatten(2).sum(2)  # [N, C]
    assert bool((zeros[:, 0] == zeros[:, 1]).all())  # same square in every channel
    assert int(zeros.max()) == 16 and int(zeros.min()) >= 4  # 4x4 inside, clipped at borders
    # Images whose centre lies away from the borders lose exactly the full square.
    assert (zeros[:, 0] == 16).float().mean() > 0.3


def test_augment_reproducible() -> None:
    x = torch.randn(16, 3, 8, 8)
    a = augment_batch(x, pad=2, flip=True, cutout=3, generator=_gen(5))
    b = augment_batch(x, pad=2, flip=True, cutout=3, generator=_gen(5))
    c = augment_batch(x, pad=2, flip=True, cutout=3, generator=_gen(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


# ---------------------------------------------------------------------------------------------
# EpochBatches


def _epoch(loader: EpochBatches) -> list[int]:
    return torch.cat(list(loader)).tolist()


def test_epoch_covers_every_index_once() -> None:
    loader = EpochBatches(100, 10, seed=0)
    batches = list(loader)
    assert len(loader) == 10 and len(batches) == 10
    assert all(b.dtype == torch.int64 and b.shape == (10,) for b in batches)
    assert sorted(torch.cat(batches).tolist()) == list(range(100))
    assert loader.sampler is loader


def test_drop_last() -> None:
    assert len(EpochBatches(25, 10, 0)) == 2 and len(list(EpochBatches(25, 10, 0))) == 2
    keep = EpochBatches(25, 10, 0, drop_last=False)
    assert len(keep) == 3 and [len(b) for b in keep] == [10, 10, 5]
    assert list(EpochBatches(5, 2, 0, shuffle=False, drop_last=False))[-1].tolist() == [4]


def test_two_ranks_disjoint_shards() -> None:
    r0 = EpochBatches(101, 10, seed=3, rank=0, world_size=2)
    r1 = EpochBatches(101, 10, seed=3, rank=1, world_size=2)
    assert len(r0) == len(r1) == 5
    assert r0.indices().numel() == r1.indices().numel() == 50
    a, b = r0.indices().tolist(), r1.indices().tolist()
    assert not set(a) & set(b)
    # Both ranks cut the same permutation (the one a single rank sees) into contiguous shards.
    assert a + b == EpochBatches(101, 10, seed=3).indices()[:100].tolist()
    plain = [EpochBatches(10, 2, 0, rank=r, world_size=3, shuffle=False) for r in range(3)]
    assert [p.indices().tolist() for p in plain] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    r0.set_epoch(1)
    r1.set_epoch(1)
    assert not set(r0.indices().tolist()) & set(r1.indices().tolist())


def test_epochs_differ_and_repeat() -> None:
    loader = EpochBatches(64, 8, seed=1)
    e0 = _epoch(loader)
    loader.set_epoch(1)
    e1 = _epoch(loader)
    assert e0 != e1 and sorted(e0) == sorted(e1)
    loader.set_epoch(0)
    assert _epoch(loader) == e0
    assert _epoch(EpochBatches(64, 8, seed=1)) == e0
    assert _epoch(EpochBatches(64, 8, seed=2)) != e0


def test_mid_epoch_resume() -> None:
    loader = EpochBatches(60, 6, seed=4)
    loader.set_epoch(2)
    full = [b.tolist() for b in loader]
    loader.set_epoch(2)
    seen = []
    for i, b in enumerate(loader):
        seen.append(b.tolist())
        loader.consumed = i + 1
        if i == 3:
            break
    state = loader.state_dict()
    assert state == {"epoch": 2, "consumed": 4}

    resumed = EpochBatches(60, 6, seed=4)
    resumed.load_state_dict(state)
    resumed.set_epoch(2)  # what Lightning does before iterating; keeps the restored position
    rest = [b.tolist() for b in resumed]
    assert seen + rest == full
    # Afterwards the loader is back to full epochs.
    assert len(list(resumed)) == 10
    resumed.load_state_dict(state)
    resumed.set_epoch(3)  # a different epoch discards the partial position
    assert len(list(resumed)) == 10


def test_batch_larger_than_shard() -> None:
    with pytest.raises(ConfigError, match=r"train.batch_size=30.*at most 25") as err:
        EpochBatches(50, 30, seed=0, rank=1, world_size=2, setting="train.batch_size")
    assert "per rank" in str(err.value)
    with pytest.raises(ConfigError, match="batch_size=11"):
        EpochBatches(10, 11, seed=0)


def test_search_epoch_host_reads_due_at_log_interval_phase_end_and_controller() -> None:
    from enas_lightning.search.loader import CHILD, SearchEpoch

    loader = SearchEpoch(EpochBatches(128, 16, seed=0), controller_steps=2)
    phases = [phase for phase, _ in loader]
    assert phases.count(CHILD) == 8 and len(phases) == 10
    due = [step for step in range(len(phases)) if loader.host_reads_due(step, every=3)]
    # every 3rd child step, the last child step, both controller steps
    assert due == [2, 5, 7, 8, 9]

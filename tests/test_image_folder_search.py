"""A search on a folder of real images (scikit-learn's two sample photos cut into patches)."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from tests._resil_util import TINY, cli


def make_tree(root):
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images  # two RGB photos, 427 x 640
    rng = np.random.default_rng(0)
    n = 0
    for cls in range(3):  # class = source photo and half: china-left, china-right, flower
        photo = photos[0] if cls < 2 else photos[1]
        h, w, _ = photo.shape
        x0, x1 = ((0, w // 2), (w // 2, w), (0, w))[cls]
        (root / f"class{cls}").mkdir(parents=True)
        for i in range(24):
            side = int(rng.integers(12, 60))
            y = int(rng.integers(0, h - side))
            x = int(rng.integers(x0, x1 - side))
            patch = Image.fromarray(photo[y : y + side, x : x + side + int(rng.integers(0, 8))])
            if i % 3 == 0:
                patch = patch.convert("L")  # mixed channel counts
            ext = "png" if i % 2 else "jpg"
            patch.save(root / f"class{cls}" / f"{i}.{ext}")
            n += 1
    return n


def test_search_on_image_folder_of_real_images(tmp_path):
    data = tmp_path / "data"
    assert make_tree(data) == 72
    run = tmp_path / "run"
    r = cli(
        *[a for a in TINY if not a.startswith("dataset=")],
        "dataset=image_folder",
        f"dataset.data_dir={data}",
        "dataset.image_size=16",
        "dataset.val_size=20",
        "dataset.test_size=8",
        "search.batch_size=16",
        "search.epochs=1",
        f"hydra.run.dir={run}",
    )
    assert r.returncode == 0, r.stderr
    assert json.loads((run / "best_arch.json").read_text())
    assert "20 validation images" in r.stdout  # val_size reaches the search

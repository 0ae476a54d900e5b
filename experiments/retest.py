"""Test retrained networks again on more images: how much of the noise ceiling is the test set?

Issue 20's noise ceiling (the Kendall tau between two retrain seeds of the same cells) stays
under 0.6 with 5,000 test images. Part of the seed-to-seed disagreement is the test sample
itself: each accuracy has a binomial standard error of about 0.0055 there, half the spread of
the cells. Every retrain of ``experiments/regime.py`` and ``experiments/levers.py`` keeps its
exported network (``export/model.pt2`` and ``preprocess.json``, ``task=final``), so the same
networks can be tested on images that no run has seen, without training anything again.

``--check`` first tests each network on the split it was tested on (the run's own data set,
``dataset.*`` from its saved config) and refuses to go on unless the accuracy equals the run's
``metrics.json`` (the preprocessing is then exactly the training's). Then every network is
tested on ``--images``, a class-per-folder tree disjoint from the runs' data (e.g.
``experiments/fashion_mnist_folder.py ... --exclude data/fmnist800``), loaded by the
``image_folder`` data set as the runs load theirs. Prints and writes ``<out>.json``/``.md``:
per network the accuracy on both, and for a regime directory the cells' spread, the seeds'
spread and the noise ceiling on both test sets.

    python experiments/retest.py --regime runs/regime_c16 --images data/fmnist_unseen \\
        --out runs/retest_c16 --check
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from omegaconf import OmegaConf
from regime import summarize

from enas_lightning.config import DatasetConfig, run_config
from enas_lightning.data.datasets import get_dataset, to_network_input


def load_images(
    data_dir: Path, channels: int, image_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image of a class-per-folder tree, uint8 ``[N, C, S, S]``, and labels ``[N]``."""
    cfg = DatasetConfig(
        name="image_folder", data_dir=str(data_dir), channels=channels, image_size=image_size
    )
    raw = get_dataset("image_folder").load(cfg)
    return torch.cat([raw.train_x, raw.test_x]), torch.cat([raw.train_y, raw.test_y])


def accuracy(run: Path, x: torch.Tensor, y: torch.Tensor, batch: int = 2000) -> float:
    """The exported network of ``run`` on uint8 images ``x`` ``[N, C, H, W]`` and labels ``y``,
    preprocessed as its ``preprocess.json`` says."""
    prep = json.loads((run / "export/preprocess.json").read_text())
    model = torch.export.load(run / "export/model.pt2").module()
    right = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = to_network_input(x[i : i + batch], prep["mean"], prep["std"])
            right += int((model(xb).argmax(1) == y[i : i + batch]).sum())
    return right / len(x)


_OWN: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}


def own_test_split(run: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The test split ``run`` was tested on, uint8 as its data set loads it (by its saved
    ``dataset.*``; loaded once per distinct data set config)."""
    cfg = run_config(OmegaConf.load(run / ".hydra/config.yaml")).dataset
    key = OmegaConf.to_yaml(OmegaConf.structured(cfg))
    if key not in _OWN:
        raw = get_dataset(cfg.name).load(cfg)
        _OWN[key] = (raw.test_x, raw.test_y)
    return _OWN[key]


def arch_seed(run: Path) -> tuple[int, int]:
    """``(arch, seed)`` of a regime retrain directory named ``a<arch>_s<seed>``."""
    arch, seed = run.name[1:].split("_s")
    return int(arch), int(seed)


def regime_rows(regime: dict, accs: dict[tuple[int, int], float]) -> list[dict]:
    """``regime.py``'s rows (arch, seed, test accuracy, share, parameters) with ``accs``
    (``{(arch, seed): accuracy}``) as the test accuracies, for :func:`regime.summarize`."""
    info = {a["arch"]: a for a in regime["per_arch"]}
    return [
        {
            "arch": arch,
            "seed": seed,
            "test_acc": acc,
            "param_free_share": info[arch]["param_free_share"],
            "params": info[arch]["params"],
            "wall_s": None,
        }
        for (arch, seed), acc in sorted(accs.items())
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--regime", type=Path, required=True, help="regime.py's out (a<i>_s<seed>)")
    p.add_argument("--images", type=Path, required=True, help="unseen class-per-folder images")
    p.add_argument("--out", type=Path, required=True, help="<out>.json and <out>.md")
    p.add_argument("--check", action="store_true", help="first match each run's metrics.json")
    p.add_argument("--extra", type=Path, nargs="*", default=[], help="more task=final runs")
    a = p.parse_args()
    torch.set_num_threads(1)
    runs = sorted(a.regime.glob("a*_s*"), key=arch_seed)
    first = run_config(OmegaConf.load(runs[0] / ".hydra/config.yaml")).dataset
    x, y = load_images(a.images, first.channels, first.image_size)
    rows = {}
    for run in [*runs, *a.extra]:
        saved = json.loads((run / "metrics.json").read_text())["test_acc"]
        row = {"own_test": saved}
        if a.check:
            got = accuracy(run, *own_test_split(run))
            if abs(got - saved) > 1e-6:
                raise SystemExit(
                    f"{run}: {got:.4f} on its own test split, metrics.json {saved:.4f}"
                )
        row["unseen"] = accuracy(run, x, y)
        rows[str(run)] = row
        print(f"{run}: own test {saved:.4f}, {len(x)} unseen {row['unseen']:.4f}", flush=True)
    regime = json.loads((a.regime / "regime.json").read_text())
    seeds = list(regime["seeds"])
    summary = {}
    for key, n_test in (("own_test", None), ("unseen", len(x))):
        accs = {arch_seed(run): rows[str(run)][key] for run in runs}
        n = n_test or regime.get("n_test") or len(x)
        summary[key] = summarize(regime_rows(regime, accs), seeds, n)
    lines = [
        f"Retrained networks tested again on {len(x)} unseen images ({a.images})",
        "",
        "| test set | mean | cell spread | seed spread | ratio | noise ceiling tau (95%) |",
        "|---|---|---|---|---|---|",
    ]
    for key, r in summary.items():
        lo, hi = r["ceiling_tau_ci95"]
        lines.append(
            f"| {key} | {r['mean_acc']:.4f} | {r['cell_sd']:.4f} | {r['seed_sd']:.4f} | "
            f"{r['ratio_cell_to_seed_sd']:.2f} | {r['ceiling_tau']:.3f} ({lo:.3f}..{hi:.3f}) |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.with_suffix(".md").write_text(text)
    a.out.with_suffix(".json").write_text(
        json.dumps({"rows": rows, "summary": summary, "images": len(x)}, indent=1)
    )


if __name__ == "__main__":
    main()

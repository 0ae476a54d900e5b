"""The package as pip installs it: built without setuptools warnings, complete, configs loadable.

A wheel is built from a copy of this checkout and installed with ``pip install --target`` into
a folder of its own (``--target`` never touches the running environment's packages); a Python
started outside the checkout with only that folder in front of its path then imports every
module and composes every config preset from the installed package.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "enas_lightning"
# config options that need a Hydra plugin (the `sweeps` extra), composed only where installed
PLUGIN_OPTIONS = {
    "hparams_search/optuna": "hydra_plugins.hydra_optuna_sweeper",
    "hydra/launcher/slurm": "hydra_plugins.hydra_submitit_launcher",
    "hydra/launcher/submitit_local": "hydra_plugins.hydra_submitit_launcher",
}

# The build backend's two hooks as pip calls them (PEP 517 wheel, PEP 660 editable wheel), every
# warning they emit recorded (setuptools warns through the warnings module; pip shows them).
BUILD = """
import json, warnings
from setuptools import build_meta

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    wheel = build_meta.build_wheel("dist")
    build_meta.build_editable("editable")
messages = [f"{w.category.__name__}: {' '.join(str(w.message).split())[:300]}" for w in caught]
print(json.dumps({"wheel": wheel, "warnings": messages}))
"""

# Run by the installed package's Python: argv[1] = the install folder, argv[2] = JSON list of
# the modules to import, argv[3] = JSON list of "group/option" presets to compose.
COMPOSE_ALL = """
import importlib, json, sys
from pathlib import Path

site, modules, presets = Path(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3])
import enas_lightning
assert Path(enas_lightning.__file__).resolve().is_relative_to(site.resolve()), enas_lightning.__file__
for name in modules:
    importlib.import_module(name)

from hydra import compose, initialize_config_module
from enas_lightning.config import register_configs

register_configs()
composed = []
with initialize_config_module("enas_lightning.conf", version_base="1.3"):
    compose(config_name="config", overrides=[], return_hydra_config=True)
    for preset in presets:
        group, _, option = preset.rpartition("/")
        cfg = compose(config_name="config", overrides=[f"{group}={option}"], return_hydra_config=True)
        composed.append(preset)
print(json.dumps(composed))
"""


def source_files(root: Path) -> set[str]:
    """The package's ``.py`` and ``.yaml`` files under ``root``, as paths relative to it."""
    return {
        p.relative_to(root).as_posix()
        for p in (root / PACKAGE).rglob("*")
        if p.suffix in (".py", ".yaml") and "__pycache__" not in p.parts
    }


def copy_checkout(dest: Path) -> Path:
    """The files a build reads, copied so that the build's own files stay out of the checkout."""
    dest.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    shutil.copytree(
        REPO / PACKAGE, dest / PACKAGE, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    return dest


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[str, str]:
    """``(stdout, stderr)`` of a command that must succeed."""
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return done.stdout, done.stderr


@pytest.mark.slow
def test_installed_wheel_is_complete_and_composes_every_preset(tmp_path: Path) -> None:
    src = copy_checkout(tmp_path / "src")
    # the builds pip runs for `pip wheel .` and `pip install -e .`, without a warning
    out, _ = run([sys.executable, "-c", BUILD], cwd=src)
    built = json.loads(out.strip().splitlines()[-1])
    assert built["warnings"] == []
    wheel = src / "dist" / built["wheel"]

    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip"]
    run([*pip, "install", "--no-deps", "--no-index", "--ignore-installed", "--target",
         str(site), str(wheel)], cwd=tmp_path)  # fmt: skip
    # every module and config of the checkout is in the installed package (a folder without
    # __init__.py is a package too)
    files = source_files(REPO)
    assert source_files(site) == files

    modules = sorted(
        ".".join(Path(f).with_suffix("").parts).removesuffix(".__init__")
        for f in files
        if f.endswith(".py") and not f.endswith("__main__.py")
    )
    presets = sorted(
        Path(f).relative_to(f"{PACKAGE}/conf").with_suffix("").as_posix()
        for f in files
        if f.endswith(".yaml") and f != f"{PACKAGE}/conf/config.yaml"
    )
    presets = [
        p
        for p in presets
        if p not in PLUGIN_OPTIONS or importlib.util.find_spec(PLUGIN_OPTIONS[p]) is not None
    ]
    assert {"experiment/quickstart", "dataset/cifar10", "search_space/macro"} <= set(presets)
    elsewhere = tmp_path / "elsewhere"  # no checkout on the path: only the installed package
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "HYDRA_FULL_ERROR": "1"}
    out, _ = run(
        [sys.executable, "-c", COMPOSE_ALL, str(site), json.dumps(modules), json.dumps(presets)],
        cwd=elsewhere,
        env=env,
    )
    assert json.loads(out.strip().splitlines()[-1]) == presets

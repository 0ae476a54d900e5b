"""Adding a space is one folder and one registration: a toy space runs every task.

``tests/toy_space.py`` registers a chain space (3 layers, each ``conv_3x3`` or
``avg_pool_3x3``) of its own, with a setting of its own (the stem's kernel size); the search, the
final training, ``task=inspect`` and the pictures then run on it through the same code paths as
the built-in spaces, chosen as ``search_space=chain`` (docs/new_space.md).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from enas_lightning import app
from enas_lightning.app import run
from enas_lightning.arch import load_arch
from enas_lightning.errors import ConfigError
from enas_lightning.spaces import SPACES, get_space
from enas_lightning.spaces.cost import count_params
from enas_lightning.viz import arch_dot
from tests.conftest import compose_cfg
from tests.toy_space import CHAIN, ChainArch, ChainNetwork, ChainSearchSpaceConfig

CHAIN_CLI = [
    "search_space=chain",  # its ops and aux_weight=0 are the defaults of its settings
    "search_space.layers=3",
    "search_space.channels=4",
    "search_space.aux_weight=0",
    "final.channels=4",
    "final.epochs=1",
    "final.batch_size=16",
]


@pytest.fixture(autouse=True)
def _clear_hydra():
    yield
    GlobalHydra.instance().clear()


def test_the_toy_space_is_registered_by_name() -> None:
    assert SPACES["chain"] is CHAIN and get_space("chain") is CHAIN
    assert list(SPACES)[:2] == ["micro", "macro"] and "chain" in SPACES
    with pytest.raises(
        ConfigError, match="search_space.name='nope' is not allowed: one of micro, macro"
    ):
        get_space("nope")


def test_toy_space_runs_search_final_inspect_and_pictures(tmp_path: Path) -> None:
    # search: the controller samples chains, the supernet trains them, the derivation picks one
    # with the space's own settings: a 5x5 stem in the supernet, a 1x1 stem in the final network
    search_dir = tmp_path / "search"
    run(compose_cfg(search_dir, [*CHAIN_CLI, "task=search", "search_space.stem_kernel=5"]))
    GlobalHydra.instance().clear()
    ckpt = torch.load(next(search_dir.rglob("last.ckpt")), map_location="cpu", weights_only=False)
    assert ckpt["state_dict"]["supernet.stem.weight"].shape == (4, 3, 5, 5)
    assert ckpt["enas"]["fingerprint"]["search_space.stem_kernel"] == 5
    best_file = next(search_dir.rglob("best_arch.json"))
    saved = json.loads(best_file.read_text())
    assert saved["space"] == "chain" and len(saved["ops"]) == 3
    best = load_arch(best_file, "chain", ("conv_3x3", "avg_pool_3x3"), size=3)
    assert isinstance(best, ChainArch)
    # the search's pictures: the derived architecture and the controller's op probabilities
    assert any(search_dir.rglob("best_arch.dot"))
    assert "2: " in next(search_dir.rglob("best_arch.dot")).read_text()
    assert any(search_dir.rglob("op_probs.png"))
    history = json.loads(next(search_dir.rglob("history.json")).read_text())
    assert len(history) == 2  # one summary per search epoch

    # final: the standalone network of the derived chain, trained, tested and exported
    final_dir = tmp_path / "final"
    final_cli = [*CHAIN_CLI, "task=final", f"arch={best_file}", "final.stem_kernel=1"]
    acc = run(compose_cfg(final_dir, final_cli))
    GlobalHydra.instance().clear()
    assert 0.0 <= acc <= 1.0
    metrics = json.loads((final_dir / "metrics.json").read_text())
    assert metrics["arch"] == saved["ints"]
    assert metrics["params"] == count_params(
        ChainNetwork(best, 4, 3, 4, stem_kernel=1)
    )  # 4 classes
    assert (final_dir / "export" / "arch.json").is_file()

    # inspect: the authors'-style integer string, its cost and its picture
    inspect_dir = tmp_path / "inspect"
    out = run(compose_cfg(inspect_dir, [*CHAIN_CLI, "task=inspect", "arch='0 1 0'"]))
    assert out is None
    dot = (inspect_dir / "arch.dot").read_text()
    assert "0: conv_3x3" in dot and "1: avg_pool_3x3" in dot
    arch = json.loads((inspect_dir / "arch.json").read_text())
    assert arch["ops"] == ["conv_3x3", "avg_pool_3x3", "conv_3x3"]
    cost = CHAIN.cost(
        compose_cfg(tmp_path, CHAIN_CLI).final, ChainArch(tuple(arch["ops"])), 10, (3, 16, 16)
    )
    assert cost.params > 0 and cost.madds > 0
    assert len(arch_dot(ChainArch(("conv_3x3",))).edges) == 2


def test_toy_space_rejects_its_own_bad_settings(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match="search_space.ops='sep_conv_3x3' is not allowed: chain ops"
    ):
        run(compose_cfg(tmp_path, [*CHAIN_CLI, "search_space.ops=[sep_conv_3x3]"]))


def test_search_space_chain_composes_the_spaces_own_settings(tmp_path: Path) -> None:
    cfg = compose_cfg(tmp_path, ["search_space=chain", "search_space.stem_kernel=7"])
    assert OmegaConf.get_type(cfg.search_space) is ChainSearchSpaceConfig
    assert cfg.search_space.name == "chain" and cfg.search_space.stem_kernel == 7
    assert list(cfg.search_space.ops) == ["conv_3x3", "avg_pool_3x3"]  # the dataclass's default
    assert cfg.final.stem_kernel == 3 and "num_nodes" not in cfg.search_space


@pytest.mark.parametrize(
    "overrides,message",
    [
        (  # the toy's setting under a built-in space
            ["search_space=micro", "search_space.stem_kernel=5"],
            "search_space.stem_kernel='5' is not allowed: a setting of search_space=chain, "
            "not of micro; keys of search_space: ",
        ),
        (  # a built-in space's setting under the toy space
            ["search_space=chain", "controller.skip_weight=0.5"],
            "controller.skip_weight='0.5' is not allowed: a setting of search_space=macro",
        ),
        (  # the toy's own check of its own setting
            ["search_space=chain", "search_space.stem_kernel=4"],
            "search_space.stem_kernel=4 is not allowed: an odd size",
        ),
        (  # renaming the space leaves the micro settings in place
            ["search_space.name=chain"],
            "search_space.name='chain' is not allowed: given as a group, search_space=chain",
        ),
    ],
    ids=["toy setting under micro", "macro setting under toy", "toy check", "renamed"],
)
def test_the_toy_spaces_settings_are_checked_in_one_line(
    overrides, message, tmp_path, monkeypatch, capsys
) -> None:
    """Through the command line's entry point (``app.main``), as tests/test_errors.py."""
    argv = ["enas_lightning", "trainer=cpu", "dataset=fake", "logger=none", *overrides]
    monkeypatch.setattr(sys, "argv", [*argv, f"hydra.run.dir={tmp_path / 'run'}"])
    with pytest.raises(SystemExit) as exc:
        app.main()
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"error: {message}"), err
    assert not (tmp_path / "run").exists()


def test_a_space_of_another_package_is_found_by_its_entry_point(monkeypatch, tmp_path) -> None:
    """An installed package announces its space in the ``enas_lightning.spaces`` group; the
    registry imports that module on its first lookup, and the import registers the space."""
    import importlib.metadata

    from enas_lightning import spaces

    (tmp_path / "plugin_space.py").write_text(
        "from enas_lightning.spaces import register_space\n"
        "from tests.toy_space import ChainSpace\n"
        "class Plugin(ChainSpace):\n    name = 'plugin_chain'\n"
        "register_space(Plugin())\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    ep = importlib.metadata.EntryPoint("plugin_chain", "plugin_space", spaces.ENTRY_POINT_GROUP)
    monkeypatch.setattr(
        importlib.metadata, "entry_points", lambda group: [ep] if group == ep.group else []
    )
    # as in a new process: nothing looked up yet (restored afterwards)
    monkeypatch.setattr(SPACES, "_items", dict(SPACES._items))
    monkeypatch.setattr(SPACES, "_loaded", False)
    assert "plugin_chain" in SPACES and list(SPACES)[:2] == ["micro", "macro"]
    assert SPACES["plugin_chain"].record is ChainArch
    # its settings come with it: search_space=plugin_chain composes them
    cfg = compose_cfg(tmp_path, ["search_space=plugin_chain", "search_space.stem_kernel=5"])
    assert cfg.search_space.name == "plugin_chain" and cfg.search_space.stem_kernel == 5
    assert "plugin_chain" in app.group_options("search_space")  # the CLI's group check

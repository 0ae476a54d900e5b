"""``final.compile``: false | true | auto (compile when the run has more than
``final.compile_min_steps`` optimizer steps), and the persistent inductor cache."""

from __future__ import annotations

import os

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

from enas_lightning.build import validate
from enas_lightning.config import register_configs
from enas_lightning.errors import ConfigError
from enas_lightning.final.compile import CACHE_ENV, should_compile, use_persistent_cache
from tests.test_final import make_cfg as final_cfg
from tests.test_final import make_module


@pytest.mark.parametrize(
    ("given", "stored"), [("true", "True"), ("false", "False"), ("auto", "auto"), ("True", "True")]
)
def test_compile_accepts_true_false_auto(make_cfg, given, stored):
    cfg = make_cfg([f"final.compile={given}"])
    assert cfg.final.compile == stored  # Hydra reads true as a bool; the str field keeps "True"
    validate(cfg)


@pytest.mark.parametrize("bad", ["maybe", "1", "yes"])
def test_compile_rejects_other_values_in_one_line(make_cfg, bad):
    cfg = make_cfg([f"final.compile={bad}"])
    with pytest.raises(ConfigError) as e:
        validate(cfg)
    assert str(e.value).startswith(
        f"final.compile={bad!r} is not allowed: one of false, true, auto"
    )
    assert "\n" not in str(e.value)


def test_compile_min_steps_is_not_negative(make_cfg):
    with pytest.raises(ConfigError, match="final.compile_min_steps"):
        validate(make_cfg(["final.compile_min_steps=-1"]))


def test_auto_compiles_only_past_the_step_threshold():
    assert not should_compile("false", 10**9, 0)
    assert should_compile("true", 1, 10**9)
    assert should_compile(True, 1, 10**9)
    assert should_compile("auto", 101, 100)
    assert not should_compile("auto", 100, 100)


def test_module_compiles_on_auto_past_the_threshold(monkeypatch, tmp_path):
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    # 64 training images, batch 16, 2 epochs: 8 steps
    no_drop = {"compile": "auto", "drop_path_keep": 1.0}
    eager = make_module(final_cfg(compile_min_steps=8, **no_drop))
    assert eager.total_steps() == 8
    eager.maybe_compile()
    assert eager._compiled is None
    compiled = make_module(final_cfg(compile_min_steps=7, **no_drop))
    compiled.maybe_compile()  # torch.compile wraps here; nothing is compiled before a call
    assert compiled._compiled is not None
    assert os.environ[CACHE_ENV] == str(tmp_path / "enas_lightning" / "inductor")


def test_auto_stays_eager_with_drop_path(monkeypatch, tmp_path):
    """Drop path's keep probability changes every step: compiled, it would recompile each step."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    module = make_module(final_cfg(compile="auto", compile_min_steps=0, drop_path_keep=0.6))
    assert module.recompiles_every_step()
    module.maybe_compile()
    assert module._compiled is None
    forced = make_module(final_cfg(compile="true", drop_path_keep=0.6))
    forced.maybe_compile()  # true is the user's call
    assert forced._compiled is not None


def test_persistent_cache_keeps_the_users_directory(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "mine"))
    assert use_persistent_cache() == str(tmp_path / "mine")
    assert os.environ[CACHE_ENV] == str(tmp_path / "mine")


def test_quickstart_stays_eager():
    """The quickstart's default stays off, and its step count would not trigger auto either."""
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_module("enas_lightning.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=["experiment=quickstart"])
    GlobalHydra.instance().clear()
    assert cfg.final.compile == "false"
    from enas_lightning.data.datasets import load_splits

    n = len(load_splits(cfg.dataset, holdout=False).train_y)
    steps = cfg.final.epochs * (n // cfg.final.batch_size)
    assert not should_compile("auto", steps, cfg.final.compile_min_steps)

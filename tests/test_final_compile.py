"""``final.compile``: false | true | auto (compile when the run has more than
``final.compile_min_steps`` optimizer steps), and the persistent inductor cache."""

from __future__ import annotations

import os
import random

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from torch._dynamo.utils import counters

from enas_lightning.build import validate
from enas_lightning.config import register_configs
from enas_lightning.errors import ConfigError
from enas_lightning.final.compile import CACHE_ENV, should_compile, use_persistent_cache
from enas_lightning.spaces.micro.network import MicroNetwork
from enas_lightning.spaces.ops import drop_path
from tests.test_final import make_cfg as final_cfg
from tests.test_final import make_module
from tests.test_networks import random_micro


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


def _failing_backend(gm, example_inputs):
    raise RuntimeError("this backend cannot compile here")


@pytest.mark.parametrize("mode", ["auto", "true"])
def test_a_failing_compile_falls_back_to_eager_only_on_auto(monkeypatch, tmp_path, mode):
    """auto (what a preset turns on) must never fail a run: a backend error runs eager; a user's
    final.compile=true keeps the error."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    real = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model: real(model, backend=_failing_backend))
    torch._dynamo.reset()
    module = make_module(final_cfg(compile=mode, compile_min_steps=0, drop_path_keep=1.0))
    module.eval()
    x = module.data.test_x[:2]
    # the patch restores dynamo's setting, which auto turns on for the process
    with torch._dynamo.config.patch(suppress_errors=False), torch.no_grad():
        module.maybe_compile()
        if mode == "true":
            with pytest.raises(Exception, match="cannot compile here"):
                module(x)
        else:
            torch.testing.assert_close(module(x), module.network(x))
    torch._dynamo.reset()


def test_auto_compiles_with_drop_path(monkeypatch, tmp_path):
    """Drop path no longer keeps ``auto`` eager: it compiles into one graph (below)."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    module = make_module(final_cfg(compile="auto", compile_min_steps=0, drop_path_keep=0.6))
    module.maybe_compile()
    assert module._compiled is not None


def test_drop_path_compiles_once_for_a_growing_keep_probability():
    """The keep probability grows every step; compiled, the network reads it from a 0-dim
    buffer, so dynamo compiles one training graph for the whole run (a float attribute was
    compiled as a constant first and recompiled on the next step: the whole inductor compile
    twice). The eager backend: dynamo's guards without inductor's minutes."""
    torch._dynamo.reset()
    counters.clear()
    net = MicroNetwork(
        random_micro(random.Random(0)),
        10,
        in_channels=1,
        layers=3,
        channels=4,
        drop_path_keep=0.6,
        image_size=8,
    )
    net.train()
    compiled = torch.compile(net, backend="eager")
    x = torch.randn(4, 1, 8, 8)
    for step in range(1, 11):
        net.drop_path_progress = step / 10
        compiled(x)
    assert counters["stats"]["unique_graphs"] == 1
    assert "_progress" not in net.state_dict()  # checkpoints and exports are unchanged
    torch._dynamo.reset()


def test_tensor_keep_drops_at_its_rate_and_scale():
    """A 0-dim tensor ``keep`` (the compiled path) masks with ``rand < keep``: Bernoulli(keep)
    per sample, kept samples scaled by 1 / keep, the probability read at each call."""
    torch.manual_seed(0)
    x = torch.ones(20000, 2, 1, 1)
    for keep in (0.9, 0.7, 0.55, 1.0):
        y = drop_path(x, torch.tensor(keep))
        kept = y[:, 0, 0, 0] != 0
        assert abs(kept.float().mean().item() - keep) < 0.015
        torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / keep))
        assert torch.equal(y[:, 0], y[:, 1])  # one draw per sample


def test_eager_drop_path_draws_as_before():
    """Eager runs keep ``bernoulli_``: the same masks, bit for bit, as before the compile path."""
    x = torch.randn(64, 3, 4, 4)
    torch.manual_seed(5)
    got = drop_path(x, 0.7)
    torch.manual_seed(5)
    want = x * torch.empty(64, 1, 1, 1).bernoulli_(0.7) / 0.7
    assert torch.equal(got, want)


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

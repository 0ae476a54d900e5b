"""Each space owns its settings: the presets compose, another space's setting is refused in one
line, and runs and checkpoints made when the config held every space's settings still load.

The built-in spaces' settings live in ``spaces/<name>/settings.py``; ``search_space=<name>``
composes them (the toy space's are tested in tests/test_new_space.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from enas_lightning.build import validate
from enas_lightning.checkpointing import check_fingerprint, space_fingerprint
from enas_lightning.config import SPACE_SECTIONS, run_config, space_config
from enas_lightning.errors import CheckpointError, ENASError
from enas_lightning.precheck import compose
from enas_lightning.spaces import SPACES, register_space
from enas_lightning.spaces.macro.settings import MacroControllerConfig, MacroSearchSpaceConfig
from enas_lightning.spaces.micro.settings import MicroFinalConfig, MicroSearchSpaceConfig

CONF = Path(__file__).resolve().parents[1] / "enas_lightning" / "conf"
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
SPACE_PRESETS = sorted(p.stem for p in (CONF / "search_space").glob("*.yaml"))
PRESETS = [
    *([f"experiment={e}"] for e in EXPERIMENTS),
    *([f"search_space={s}"] for s in SPACE_PRESETS),
    ["hparams_search=optuna"],
]


@pytest.mark.parametrize("controller", ["enas", "random"])
@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p[0])
def test_every_preset_composes_and_validates(preset: list[str], controller: str) -> None:
    cfg = compose([*preset, f"controller={controller}", "trainer=cpu"])
    space = SPACES[cfg.search_space.name]
    for section, base in SPACE_SECTIONS.items():
        assert OmegaConf.get_type(cfg[section]) is space.settings.get(section, base)
    assert cfg.controller.name == controller  # the space's defaults do not reset the group
    validate(cfg)


def test_the_presets_keep_their_values() -> None:
    """The space presets' values land on the typed sections (the same as before the move)."""
    micro = compose(["experiment=quickstart"])
    assert micro.search_space.num_nodes == 4 and micro.controller.op_bias is False
    assert micro.controller.op_tanh_reduce == 2.5 and micro.final.layer_base is True
    macro = compose(["search_space=macro"])
    assert (macro.search_space.skip_merge, macro.final.skip_merge) == ("sum", "concat")
    assert (macro.controller.skip_target, macro.controller.skip_weight) == (0.4, 0.8)
    assert macro.controller.tanh_constant == 1.5 and macro.search.reward_dropout is False


def test_the_paper_presets_run_the_authors_settings() -> None:
    """The paper presets (experiment=*_search, *_final) run fp32 as the authors; the searches
    use the authors' controller LSTM (no biases), the macro search their skip penalty and
    entropy; the macro final training no cutout (neither the script nor the paper), the micro
    final cutout 16 (the paper's result). The spaces' own presets keep this project's choices."""
    for preset in ("micro_search", "macro_search", "micro_final", "macro_final"):
        cfg = compose([f"experiment={preset}"])
        assert cfg.trainer.precision == "32-true" and cfg.trainer.accelerator == "gpu", preset
    macro = compose(["experiment=macro_search"]).controller
    assert (macro.skip_penalty, macro.entropy, macro.lstm_bias) == ("authors", "chosen", False)
    for preset in ("micro_search", "macro_search"):  # the settings reach the controller
        cfg = compose([f"experiment={preset}"])
        ctrl = SPACES[cfg.search_space.name].build_controller(cfg.search_space, cfg.controller)
        assert all(cell.bias_ih is None for cell in ctrl.lstm), preset
    assert ctrl.skip_penalty == "authors" and ctrl.entropy == "chosen"
    assert compose(["experiment=macro_final"]).final.cutout == 0
    assert compose(["experiment=macro_search"]).final.cutout == 0
    assert compose(["experiment=micro_final"]).final.cutout == 16
    default = compose(["search_space=macro"])
    assert (default.controller.skip_penalty, default.controller.entropy) == ("sampled", "full")
    assert default.controller.lstm_bias is True and default.trainer.precision == "32-true"
    quick = compose(["experiment=quickstart"])
    assert quick.controller.lstm_bias is True and quick.trainer.precision == "32-true"


@pytest.mark.parametrize(
    "overrides,setting",
    [
        (["search_space=macro", "controller.skip_penalty=sigmoid"], "controller.skip_penalty"),
        (["search_space=macro", "controller.entropy=sampled"], "controller.entropy"),
    ],
)
def test_a_wrong_macro_controller_choice_is_one_line(overrides, setting) -> None:
    with pytest.raises(ENASError, match=rf"^{setting}='\w+' is not allowed: one of ") as exc:
        validate(compose(overrides))
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (
            ["search_space=micro", "controller.skip_weight=0.5"],
            "controller.skip_weight='0.5' is not allowed: a setting of search_space=macro, not "
            "of micro; keys of controller: name, lstm_size,",
        ),
        (
            ["search_space=macro", "controller.op_bias=false"],
            "controller.op_bias='false' is not allowed: a setting of search_space=micro, not of "
            "macro; keys of controller: ",
        ),
        (
            ["search_space=macro", "final.layer_base=false"],
            "final.layer_base='false' is not allowed: a setting of search_space=micro",
        ),
        (  # a micro preset with the other space: the setting and the file that sets it
            ["experiment=quickstart", "search_space=macro"],
            "search_space.num_nodes (in experiment/quickstart) is not allowed: a setting of "
            "search_space=micro, not of macro",
        ),
        (["controller.skip_targt=0.5"], "controller.skip_targt='0.5' is not allowed: no such"),
    ],
)
def test_another_spaces_setting_is_one_line_naming_it(overrides, message) -> None:
    with pytest.raises(ENASError) as exc:
        compose(overrides)
    assert str(exc.value).startswith(message) and "\n" not in str(exc.value), str(exc.value)


def test_a_space_chosen_by_renaming_is_refused_in_one_line() -> None:
    cfg = compose(["search_space.name=macro"])  # the micro sections, renamed
    with pytest.raises(ENASError, match=r"^search_space.name='macro' is not allowed: given as a"):
        validate(cfg)


def test_space_config_types_the_sections_as_the_group_does() -> None:
    cfg = space_config("micro")
    assert OmegaConf.get_type(cfg.search_space) is MicroSearchSpaceConfig
    assert OmegaConf.get_type(cfg.final) is MicroFinalConfig
    macro = space_config("macro")
    assert macro.search_space.name == "macro"
    assert OmegaConf.get_type(macro.controller) is MacroControllerConfig
    with pytest.raises(ENASError, match="search_space.name='nope'"):
        space_config("nope")


def test_a_space_setting_must_extend_its_section() -> None:
    from enas_lightning.spaces.micro.space import MicroSpace

    class Bad(MicroSpace):
        name = "bad"
        settings = {"search": MacroSearchSpaceConfig}  # not a section a space extends

    with pytest.raises(TypeError, match=r"space 'bad': settings\['search'\]"):
        register_space(Bad())
    assert "bad" not in SPACES


def old_run_config(space: str) -> dict:
    """A ``.hydra/config.yaml`` as runs wrote it when every section held every space's keys."""
    cfg = OmegaConf.to_container(compose([f"search_space={space}"]), resolve=False)
    cfg.pop("hydra")
    union = {
        "search_space": {"num_nodes": 5, "weights_per_input": True, "skip_merge": "sum"},
        "controller": {"op_tanh_reduce": 2.5, "op_bias": True, "skip_target": 0.4},
        "final": {"layer_base": True, "skip_merge": "concat"},
    }
    for section, keys in union.items():
        for key, value in keys.items():
            cfg[section].setdefault(key, value)
    cfg["controller"]["skip_weight"] = 0.8
    return cfg


@pytest.mark.parametrize("space", ["micro", "macro"])
def test_a_run_saved_with_every_spaces_settings_still_loads(space: str) -> None:
    """task=fidelity reads a finished search's saved config (tasks/fidelity.py)."""
    old = old_run_config(space)
    if space == "micro":
        old["search_space"]["num_nodes"] = 3
    cfg = run_config(OmegaConf.create(old))
    assert OmegaConf.get_type(cfg.search_space) is SPACES[space].settings["search_space"]
    if space == "micro":
        assert cfg.search_space.num_nodes == 3 and "skip_weight" not in cfg.controller
    else:
        assert cfg.controller.skip_weight == 0.8 and "layer_base" not in cfg.final
    validate(OmegaConf.merge(cfg, {"trainer": {"accelerator": "cpu"}}))


def test_a_misspelt_key_in_a_saved_run_is_still_refused() -> None:
    old = old_run_config("micro")
    old["controller"]["lrr"] = 0.1
    with pytest.raises(Exception, match="lrr"):
        run_config(OmegaConf.create(old))


def test_checkpoint_fingerprints_keep_their_keys() -> None:
    """A micro checkpoint's fingerprint is what it was; a macro checkpoint made before
    ``search_space.skip_merge`` was fingerprinted still resumes, one with the other merge is
    refused in one line."""
    micro = space_fingerprint(compose(["trainer=cpu"]))
    assert list(micro) == [
        "search_space.name",
        "search_space.layers",
        "search_space.channels",
        "search_space.ops",
        "search_space.aux_weight>0",
        "search_space.num_nodes",
        "search_space.weights_per_input",
        "controller.lstm_size",
        "controller.lstm_layers",
        # the levers against the collapse (issue 20); older checkpoints lack them and still load
        "search.param_free_dropout",
        "search.bn_affine",
        "search.init",
        "search.optim.dense_weight_decay",
        "search.uniform_children",
        "search.param_free_adjust",
        # the derivation's fine-tuning and pruning (task=fidelity leaves these out)
        "search.derive_finetune_steps",
        "search.derive_finetune_lr",
        "search.derive_uniform_steps",
        "search.derive_uniform_lr",
        "search.derive_prune_keep",
        "search.derive_prune_steps",
        "search.derive_prune_lr",
    ]
    cfg = compose(["search_space=macro"])
    old = {k: v for k, v in space_fingerprint(cfg).items() if k != "search_space.skip_merge"}
    check_fingerprint({"enas": {"fingerprint": old}}, cfg)
    other = {**old, "search_space.skip_merge": "concat"}
    with pytest.raises(CheckpointError, match="search_space.skip_merge='concat' but this run"):
        check_fingerprint({"enas": {"fingerprint": other}}, cfg)

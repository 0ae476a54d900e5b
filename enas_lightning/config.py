"""Structured configs: dataclasses registered in Hydra's ConfigStore.

The primary config (``conf/config.yaml``) starts from :class:`Config`, so a misspelt key or a
value of the wrong type is rejected by Hydra before anything runs. Values that need more than a
type check (an op name, a layer count too small for the reductions) are checked by
:func:`enas_lightning.build.validate` before any training starts.

The sections here hold the settings every search space has. A space adds its own (micro's nodes
per cell, macro's skip penalty) as dataclasses extending these sections, named in its
``Space.settings``; :func:`register_configs` stores them as ``<name>_space_settings``, which
``search_space=<name>`` merges first, so that a setting of another space is rejected by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from enas_lightning.spaces.micro.arch import AUTHORS_MICRO_OPS

if TYPE_CHECKING:
    from enas_lightning.spaces import Space


@dataclass
class SearchSpaceConfig:
    """The search space and the supernet's size during search (each space adds its own
    settings: ``spaces/<name>/settings.py``)."""

    name: str = "micro"  # a registered space, chosen with search_space=<name>
    layers: int = 6  # micro: normal cells (2 reduction cells are added); macro: layers
    channels: int = 20
    ops: list[str] = field(default_factory=lambda: list(AUTHORS_MICRO_OPS))
    dropout_keep: float = 0.9  # keep probability before the classifier
    aux_weight: float = 0.4  # micro: aux head loss weight during search (0 = no aux head)


@dataclass
class ControllerConfig:
    """The LSTM controller and its REINFORCE training (the authors' micro values; a space adds
    its own decisions' settings)."""

    # the search strategy (enas_lightning/strategies): enas | random (uniform sampling, never
    # learns) | another registered one
    name: str = "enas"
    lstm_size: int = 64
    lstm_layers: int = 1
    # biases in the LSTM cells (torch's LSTMCell); false: none, as the authors' LSTM
    lstm_bias: bool = True
    tanh_constant: float | None = 1.1
    temperature: float | None = None
    lr: float = 3.5e-3
    betas: list[float] = field(default_factory=lambda: [0.0, 0.999])
    eps: float = 1e-3
    entropy_weight: float = 1e-4  # reward += entropy_weight * entropy
    baseline_decay: float = 0.99
    train_steps: int = 30  # controller updates per controller phase
    num_aggregate: int = 10  # architectures per update (per rank)
    train_every: int = 1  # a controller phase after every n child epochs


@dataclass
class RewardConfig:
    """How children are scored, in the controller phase and the derivation alike."""

    # enas_lightning/rewards: accuracy (on the validation images) | loss (minus the mean
    # cross-entropy) | cost_aware (accuracy weighed by the cost, docs/cost_aware.md) | another
    # registered one
    name: str = "accuracy"
    # reward=cost_aware only (MnasNet's acc * (cost / target) ** w): the cost weighed in:
    # params | madds (of the standalone network, final.*) | latency (ms, from the latency
    # table: task=latency_table)
    cost: str = "params"
    target: float | None = None  # the budget, in the cost's unit (parameters, multiply-adds, ms)
    # soft: the exponent over the target (<= 0; MnasNet's soft constraint -0.07)
    w: float = -0.07
    # the exponent at or below the target (<= 0); None: the same as w (MnasNet's soft form,
    # alpha = beta: the same accuracy-cost trade-off on both sides of the target)
    w_below: float | None = None
    # soft: the exponents above; hard: accuracy at or below the target, `penalty` over it
    constraint: str = "soft"
    penalty: float = 0.0  # constraint=hard: the reward of a child over the target


@dataclass
class ChildOptimConfig:
    """SGD with Nesterov momentum and SGDR for the shared child weights."""

    lr_max: float = 0.05
    lr_min: float = 5e-4
    t0: int = 10  # first SGDR period in epochs
    t_mul: int = 2  # each period is t_mul times longer
    momentum: float = 0.9
    nesterov: bool = True
    # The authors' convention (utils.get_train_ops): loss += l2_reg * sum(w**2) over every
    # trained weight, a gradient of 2 * l2_reg * w; the optimizer gets weight_decay = 2 * l2_reg
    # (torch's weight_decay=l2_reg would be half their strength). Values are the scripts' l2_reg.
    l2_reg: float = 1e-4
    grad_clip: float = 5.0  # gradient-norm bound (0 = off)
    # norm: each tensor's gradient clipped to norm grad_clip on its own (the authors'
    # clip_mode="norm"); global: the norm of all gradients together; none: no clipping
    grad_clip_mode: str = "norm"


@dataclass
class SearchOptimConfig(ChildOptimConfig):
    """The child optimiser of the search: :class:`ChildOptimConfig` and what only a supernet has."""

    # true: the authors' search: every supernet weight, sampled by the child or not, is decayed
    # and moved by momentum at every child step (their L2 term covers every variable and
    # _enas_cell gives the ops not sampled zero gradients); false: only the child's weights
    # (torch's SGD skips a weight without a gradient). See docs/faithfulness.md.
    dense_weight_decay: bool = False


@dataclass
class SearchConfig:
    """The search loop: child phase, controller phase, derivation."""

    epochs: int = 150
    batch_size: int = 160  # child minibatch and reward minibatch (per rank)
    eval_batch_size: int = 500  # derivation batches
    derive_samples: int = 100  # K sampled candidates scored at the end (+ the greedy one)
    # supernet warm-up: for the first N epochs the children are sampled uniformly (as
    # controller=random does) and the controller phase does not run (no update, baseline kept)
    warmup_epochs: int = 0
    # Lever against the collapse (issue 20), off by default and in every preset: true: every
    # child phase trains uniformly sampled children (as in the warm-up and controller=random),
    # while the controller phase still runs after the warm-up: the supernet is trained as random
    # search's, the controller searches it. It breaks ENAS's feedback loop, in which the
    # controller's favourites get the most shared-weight training and so the best rewards
    uniform_children: bool = False
    # Lever against the collapse (issue 20), off by default and in every preset: true: children
    # are compared only with children of like parameter-free share (identity, pooling). The
    # controller's baseline is a moving-average least-squares line of the reward on the child's
    # parameter-free share (search/baseline.py), so a child's advantage is its reward minus that
    # of its share; the derivation ranks the candidates by their score minus the least-squares
    # line of score on share fitted over them. Both remove the one slope the shared weights add
    # for every parameter-free op (experiments/RESULTS.md), and nothing else
    param_free_adjust: bool = False
    derive_batches: int = 0  # validation batches per candidate (0 = the whole split)
    # Lever against the shared weights' poor ranking (issue 20; Zhang et al. 2020, "Deeper
    # Insights into Weight Sharing in NAS"): every scored candidate (the derivation's and
    # task=fidelity's) first trains for this many SGD minibatch steps on the training split, on
    # its own copy of the shared weights, which stay untouched (0 = off, the paper's scoring)
    derive_finetune_steps: int = 0
    # the fine-tuning's learning rate (momentum, Nesterov, weight decay and clipping are
    # search.optim's, the momentum starts at zero). 0.01 lies inside the search's lr_min..lr_max
    # (5e-4..0.05): near lr_max a few steps with cold momentum undo much of what the child
    # shares, near lr_min ten steps barely move it
    derive_finetune_lr: float = 0.01
    # Lever against the controller-biased shared weights (issue 20): before the derivation and
    # task=fidelity score anything, a copy of the supernet trains this many more SGD steps on
    # uniformly sampled children, at rates falling on a half cosine from derive_uniform_lr to
    # search.optim.lr_min; candidates are scored on the copy, the supernet stays untouched
    # (0 = off, the paper's scoring). Measured in experiments/RESULTS.md, "A uniform finish"
    derive_uniform_steps: int = 0
    derive_uniform_lr: float = 0.01
    # Lever against the shared weights' poor ranking (issue 20; Ning et al. 2021, "Evaluating
    # Efficient Performance Estimators of Neural Architectures": prune to the top architectures,
    # then keep training): after the derivation scores its candidates, the best
    # derive_prune_keep of them (within any budget) stay, a copy of the weights they were scored
    # on trains derive_prune_steps SGD steps on uniform draws from them (rates from
    # derive_prune_lr down to search.optim.lr_min on a half cosine), they are scored again on
    # it and the best there is derived; the supernet stays untouched (0 = off, the paper's
    # derivation). Measured in experiments/RESULTS.md, "thirteenth round" and after
    derive_prune_keep: int = 0
    derive_prune_steps: int = 1000
    derive_prune_lr: float = 0.01
    child_batches: int = 0  # cap on child minibatches per epoch (0 = the whole split)
    max_nonfinite: int = 10  # stop after this many non-finite child steps in a row
    channels_last: bool = False  # supernet and images in channels-last memory format (GPUs)
    # dropout on while rewards are scored, as the authors' micro search (false: off, a less
    # noisy reward)
    reward_dropout: bool = True
    # Levers against the collapse to parameter-free cells (issue 20), all off by default; see
    # docs/faithfulness.md. param_free_dropout: elementwise dropout at this rate on the output of
    # every parameter-free candidate op (pools, identity) in child training only, never when
    # rewards or candidates are scored (P-DARTS, DARTS-; 0 = off, not the authors')
    param_free_dropout: float = 0.0
    # false: the supernet's BatchNorm layers have no affine weight and bias (Ning et al. 2021;
    # not the authors'); the final network always keeps them
    bn_affine: bool = True
    # supernet weights: torch (torch's default initialisation) | authors (the authors' he_normal
    # with their fan-in, which for the micro supernet's weights is the number of inputs a node
    # can read, so they start several times larger; see spaces/init.py)
    init: str = "torch"
    optim: SearchOptimConfig = field(default_factory=SearchOptimConfig)


@dataclass
class DeriveConfig:
    """Budgets of the derivation: candidates whose standalone network (``final.*``) costs more
    are never derived (None = no budget). See docs/cost_aware.md."""

    max_params: int | None = None
    max_madds: int | None = None
    max_latency_ms: float | None = None  # needs the latency table (task=latency_table)


@dataclass
class LatencyConfig:
    """The per-op latency table (``task=latency_table``, docs/cost_aware.md): every op the space
    can place, at every input shape and stride, timed on ``device``; cached under ``cache_dir``
    by device, space and the settings that fix the shapes."""

    device: str = "cpu"  # cpu | cuda | cuda:<n>
    # where the tables live (null: $XDG_CACHE_HOME/enas_lightning/latency, by default
    # ~/.cache/enas_lightning/latency); one JSON file per device, space and sizes
    cache_dir: str | None = None
    batch_size: int = 1  # images per timed forward (1: one image at a time, as on a phone)
    warmup: int = 5  # untimed runs before each measurement
    repeats: int = 20  # timed runs; the median is kept
    calibration_archs: int = 3  # uniform architectures timed whole to measure the fixed part
    check_archs: int = 20  # sampled architectures timed end to end to check the prediction
    seed: int = 0  # samples the calibration and check architectures


@dataclass
class FinalConfig:
    """Training a found architecture from scratch (the authors' micro final values; a space
    adds its own network settings)."""

    layers: int = 15
    channels: int = 36
    epochs: int = 630
    batch_size: int = 144
    eval_batch_size: int = 500
    dropout_keep: float = 0.8
    drop_path_keep: float = 0.6
    aux_weight: float = 0.4  # 0 = no aux head
    cutout: int = 16  # side of the cutout square in final training (0 = off)
    test_every: int = 10  # evaluate on the test split every n epochs (and at the end)
    # torch.compile the network: false | true | auto (enas_lightning/final/compile.py)
    compile: str = "false"
    # auto compiles when final.epochs x batches per epoch exceeds this (final/compile.py):
    # the break-even that bench/cpu_levers.py measured on a 2-core CPU at
    # CIFAR size (compile s / (eager - compiled s per step)): 1848 steps (micro, 6 cells, 20
    # channels; 192 s to compile, then 1.19x) and 551 (macro, 12 layers, 36 channels; 70 s, then
    # 1.21x); at the quickstart's size compiling never paid (0.81x / 0.90x per step)
    compile_min_steps: int = 2000
    channels_last: bool = False
    optim: ChildOptimConfig = field(
        default_factory=lambda: ChildOptimConfig(lr_min=1e-4, l2_reg=2e-4)
    )


@dataclass
class FidelityConfig:
    """``task=fidelity``: how well shared-weight scores rank architectures once retrained.

    K architectures from a finished search's checkpoint (alternately from its trained
    controller and from a uniform one) are scored on the shared weights and trained standalone
    for ``epochs`` with the search run's final-training settings (``final.*`` on the command
    line overrides them), once per retrain seed; see ``docs/fidelity.md``.
    """

    run: str | None = None  # a finished task=search run directory, a pipeline run or its search/
    num_archs: int = 12  # K: even indices from the trained controller, odd ones uniform
    epochs: int = 10  # standalone training budget per architecture (replaces final.epochs)
    # every architecture is retrained once per seed: a count n (seeds seed .. seed+n-1) or a list
    # of seeds; the seed mean is the ground truth, and with 2 or more the seed-vs-seed rank
    # correlation is the noise ceiling (Any: OmegaConf 2.3 has no int | list[int])
    retrain_seeds: Any = 1
    bootstrap: int = 2000  # bootstrap resamples of the architectures for the intervals
    confidence: float = 0.95  # level of the percentile bootstrap intervals
    seed: int = 0  # sampling, the first retrain seed (retrain_seeds a count) and bootstrap


@dataclass
class DatasetConfig:
    """Where images come from; see :mod:`enas_lightning.data.datasets`."""

    name: str = "digits"  # cifar10 | digits | fake | image_folder
    data_dir: str = "data"
    download: bool = True
    md5: str = "c58f30108f718f92721af3b95e74349a"
    url: str = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    val_size: int = 5000
    test_size: int = 0
    image_size: int = 0
    channels: int = 3
    num_classes: int = 10
    train_size: int = 256
    pad: int = 4
    flip: bool = True
    cutout: int = 0
    seed: int = 0


@dataclass
class TrainerConfig:
    """The Lightning Trainer settings a user changes; the rest are fixed by the task."""

    accelerator: str = "auto"
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"  # auto picks DDP (unused parameters allowed) for several devices
    precision: str = "32-true"  # 32-true | bf16-mixed | 16-mixed
    log_every_n_steps: int = 10
    enable_progress_bar: bool = True
    deterministic: bool = False
    # torch intra-op threads per process (0 = torch's default, one per core). On a small or
    # shared CPU the search's tiny convolutions run faster on 1 (see bench/RESULTS.md).
    num_threads: int = 0


@dataclass
class LoggerConfig:
    """Experiment tracking: csv, tensorboard, wandb or none."""

    name: str = "csv"
    project: str = "enas_lightning"
    entity: str | None = None
    group: str | None = None
    tags: list[str] = field(default_factory=list)
    offline: bool | None = None  # wandb: None = offline when no API key is configured
    log_pictures: bool = True
    # the controller plots (plots/*.png, and their images on W&B or TensorBoard) are redrawn
    # at the end of every n-th search epoch and of the last one; a plot costs seconds of
    # matplotlib (about 2 s an epoch at the quickstart's size; plotting only at the last epoch
    # made the tests' tiny 2-epoch search 18% faster, bench/RESULTS.md "Controller plots")
    plot_every_n_epochs: int = 1


@dataclass
class Config:
    task: str = "search"  # search | final | pipeline | inspect | fidelity | latency_table
    seed: int = 0
    arch: str | None = None  # JSON file or the authors' integer string (final, inspect)
    ckpt_path: str | None = None  # resume from this checkpoint
    resume: bool = False  # resume from <output_dir>/checkpoints/last.ckpt
    output_dir: str = "${hydra:runtime.output_dir}"
    search_space: SearchSpaceConfig = field(default_factory=SearchSpaceConfig)
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    final: FinalConfig = field(default_factory=FinalConfig)
    derive: DeriveConfig = field(default_factory=DeriveConfig)
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    fidelity: FidelityConfig = field(default_factory=FidelityConfig)


# the sections a space extends with settings of its own (Space.settings), by their base types
SPACE_SECTIONS: dict[str, type] = {
    "search_space": SearchSpaceConfig,
    "controller": ControllerConfig,
    "final": FinalConfig,
}
PRESETS = Path(__file__).parent / "conf" / "search_space"


def check_settings(space: Space) -> None:
    """Raise ``TypeError`` unless each of ``space.settings`` extends the section it names."""
    for section, cls in space.settings.items():
        base = SPACE_SECTIONS.get(section)
        if base is None or not (isinstance(cls, type) and issubclass(cls, base)):
            allowed = ", ".join(f"{k}: a {v.__name__} subclass" for k, v in SPACE_SECTIONS.items())
            raise TypeError(
                f"space {space.name!r}: settings[{section!r}]={cls!r}; allowed: {allowed}"
            )


def space_sections(space: Space) -> dict[str, type]:
    """The type of each extensible section under ``space``: its own dataclass or the base one."""
    return {**SPACE_SECTIONS, **space.settings}


def settings_node(space: Space) -> DictConfig:
    """``space``'s own sections (typed, with their defaults) and its name: the first thing
    ``search_space=<name>`` merges into :class:`Config`."""
    node = OmegaConf.create({k: OmegaConf.structured(v) for k, v in space.settings.items()})
    return OmegaConf.merge(node, {"search_space": {"name": space.name}})


def space_config(name: str) -> DictConfig:
    """:class:`Config` with the settings of the registered space ``name`` and their defaults,
    as ``search_space=<name>`` composes it before the preset's values (for code that builds a
    config without Hydra, and for a saved run's config)."""
    from enas_lightning.spaces import get_space

    return OmegaConf.merge(OmegaConf.structured(Config), settings_node(get_space(name)))


def run_config(saved: DictConfig) -> DictConfig:
    """A run's saved config (``.hydra/config.yaml``) typed by its space's settings.

    Runs made before the spaces owned their settings saved every space's in one union (a micro
    run had ``controller.skip_weight``); those keys of other spaces are dropped.
    """
    typed = space_config(saved.search_space.name)
    saved = saved.copy()
    for section in SPACE_SECTIONS:
        for key in list(saved.get(section) or {}):
            if key not in typed[section] and other_space_setting(f"{section}.{key}", None):
                saved[section].pop(key)
    return OmegaConf.merge(typed, saved)


def other_space_setting(key: str, object_type: type | None) -> str | None:
    """Why ``key`` (``section.field``) is missing from a section typed ``object_type``, when it
    is another registered space's own setting: ``"a setting of search_space=macro, not of
    micro"``; ``None`` otherwise."""
    from dataclasses import fields

    from enas_lightning.spaces import SPACES

    section, _, name = key.partition(".")
    if section not in SPACE_SECTIONS:
        return None
    types = {sp.name: space_sections(sp)[section] for sp in SPACES.values()}
    owners = [sp for sp, t in types.items() if name in {f.name for f in fields(t)}]
    if not owners:
        return None
    this = [sp for sp, t in types.items() if t is object_type]
    mine = f", not of {' | '.join(this)}" if this else ""
    return f"a setting of search_space={' | '.join(owners)}{mine}"


def register_configs() -> None:
    """Store :class:`Config` and every registered space's settings in Hydra's ConfigStore.

    ``conf/search_space/<name>.yaml`` (a built-in space's preset) starts from
    ``/<name>_space_settings``; a space with no preset file (another package's) is selectable
    as ``search_space=<name>`` with its dataclasses' defaults. Called again after a space is
    registered, it stores that one too.
    """
    from enas_lightning.spaces import SPACES

    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    for space in SPACES.values():
        node = settings_node(space)
        cs.store(name=f"{space.name}_space_settings", node=node, package="_global_")
        if not (PRESETS / f"{space.name}.yaml").is_file():
            cs.store(group="search_space", name=space.name, node=node, package="_global_")

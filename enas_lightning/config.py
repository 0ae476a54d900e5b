"""Structured configs: dataclasses registered in Hydra's ConfigStore.

The primary config (``conf/config.yaml``) starts from :class:`Config`, so a misspelt key or a
value of the wrong type is rejected by Hydra before anything runs. Values that need more than a
type check (an op name, a layer count too small for the reductions) are checked by
:func:`enas_lightning.build.validate` before any training starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore

from enas_lightning.spaces.micro.arch import AUTHORS_MICRO_OPS


@dataclass
class SearchSpaceConfig:
    """The search space and the supernet's size during search."""

    name: str = "micro"  # micro | macro
    layers: int = 6  # micro: normal cells (2 reduction cells are added); macro: layers
    channels: int = 20
    num_nodes: int = 5  # micro: computed nodes per cell (B)
    ops: list[str] = field(default_factory=lambda: list(AUTHORS_MICRO_OPS))
    dropout_keep: float = 0.9  # keep probability before the classifier
    aux_weight: float = 0.4  # micro: aux head loss weight during search (0 = no aux head)
    # macro: how a layer merges its skips in the supernet: sum (the authors' search layer:
    # BN of the sum) | concat (channel concat, ReLU, 1x1 conv, BN; the authors' final layer)
    skip_merge: str = "sum"
    # micro: one copy of each op's weights per input index, as the authors' supernet (true), or
    # one per (cell, node, slot, op) shared by every input (false: each copy trains more often;
    # see experiments/RESULTS.md, "Why the shared weights learn slowly")
    weights_per_input: bool = True


@dataclass
class ControllerConfig:
    """The LSTM controller and its REINFORCE training (the authors' micro values)."""

    # the search strategy (enas_lightning/strategies): enas | random (uniform sampling, never
    # learns) | another registered one
    name: str = "enas"
    lstm_size: int = 64
    lstm_layers: int = 1
    tanh_constant: float | None = 1.1
    op_tanh_reduce: float = 2.5  # micro: op logits use tanh_constant / op_tanh_reduce
    temperature: float | None = None
    op_bias: bool = True  # micro: learnable op bias initialised [10, 10, 0, ...]
    lr: float = 3.5e-3
    betas: list[float] = field(default_factory=lambda: [0.0, 0.999])
    eps: float = 1e-3
    entropy_weight: float = 1e-4  # reward += entropy_weight * entropy
    baseline_decay: float = 0.99
    train_steps: int = 30  # controller updates per controller phase
    num_aggregate: int = 10  # architectures per update (per rank)
    train_every: int = 1  # a controller phase after every n child epochs
    skip_target: float = 0.4  # macro
    skip_weight: float = 0.8  # macro: weight of KL(skip probability || skip_target)


@dataclass
class RewardConfig:
    """How children are scored, in the controller phase and the derivation alike."""

    # enas_lightning/rewards: accuracy (on the validation images) | loss (minus the mean
    # cross-entropy) | another registered one
    name: str = "accuracy"


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
class SearchConfig:
    """The search loop: child phase, controller phase, derivation."""

    epochs: int = 150
    batch_size: int = 160  # child minibatch and reward minibatch (per rank)
    eval_batch_size: int = 500  # derivation batches
    derive_samples: int = 100  # K sampled candidates scored at the end (+ the greedy one)
    # supernet warm-up: for the first N epochs the children are sampled uniformly (as
    # controller=random does) and the controller phase does not run (no update, baseline kept)
    warmup_epochs: int = 0
    derive_batches: int = 0  # validation batches per candidate (0 = the whole split)
    child_batches: int = 0  # cap on child minibatches per epoch (0 = the whole split)
    max_nonfinite: int = 10  # stop after this many non-finite child steps in a row
    channels_last: bool = False  # supernet and images in channels-last memory format (GPUs)
    # dropout on while rewards are scored, as the authors' micro search (false: off, a less
    # noisy reward)
    reward_dropout: bool = True
    optim: ChildOptimConfig = field(default_factory=ChildOptimConfig)


@dataclass
class FinalConfig:
    """Training a found architecture from scratch (the authors' micro final values)."""

    layers: int = 15
    channels: int = 36
    epochs: int = 630
    batch_size: int = 144
    eval_batch_size: int = 500
    dropout_keep: float = 0.8
    drop_path_keep: float = 0.6
    aux_weight: float = 0.4  # 0 = no aux head
    # micro: the authors' "layer_base", one more ReLU-1x1 conv-BN on each cell's later input
    layer_base: bool = True
    skip_merge: str = "concat"  # macro: concat (the authors' final layer) | sum; see search_space
    cutout: int = 16  # side of the cutout square in final training (0 = off)
    test_every: int = 10  # evaluate on the test split every n epochs (and at the end)
    compile: bool = False  # torch.compile the network
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
    line overrides them; see ``docs/fidelity.md``).
    """

    run: str | None = None  # a finished task=search run directory, a pipeline run or its search/
    num_archs: int = 12  # K: even indices from the trained controller, odd ones uniform
    epochs: int = 10  # standalone training budget per architecture (replaces final.epochs)
    bootstrap: int = 2000  # bootstrap resamples of the architectures for the intervals
    confidence: float = 0.95  # level of the percentile bootstrap intervals
    seed: int = 0  # sampling, standalone training and bootstrap


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


@dataclass
class Config:
    task: str = "search"  # search | final | pipeline | inspect | fidelity
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
    fidelity: FidelityConfig = field(default_factory=FidelityConfig)


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)

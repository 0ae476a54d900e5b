"""Child-step throughput, controller cost and a whole search vs NNI 3.0's ENAS micro space.

``child`` part: measures images/s of one child training step (forward, cross-entropy, backward, gradient-norm
clip 5, SGD-Nesterov step; ``child_throughput.make_step``) of:

* ``nni``: NNI 3.x's ``nni.nas.hub.pytorch.ENAS`` model space turned into its one-shot supernet by
  the ENAS strategy (``nni.nas.strategy.ENAS().mutate_model``: ``PathSamplingCell`` and
  ``Mixed*`` ops), a child selected the way ``EnasLightningModule.resample`` does it
  (``module.resample(memo=sample)`` on every supernet module);
* ``enas_lightning``: our ``MicroSupernet`` with the architecture passed to ``forward``.

Both sides run the *same* sampled architectures (ours from ``MicroController.sample_archs``,
translated to NNI's sample labels) on the same seeded random CIFAR-shaped batches, in the same
process, alternating per round (and alternating which side goes first), so machine load hits
both equally.

``controller`` part (its own section): milliseconds to sample 1 architecture, to sample 100, and
of one controller update over ``num_aggregate`` = 10 architectures with a fixed fake reward, for

* ``enas_lightning``: ``MicroController`` (5 nodes, 5 ops, LSTM 64, 1 layer, our defaults =
  ``ControllerConfig``): ``sample_archs(1, g)``, ``sample_archs(100, g)`` (one batched call), and
  the update of ``bench/controller.py`` (batched forward of 10 with grad, REINFORCE loss, backward,
  Adam step);
* ``nni``: NNI 3.0 has no ``ReinforceController`` any more (that was NNI 2.x): its ENAS strategy's
  ``EnasLightningModule`` drives a tianshou **PPO** policy (``default_policy_fn``: LSTM + actor and
  critic heads) through ``TuningTrajectoryGenerator``, one decision per step, one architecture
  per call. We build it the way NNI does (``ENAS(...).configure_oneshot_module(...).set_model``)
  and call what its ``resample`` / ``training_step`` call: ``generator.next_sample()`` under
  ``no_grad`` per architecture (so 100 architectures = 100 calls); the update = 10 x
  (``next_sample``, ``send_reward``, ``replay_buffer.update``) then ``update_times`` x
  ``policy.update(0, replay_buffer, **update_kwargs)``. Shown with NNI's defaults (5 updates x 5
  PPO epochs x minibatches of 32 transitions) and as a single gradient pass over the 10
  architectures (the shape of one REINFORCE update).

``search`` part (its own section, ``--only search``; not run by default): a whole small ENAS
micro search on each side, ``--epochs`` epochs on the same seeded fake CIFAR-shaped data (our
``dataset=fake``, 32x32x3, 10 classes, ``--train``/``--val`` images, loaded by our code on both
sides), the same batch, the same child steps per epoch (``--train / --batch``) and the same
rewards and controller updates per epoch (``--updates`` x ``--num-aggregate``):

* ``ours``: ``SearchModule`` + ``pl.Trainer`` as ``task=search`` builds them (as
  ``bench/search_epoch.py`` and ``bench/ddp_scaling.py`` run them), micro space with NNI's
  settings where ours has them (no aux head, no dropout, no augmentation, global-norm clip);
* ``nni``: NNI 3.0's one-shot ENAS as NNI runs it in-process: its ``ENAS`` space and ``ENAS``
  strategy (tianshou PPO controller, NNI's defaults) on a ``Lightning`` evaluator (NNI's
  ``ClassificationModule`` with our SGD settings), run by the strategy on a
  ``SequentialExecutionEngine``, i.e. ``EnasLightningModule`` fitted by a ``pytorch_lightning``
  Trainer (NNI 3.0 imports ``pytorch_lightning``, not ``lightning``). On pytorch-lightning 2.6
  NNI misreads the batches (it expects 2.0's ``(batch, batch_idx, dataloader_idx)``), so its
  loaders tag each batch ``(batch, "train" | "val")``, the form its 1.x branch reads.

Each search runs in a fresh subprocess (``--worker``; Lightning relaunches our DDP rank 1 from
it), ``--rounds`` rounds alternating the settings (our 1 process x 1 thread, NNI 1 x 1, our 2 DDP
ranks x 1 thread, NNI 1 process x 2 threads), with ``OMP_NUM_THREADS`` and torch threads set
per setting; the derivation (ours: ``derive_samples`` + 1 candidates scored; NNI: one export) is
timed after the search, outside it. Median wall time per setting and the ratios nni / ours. Our
side can run in the project's venv (``--ours-python``, importing this checkout through
``PYTHONPATH``) and NNI's in its own (``--nni-python``; default both: this interpreter).

It needs NNI, which the project's venv does not have (never install it there), and the
controller and search parts need tianshou and gym (NNI 3.0's ENAS imports them; ``--no-deps``
so that pip never swaps the CPU torch). From the repository root:

    python3 -m venv /work/nni-venv
    # check first that it resolves torch 2.13.0+cpu (a local CPU wheel here; elsewhere add
    # --extra-index-url https://download.pytorch.org/whl/cpu), then run it without --dry-run
    /work/nni-venv/bin/pip install torch==2.13.0 nni -e . --dry-run
    /work/nni-venv/bin/pip install --no-deps tianshou==0.5.1 gym==0.26.2 gym-notices \
        gymnasium==0.28.1 jax-jumpy pettingzoo==1.23.1 Farama-Notifications numba llvmlite h5py
    /work/nni-venv/bin/python bench/compare_nni.py [--only child|controller] [--archs 5] \
        [--steps 3] [--repeats 3] [--ctrl-repeats 5]
    /work/nni-venv/bin/python bench/compare_nni.py --only search \
        --ours-python /work/main/.venv/bin/python [--epochs 2] [--rounds 3] [--no-ddp]
"""

from __future__ import annotations

import os

# one intra-op thread, set before torch is imported so OpenMP picks it up too
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
from torch import Tensor, nn  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_average, random_batches, report, table  # noqa: E402
from child_throughput import build, make_step  # noqa: E402
from controller import controllers  # noqa: E402

from enas_lightning.spaces.micro.arch import MicroArch, MicroCell  # noqa: E402

# NNI 3.0 predates torch 2.13: while tracing it warns that ``torch.nn.parameter.Buffer`` and
# ``LinearCrossEntropyOptions`` are "not a nn.Module" (it only affects its tracing of those
# classes, which this space does not use); silence that so the output stays readable
warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module.*")
# NNI itself is imported inside the functions that use it: this module's other helpers (and the
# ``search`` part's enas_lightning worker) must import where NNI is not installed

Step = Callable[[Tensor, Tensor], None]

# our op names -> NNI's (same ops; NNI calls identity "skip_connect")
NNI_OP = {
    "sep_conv_3x3": "sep_conv_3x3",
    "sep_conv_5x5": "sep_conv_5x5",
    "avg_pool_3x3": "avg_pool_3x3",
    "max_pool_3x3": "max_pool_3x3",
    "identity": "skip_connect",
}


def build_nni(layers: int, channels: int) -> nn.Module:
    """NNI's ENAS space as the one-shot supernet its ENAS strategy trains.

    NNI splits ``num_cells`` over 3 stages and makes the first cell of stages 2 and 3 a reduction
    cell, so ``num_cells = layers + 2`` gives our layout: ``layers`` normal cells and 2 reduction
    cells at the same positions (for layers=6: cells 2 and 5 of 8).
    """
    from nni.nas.strategy import ENAS as NniEnasStrategy

    return NniEnasStrategy().mutate_model(nni_space(layers, channels))


def nni_space(layers: int, channels: int) -> nn.Module:
    """NNI's ENAS model space (not yet a supernet) in our cell layout (see :func:`build_nni`)."""
    from nni.nas.hub.pytorch import ENAS as NniEnasSpace

    return NniEnasSpace(width=channels, num_cells=layers + 2, dataset="cifar")


def nni_sample(arch: MicroArch) -> dict[str, Any]:
    """Our architecture as NNI's sample dict (labels ``{cell}/op_{node}_{slot}`` and
    ``{cell}/input_{node}_{slot}``; NNI numbers computed nodes from 2 like we number inputs)."""
    sample: dict[str, Any] = {}
    cells: dict[str, MicroCell] = {"normal": arch.normal, "reduce": arch.reduce}
    for label, cell in cells.items():
        for j, node in enumerate(cell.nodes):
            for slot, (i, op) in enumerate(zip(node.inputs, node.ops, strict=True)):
                sample[f"{label}/op_{j + 2}_{slot}"] = NNI_OP[op]
                # an input choice with n_chosen=1: NNI's cell reads ``[0]`` of a list
                sample[f"{label}/input_{j + 2}_{slot}"] = [i]
    return sample


def select_nni(supernet: nn.Module, sample: dict[str, Any]) -> None:
    """Fix NNI's supernet to ``sample`` as ``EnasLightningModule.resample`` does."""
    from nni.nas.oneshot.pytorch.supermodule.base import BaseSuperNetModule

    for module in supernet.modules():
        if isinstance(module, BaseSuperNetModule):
            module.resample(memo=sample)
    # every choice must come from ``sample``: a missing label would be drawn at random
    expected = set(supernet.simplify())
    if expected != set(sample):
        raise RuntimeError(f"sample labels differ from NNI's: {sorted(expected ^ set(sample))}")


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def n_trained(model: nn.Module) -> int:
    """Parameters that received a gradient in the last step: the child's share of the supernet
    (``make_step`` zeroes grads with ``set_to_none``, so unused ones stay ``None``)."""
    return sum(p.numel() for p in model.parameters() if p.grad is not None)


def run_steps(step: Step, batches: list[tuple[Tensor, Tensor]]) -> float:
    """Images/s of ``step`` over ``batches``."""
    t = time.perf_counter()
    for x, y in batches:
        step(x, y)
    return sum(len(y) for _, y in batches) / (time.perf_counter() - t)


def run_child(args: argparse.Namespace) -> None:
    """The child-step throughput section."""
    torch.manual_seed(0)
    # no aux head on our side: NNI's ENAS space refuses one in search (one-shot) mode
    ours, ctrl = build("micro", args.layers, args.channels, aux=False)
    torch.manual_seed(0)
    theirs = build_nni(args.layers, args.channels)
    archs = ctrl.sample_archs(args.archs, torch.Generator().manual_seed(1))
    batches = random_batches(args.steps, args.batch)

    names = ("enas_lightning", "nni")
    before = load_average()
    # per side: one median rate per architecture, and the child's trained-parameter counts
    rates: dict[str, list[float]] = {n: [] for n in names}
    trained: dict[str, list[int]] = {n: [] for n in names}
    detail = []
    for a, arch in enumerate(archs):
        select_nni(theirs, nni_sample(arch))
        models = {"enas_lightning": ours, "nni": theirs}
        # a fresh optimizer per architecture, as child_throughput does; the weights carry over
        steps: dict[str, Step] = {"enas_lightning": make_step(ours, arch), "nni": make_step(theirs)}
        for n in names:  # warm-up (allocator, first-call overheads), then count the child
            steps[n](*batches[0])
            trained[n].append(n_trained(models[n]))
        per_round: dict[str, list[float]] = {n: [] for n in names}
        for r in range(args.repeats):
            # alternate which side goes first so neither always runs on a warmer cache
            for n in names if r % 2 == 0 else names[::-1]:
                per_round[n].append(run_steps(steps[n], batches))
        med = {n: statistics.median(per_round[n]) for n in names}
        for n in names:
            rates[n].append(med[n])
        row = [a, *(trained[n][-1] for n in names), *(med[n] for n in names)]
        detail.append([*row, med["enas_lightning"] / med["nni"]])
        print(detail[-1], flush=True)

    base = statistics.median(rates["nni"])
    rows = []
    for n, model in (("enas_lightning", ours), ("nni", theirs)):
        rate = statistics.median(rates[n])
        rows.append([n, n_params(model), int(statistics.median(trained[n])), rate, rate / base])
    body = table(
        ["implementation", "supernet params", "child params (median)", "images/s (median)",
         "ratio to nni"],
        rows,
    )  # fmt: skip
    # the pairs ran interleaved, so the per-architecture ratio is the load-robust figure
    paired = statistics.median(r[-1] for r in detail)
    body += f"\n\nMedian of the per-architecture ours/nni ratios: {paired:.3f}"
    body += "\n\nPer architecture (images/s = median over rounds):\n\n" + table(
        ["arch", "ours child params", "nni child params", "ours img/s", "nni img/s",
         "ours/nni"],
        detail,
    )  # fmt: skip
    report(
        "Child throughput vs NNI ENAS micro (CPU)",
        {
            "nni": _version("nni"),
            "layers": f"{args.layers} normal + 2 reduction",
            "channels": args.channels,
            "nodes": 5,
            "ops": "sep3,sep5,avg3,max3,identity",
            "batch": args.batch,
            "images": "32x32x3 random",
            "archs": args.archs,
            "steps per round": args.steps,
            "rounds per arch": args.repeats,
            "step": "fwd+CE+bwd+clip 5+SGD nesterov foreach",
        },
        body,
        notes=[
            "Same architectures and batches on both sides, interleaved in one process. "
            "Not the same network: NNI's cell concatenates all 5 nodes (its one-shot cell "
            "ignores loose ends) and the next cell maps that back with a 1x1 conv; its "
            "reduction cells apply stride-2 ops to the cell inputs; it shares an op's weights "
            "between a node's two slots; its convs and BNs are NNI `Mixed*` modules; it has no "
            "dropout (ours: keep 0.9) and no aux head (ours disabled here for that reason).",
        ],
        append=not args.no_append,
        load_before=before,
    )


# --- controller cost ---------------------------------------------------------------------------

CtrlTimes = dict[str, float]  # measurement -> seconds of one call


def build_nni_controller(supernet: nn.Module, num_aggregate: int, lstm_size: int) -> Any:
    """NNI 3.0's ENAS controller, built the way its ENAS strategy builds it.

    ``ENAS.configure_oneshot_module`` makes the ``EnasLightningModule`` and ``set_model`` creates
    its ``TuningTrajectoryGenerator`` (one categorical decision per label of the mutated space:
    40 for 2 cells x 5 nodes x 2 slots x (op, input)), the policy from ``policy_fn`` and a replay
    buffer of ``trajectory length x batches_per_update`` transitions. ``batches_per_update`` is
    NNI's ``num_aggregate`` (trajectories per update). ``default_policy_fn`` exposes only
    ``hidden_dim`` (= our lstm_size; its LSTM has 1 layer like ours) and the Adam lr (ours, though
    it does not change the cost). It has no tanh constant, temperature or op bias, and its
    entropy term is PPO's ``ent_coef`` (0.01) in the loss, not a reward bonus: nothing to match.
    """
    from functools import partial

    # NNI 3.0's ENAS imports gym and tianshou lazily; only this part needs them
    from nni.nas.evaluator.pytorch.lightning import LightningModule as NniLightningModule
    from nni.nas.strategy import ENAS as NniEnasStrategy
    from nni.nas.strategy._rl_impl import default_policy_fn

    strategy = NniEnasStrategy(
        batches_per_update=num_aggregate,
        reward_metric_name="default",  # unused here (rewards are fake); silences NNI's warning
        policy_fn=partial(default_policy_fn, lr=3.5e-3, hidden_dim=lstm_size),
    )
    module = strategy.configure_oneshot_module(NniLightningModule())
    module.set_model(supernet)
    # NNI's default update_kwargs: {batch_size 32, repeat 5, update_times 5}
    module.update_kwargs = dict(strategy.update_kwargs)
    return module


def ours_ctrl_fns(ctrl: nn.Module, num_aggregate: int, seed: int) -> dict[str, Callable[[], None]]:
    """Our controller's timed calls. The update is ``bench/controller.py``'s ``update`` (copied
    rather than called: there it is a closure timed in its own loop, here it must interleave with
    NNI's)."""
    opt = torch.optim.Adam(ctrl.parameters(), lr=3.5e-3, betas=(0.0, 0.999), eps=1e-3, foreach=True)
    g = torch.Generator().manual_seed(seed)

    def update() -> None:
        sample = ctrl(num_aggregate, generator=g)
        # fixed fake reward (seeded), + the entropy bonus as SearchModule.controller_step adds it
        reward = torch.rand(num_aggregate, generator=g) + 1e-4 * sample.entropy.detach()
        loss = (-sample.log_prob * (reward - reward.mean())).mean() + 0.8 * sample.penalty.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return {
        "1 arch": lambda: ctrl.sample_archs(1, g),
        "100 archs": lambda: ctrl.sample_archs(100, g),
        "update": update,
    }


def nni_ctrl_fns(module: Any, num_aggregate: int, seed: int) -> dict[str, Callable[[], None]]:
    """NNI's timed calls, as ``EnasLightningModule`` makes them (minus the supernet)."""
    generator, policy, buffer = module.generator, module.policy, module._replay_buffer
    rewards = torch.Generator().manual_seed(seed)

    def one() -> None:
        # ``resample()`` in the child phase: policy in eval mode, no grad, one trajectory
        policy.eval()
        with torch.no_grad():
            generator.next_sample()

    def hundred() -> None:
        # there is no batched sampling: the generator runs one trajectory at a time
        policy.eval()
        with torch.no_grad():
            for _ in range(100):
                generator.next_sample()

    def collect() -> None:
        # ``training_step``'s 'val' branch x num_aggregate, with a seeded fake reward instead of
        # ``validation_step``'s metric: sample, send the reward, store the trajectory
        policy.train()
        for _ in range(num_aggregate):
            with torch.no_grad():
                generator.next_sample()
            reward = float(torch.rand((), generator=rewards))
            buffer.update(generator.send_reward(reward))

    def learn() -> None:
        # what ``training_step`` does once ``batches_per_update`` trajectories are in: PPO's
        # process_fn (critic values, GAE) then epochs of minibatch forward/backward/Adam
        policy.train()
        for _ in range(module.update_kwargs.get("update_times", 1)):
            policy.update(0, buffer, **module.update_kwargs)

    def learn_once() -> None:
        # the same call made once, 1 epoch, one minibatch = all 10 trajectories: a single gradient
        # step over the 10 architectures like one REINFORCE update (not what NNI's ENAS runs)
        policy.train()
        policy.update(0, buffer, batch_size=len(buffer), repeat=1)

    return {
        "1 arch": one,
        "100 archs": hundred,
        "collect": collect,
        "learn": learn,
        "learn once": learn_once,
    }


def run_controller(args: argparse.Namespace) -> None:
    """The controller-cost section."""
    # bench/controller.py's micro controller (5 nodes, the 5 authors' ops, ControllerConfig
    # defaults: LSTM 64 x 1 layer, tanh 1.1, op tanh reduce 2.5, op bias) and num_aggregate 10
    ours, agg = controllers(torch.device("cpu"))["micro (5 nodes)"]
    torch.manual_seed(0)  # NNI's policy samples from torch's global generator
    ours_fns = ours_ctrl_fns(ours, agg, seed=0)
    # NNI's ENAS space as the child part builds it (the controller only sees its labels)
    module = build_nni_controller(build_nni(args.layers, args.channels), agg, lstm_size=64)
    nni_fns = nni_ctrl_fns(module, agg, seed=0)
    steps = module.generator.expected_trajectory_length
    if steps != 40 or len(module._replay_buffer) != 0:
        raise RuntimeError(f"unexpected NNI controller: {steps} decisions per architecture")
    fns = {"enas_lightning": ours_fns, "nni": nni_fns}

    before = load_average()
    for side in fns.values():  # warm-up: first-call overheads, numba JIT of tianshou's GAE
        for f in side.values():
            f()
    times: dict[str, list[CtrlTimes]] = {n: [] for n in fns}
    for r in range(args.ctrl_repeats):
        # interleaved, alternating which side goes first
        for n in fns if r % 2 == 0 else list(fns)[::-1]:
            rec: CtrlTimes = {}
            for key, f in fns[n].items():
                t = time.perf_counter()
                f()
                rec[key] = time.perf_counter() - t
            times[n].append(rec)
            print(n, {k: round(1e3 * v, 2) for k, v in rec.items()}, flush=True)

    def med(n: str, *keys: str) -> float:
        """Median over repeats (ms) of the sum of ``keys`` within each repeat."""
        return 1e3 * statistics.median(sum(rec[k] for k in keys) for rec in times[n])

    # one update = the 10 samples that feed it + the parameter update, on both sides
    ppo = module.update_kwargs
    # tianshou's ``split(batch_size, merge_last=True)``: a short last minibatch joins the one before
    minibatches = max(1, agg * steps // ppo["batch_size"])
    nni_steps = ppo["update_times"] * ppo["repeat"] * minibatches
    rows = [
        ["enas_lightning (REINFORCE)", n_params(ours), med("enas_lightning", "1 arch"),
         med("enas_lightning", "100 archs"), med("enas_lightning", "update"), "-", 1],
        ["nni (PPO, ENAS defaults)", n_params(module.policy), med("nni", "1 arch"),
         med("nni", "100 archs"), med("nni", "collect", "learn"), med("nni", "collect"),
         nni_steps],
        ["nni (PPO, one pass)", n_params(module.policy), "same", "same",
         med("nni", "collect", "learn once"), med("nni", "collect"), 1],
    ]  # fmt: skip
    body = table(
        ["controller", "params", "1 arch (ms)", "100 archs (ms)",
         f"update over {agg} archs (ms)", f"of which sampling {agg} (ms)", "Adam steps/update"],
        rows,
    )  # fmt: skip
    ratio = {
        "1 arch": med("nni", "1 arch") / med("enas_lightning", "1 arch"),
        "100 archs": med("nni", "100 archs") / med("enas_lightning", "100 archs"),
        "update (defaults)": med("nni", "collect", "learn") / med("enas_lightning", "update"),
        "update (one pass)": med("nni", "collect", "learn once") / med("enas_lightning", "update"),
    }
    body += "\n\nnni / enas_lightning time: " + ", ".join(f"{k} {v:.3g}x" for k, v in ratio.items())
    report(
        "Controller cost vs NNI ENAS micro (CPU)",
        {
            "nni": _version("nni"),
            "tianshou": _version("tianshou"),
            "space": "micro, 5 nodes, 5 ops, 2 cells",
            "lstm": "64, 1 layer",
            "num_aggregate": agg,
            "nni decisions per arch": steps,
            "nni update_kwargs": ppo,
            "repeats (median)": args.ctrl_repeats,
            "reward": "seeded uniform fake",
        },
        body,
        notes=[
            "Not the same algorithm: NNI 3.0's ENAS controller is tianshou PPO (actor + critic "
            "over one LSTM, GAE, clipped objective, entropy coef 0.01 in the loss), ours the "
            "paper's REINFORCE (timed as bench/controller.py does: batch-mean baseline instead "
            "of the moving average, a scalar op). Our 10 samples are the update's own forward "
            "(with grad), so they are not timed apart. NNI samples one architecture per "
            "call, one decision per policy call, and its LSTM re-reads the whole padded action "
            "history (42 tokens) at every decision; ours samples a batch of architectures in one "
            "unrolled LSTM pass. Sampling times exclude fixing the supernet to the sample (NNI's "
            "`module.resample(memo=...)`, our `forward(x, arch)`). 'one pass' is the same "
            "`policy.update` with repeat=1 and one minibatch of all 10 trajectories, for the "
            "shape of one REINFORCE update; NNI's ENAS runs the defaults row.",
        ],
        append=not args.no_append,
        load_before=before,
    )


# --- whole search --------------------------------------------------------------------------------

# (side, processes, torch threads per process) timed in each round, in this order (reversed in odd
# rounds so neither side always runs first): ours and NNI on one thread, then our 2 DDP ranks x 1
# thread against NNI's single process on the same 2 cores as 2 threads
SEARCH_SETTINGS = (("ours", 1, 1), ("nni", 1, 1), ("ours", 2, 1), ("nni", 1, 2))


def search_overrides(a: argparse.Namespace, devices: int, threads: int, out: str) -> list[str]:
    """Our search config for the ``search`` part, matched to what NNI's side runs.

    The same seeded fake CIFAR-shaped data on both sides (NNI's worker loads it through our
    ``load_splits`` too); no augmentation, dropout or aux head (NNI's one-shot ENAS space has
    none); global gradient-norm clipping (what Lightning's ``clip_gradients`` does on NNI's side).
    On ``devices`` DDP ranks each rank keeps the batch and samples ``num_aggregate / devices``
    children per controller update, so an update is still rewarded by ``num_aggregate``
    children and an epoch trains on the same images (in half the steps per rank).
    """
    return [
        "search_space=micro",
        f"search_space.layers={a.layers}",
        f"search_space.channels={a.channels}",
        "search_space.aux_weight=0",
        "search_space.dropout_keep=1.0",
        "dataset=fake",
        "dataset.image_size=32",
        "dataset.channels=3",
        "dataset.num_classes=10",
        f"dataset.train_size={a.train + a.val}",
        f"dataset.val_size={a.val}",
        "dataset.pad=0",
        "dataset.flip=false",
        "trainer=cpu",
        f"trainer.devices={devices}",
        *(["trainer.strategy=ddp"] if devices > 1 else []),
        f"trainer.num_threads={threads}",
        "trainer.enable_progress_bar=false",
        "logger=none",
        f"search.epochs={a.epochs}",
        f"search.batch_size={a.batch}",
        f"search.eval_batch_size={a.val}",  # a candidate is scored in one batch
        f"search.derive_samples={a.derive_samples}",
        "search.optim.grad_clip_mode=global",
        f"controller.train_steps={a.updates}",
        f"controller.num_aggregate={a.num_aggregate // devices}",
        f"output_dir={out}",
    ]


def compose_search_cfg(overrides: list[str]) -> Any:
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from enas_lightning.app import CONF_DIR  # registers the structured configs

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
        OmegaConf.resolve(cfg)
    # a plain script, not a Hydra app: Lightning must relaunch rank 1 as `python <script> argv`
    HydraConfig.instance().cfg = None
    return cfg


def search_clock(is_child: Callable[[Any], bool]) -> Any:
    """A Lightning callback timing the search on rank 0: the whole fit from ``on_train_start``
    to ``on_train_end`` (after the processes are up and the model is built; Lightning's loop,
    logging and epoch ends included) and the seconds of the child steps and controller steps
    (from a step's ``on_train_batch_start`` to its ``on_train_batch_end``; ``is_child(batch)``
    tells them apart). CPU only: nothing to synchronise."""
    import pytorch_lightning as pl

    class SearchClock(pl.Callback):
        def __init__(self) -> None:
            self.total = self.child = self.ctrl = 0.0
            self.child_steps = self.ctrl_steps = 0

        def on_train_start(self, trainer, pl_module) -> None:
            self.t0 = time.perf_counter()

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            self.step_t0 = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            dt = time.perf_counter() - self.step_t0
            if is_child(batch):
                self.child, self.child_steps = self.child + dt, self.child_steps + 1
            else:
                self.ctrl, self.ctrl_steps = self.ctrl + dt, self.ctrl_steps + 1

        def on_train_end(self, trainer, pl_module) -> None:
            self.total = time.perf_counter() - self.t0

    return SearchClock()


def ours_search(a: argparse.Namespace) -> dict[str, Any] | None:
    """Our whole search (``SearchModule`` + ``pl.Trainer``, as ``task=search`` builds them, as
    ``bench/search_epoch.py`` and ``bench/ddp_scaling.py`` run them), then the derivation
    timed on its own. Rank 0 returns the numbers; other DDP ranks ``None``."""
    from enas_lightning.build import (
        build_search_module,
        build_trainer,
        validate,
        validate_data,
    )
    from enas_lightning.data.datasets import load_splits
    from enas_lightning.search.loader import CHILD

    overrides = search_overrides(a, a.worker_devices, a.worker_threads, a.out)
    cfg = compose_search_cfg([*overrides, *a.ours_set])  # --ours-set: our side only
    validate(cfg)
    torch.manual_seed(cfg.seed)
    splits = load_splits(cfg.dataset, holdout=True)
    validate_data(cfg, splits, "search")
    module = build_search_module(cfg, splits)
    clock = search_clock(lambda batch: int(batch[0]) == CHILD)
    trainer = build_trainer(
        cfg, "search", Path(a.out), cfg.search.epochs, [clock], False, enable_checkpointing=False
    )
    trainer.fit(module)
    t = time.perf_counter()
    derivation = module.derive()  # every rank scores its share of the candidates
    derive_s = time.perf_counter() - t
    if not trainer.is_global_zero:
        return None
    return {
        "search_s": clock.total,
        "child_s": clock.child,
        "ctrl_s": clock.ctrl,
        "child_steps": clock.child_steps,
        "updates": clock.ctrl_steps,
        "rewards": clock.ctrl_steps * cfg.controller.num_aggregate * trainer.world_size,
        "derive_s": derive_s,
        "derived": f"{len(derivation.candidates)} candidates scored on the val split",
        "world": trainer.world_size,
        "threads": torch.get_num_threads(),
    }


def nni_search(a: argparse.Namespace) -> dict[str, Any]:
    """NNI 3.0's one-shot ENAS as NNI runs it, in this process: its ``ENAS`` model space and
    ``ENAS`` strategy on a ``Lightning`` evaluator, run by the strategy itself on a
    ``SequentialExecutionEngine`` (what ``NasExperiment`` does for a one-shot strategy, minus
    the experiment's manager process): the strategy mutates the space into its supernet, wraps
    the evaluator's module in ``EnasLightningModule`` (tianshou PPO controller, NNI's defaults)
    and fits it with the evaluator's ``pl.Trainer`` on a ``ConcatLoader`` of the training loader
    (one child step per batch) and the validation loader (one reward per batch: an architecture
    scored on one batch; a PPO update every ``batches_per_update`` rewards). Then
    ``strategy.list_models()`` (NNI's derivation: one more controller sample, frozen into a
    model) timed on its own."""
    import pytorch_lightning as pl
    from nni.nas.evaluator.pytorch import ClassificationModule, DataLoader, Lightning, Trainer
    from nni.nas.execution import SequentialExecutionEngine
    from nni.nas.space import RawFormatModelSpace
    from nni.nas.strategy import ENAS as NniEnasStrategy
    from torch.utils.data import RandomSampler, TensorDataset, default_collate

    from enas_lightning.data.datasets import load_splits

    torch.set_num_threads(a.worker_threads)
    # the same images as ours: our fake dataset, loaded by our code from the same config
    cfg = compose_search_cfg(search_overrides(a, 1, a.worker_threads, a.out))
    splits = load_splits(cfg.dataset, holdout=True)
    pl.seed_everything(cfg.seed, verbose=False)

    class ChildModule(ClassificationModule):
        """NNI's classification module with our child optimiser: SGD with Nesterov momentum,
        lr 0.05, weight decay 2e-4 (ours: 2 x l2_reg), gradient norm clipped to 5. The
        ``EnasLightningModule`` drives it by hand (manual optimisation) and calls
        ``configure_gradient_clipping`` without a value, so the clip is set here: Lightning
        refuses the Trainer's ``gradient_clip_val`` under manual optimisation."""

        def configure_optimizers(self):
            o = cfg.search.optim
            return torch.optim.SGD(
                self.parameters(), lr=o.lr_max, momentum=o.momentum, nesterov=o.nesterov,
                weight_decay=2 * o.l2_reg, foreach=True,
            )  # fmt: skip

        def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, algorithm=None):
            self.clip_gradients(optimizer, cfg.search.optim.grad_clip, "norm")

    def tag(mode: str) -> Callable[[list[Any]], tuple[Any, str]]:
        """Collate a batch as ``(batch, mode)``. NNI 3.0's ``EnasLightningModule.training_step``
        tells child batches from reward batches by the ``dataloader_idx`` that pytorch-lightning
        2.0 passed inside the batch; later versions (2.6 here) pass the bare batch, which NNI
        then misreads. It still reads a ``(batch, "train" | "val")`` pair (its pytorch-lightning
        1.x path), so each loader tags its batches: NNI's own code, on the same Lightning as
        ours."""
        return lambda items: (default_collate(items), mode)

    rewards_per_epoch = a.updates * a.num_aggregate
    train = TensorDataset(splits.train_x, splits.train_y)
    val = TensorDataset(splits.val_x, splits.val_y)
    clock = search_clock(lambda batch: batch[1] == "train")
    trainer = Trainer(
        accelerator="cpu", devices=1, max_epochs=a.epochs, logger=False, callbacks=[clock],
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0,
    )  # fmt: skip
    evaluator = Lightning(
        ChildModule(num_classes=10),
        trainer,
        train_dataloaders=DataLoader(
            train, batch_size=a.batch, shuffle=True, drop_last=True, collate_fn=tag("train")
        ),
        # one batch per reward: rewards_per_epoch batches drawn at random, as ours draws each
        # reward's validation minibatch
        val_dataloaders=DataLoader(
            val,
            batch_size=a.batch,
            sampler=RandomSampler(val, replacement=True, num_samples=a.batch * rewards_per_epoch),
            collate_fn=tag("val"),
        ),
    )
    strategy = NniEnasStrategy(batches_per_update=a.num_aggregate, reward_metric_name="val_acc")
    strategy(RawFormatModelSpace(nni_space(a.layers, a.channels), evaluator),
             SequentialExecutionEngine())  # fmt: skip
    module = strategy.oneshot_module
    t = time.perf_counter()
    models = list(strategy.list_models())
    derive_s = time.perf_counter() - t
    return {
        "search_s": clock.total,
        "child_s": clock.child,
        "ctrl_s": clock.ctrl,
        "child_steps": clock.child_steps,
        "updates": module._trajectory_counter // module.batches_per_update,
        "rewards": module._trajectory_counter,
        "derive_s": derive_s,
        "derived": f"{len(models)} sample (export), not scored",
        "world": 1,
        "threads": torch.get_num_threads(),
        "ppo": dict(module.update_kwargs),
        "nni": _version("nni"),
    }


def search_worker(a: argparse.Namespace) -> None:
    """One whole search of one side (``a.worker``); rank 0 writes its numbers to ``a.result``."""
    import json

    result = ours_search(a) if a.worker == "ours" else nni_search(a)
    if result is not None:
        Path(a.result).write_text(json.dumps(result))


def run_search(args: argparse.Namespace) -> None:
    """The whole-search section: every setting of :data:`SEARCH_SETTINGS` in its own fresh
    subprocess per round (neither side inherits the other's thread pool or imports)."""
    import json
    import subprocess
    import tempfile

    if not args.no_ddp and (args.num_aggregate % 2 or args.train % (2 * args.batch)):
        # 2 ranks: each samples num_aggregate / 2 children per update and trains on half the
        # child steps, so both must split evenly for the two sides to do the same work
        sys.exit("--num-aggregate must be even and --train a multiple of 2 x --batch (or --no-ddp)")
    here = Path(__file__).resolve()
    repo = here.parents[1]
    python = {"ours": args.ours_python or sys.executable, "nni": args.nni_python or sys.executable}
    runs: dict[tuple[str, int, int], list[dict[str, Any]]] = {s: [] for s in SEARCH_SETTINGS}
    before = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for side, devices, threads in SEARCH_SETTINGS if r % 2 == 0 else SEARCH_SETTINGS[::-1]:
                if devices > 1 and args.no_ddp:
                    continue
                name = f"{side}{devices}x{threads}_r{r}"
                result = Path(tmp) / f"{name}.json"
                cmd = [python[side], str(here), *sys.argv[1:], f"--worker={side}"]
                cmd += [f"--worker-devices={devices}", f"--worker-threads={threads}"]
                cmd += [f"--out={tmp}/{name}", f"--result={result}"]
                # one OpenMP/MKL thread pool of the setting's size, set before torch loads
                n = str(threads)
                env = {**os.environ, "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n}
                env["PYTHONPATH"] = os.pathsep.join(
                    filter(None, [str(repo), env.get("PYTHONPATH")])
                )
                t = time.perf_counter()
                proc = subprocess.run(cmd, env=env, cwd=repo, capture_output=True, text=True)
                wall = time.perf_counter() - t
                if proc.returncode != 0:
                    sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-8000:])
                    raise RuntimeError(f"{name} failed (exit {proc.returncode})")
                rec = json.loads(result.read_text())
                rec["process_s"] = wall
                runs[(side, devices, threads)].append(rec)
                print(name, {k: round(v, 2) if isinstance(v, float) else v
                             for k, v in rec.items()}, flush=True)  # fmt: skip

    def med(setting: tuple[str, int, int], key: str) -> float:
        return statistics.median(rec[key] for rec in runs[setting])

    base = med(SEARCH_SETTINGS[0], "search_s")  # ours, 1 process x 1 thread
    rows = []
    labels = {"ours": "enas_lightning", "nni": "nni"}
    for s in SEARCH_SETTINGS:
        if not runs[s]:
            continue
        side, devices, threads = s
        last = runs[s][-1]
        rows.append([
            labels[side], f"{devices} x {threads}", last["child_steps"], last["rewards"],
            last["updates"], med(s, "search_s"), med(s, "child_s"), med(s, "ctrl_s"),
            med(s, "search_s") - med(s, "child_s") - med(s, "ctrl_s"), med(s, "search_s") / base,
            med(s, "derive_s"), med(s, "process_s"),
            " ".join(f"{rec['search_s']:.1f}" for rec in runs[s]),
        ])  # fmt: skip
    body = table(
        ["implementation", "processes x threads", "child steps (rank 0)", "rewards", "updates",
         "search s (median)", "child steps s", "controller steps s", "rest s", "ratio to ours 1x1",
         "derivation s (not in search)", "process s", "search s per round"],
        rows,
    )  # fmt: skip
    ratios = []
    for (side, devices, threads), label in (
        (("nni", 1, 1), "nni 1x1 / ours 1x1"),
        (("nni", 1, 2), "nni 1x2 / ours 1x1"),
    ):
        if runs[(side, devices, threads)]:
            ratios.append(f"{label} {med((side, devices, threads), 'search_s') / base:.3g}")
    if runs[("ours", 2, 1)]:
        ours2 = med(("ours", 2, 1), "search_s")
        for s, label in ((("nni", 1, 1), "nni 1x1"), (("nni", 1, 2), "nni 1x2")):
            ratios.append(f"{label} / ours 2x1 (DDP) {med(s, 'search_s') / ours2:.3g}")
    body += "\n\nnni / ours, whole search (median wall time): " + ", ".join(ratios)
    nni_rec = runs[("nni", 1, 1)][-1]
    report(
        "Whole search vs NNI ENAS micro (CPU)",
        {
            "nni": nni_rec.get("nni", "3.0"),
            "layers": f"{args.layers} normal + 2 reduction",
            "channels": args.channels,
            "nodes": 5,
            "ops": "sep3,sep5,avg3,max3,identity",
            "batch": args.batch,
            "train/val images": f"{args.train}/{args.val} fake 32x32x3, 10 classes, no augmentation",
            "epochs": args.epochs,
            "controller per epoch": f"{args.updates} updates x {args.num_aggregate} rewards",
            "nni ppo": nni_rec.get("ppo"),
            "derive_samples (ours)": args.derive_samples,
            "extra overrides (ours)": " ".join(args.ours_set) or "none",
            "rounds (median)": args.rounds,
            "python (ours, nni)": f"{python['ours']}, {python['nni']}",
            "command": "python bench/compare_nni.py " + " ".join(sys.argv[1:]),
        },
        body,
        notes=[
            "Each run is a fresh process (settings alternated, order reversed every other "
            "round); 'search s' is rank 0's fit from on_train_start to on_train_end (process "
            "start, imports, data and model building, DDP start-up and the derivation are "
            "outside it; 'process s' is the whole subprocess). 'child steps s' and 'controller "
            "steps s' add up each step's on_train_batch_start..end; 'rest' is Lightning's loop "
            "around them. NNI's controller steps include its PPO updates (tianshou, its "
            "defaults), ours our REINFORCE updates. Same data (our seeded fake split, loaded by "
            "our code on both sides), same batch, same child steps, rewards and updates per "
            "epoch.",
            "Not matched: the networks differ as in the child section (NNI's cell concatenates "
            "all 5 nodes, shares an op's weights between a node's two slots, applies stride-2 "
            "ops in its reduction cells); the controllers differ (NNI: PPO, one architecture "
            "and one decision per policy call, an architecture sampled per child step; ours: "
            "REINFORCE, the epoch's children sampled in one batched call); the learning rate "
            "is constant on NNI's side (ours: SGDR cosine, one scheduler step per epoch); "
            "NNI's reward is torchmetrics' accuracy logged through Lightning and read back "
            "with .item() per reward, ours one batched reward per update; NNI batches come "
            "from torch DataLoaders (collated per batch), ours are gathered from tensors; "
            "NNI's derivation is one controller sample, ours scores derive_samples + 1 "
            "candidates (both outside 'search s'). Under DDP each rank keeps the batch "
            "(half the child steps per rank, same images per epoch) and samples "
            "num_aggregate / 2 children per update (all-gathered to num_aggregate).",
            "NNI runs unmodified on the same pytorch-lightning as ours, except that its loaders "
            "tag each batch (batch, 'train' | 'val'): NNI 3.0's EnasLightningModule reads the "
            "dataloader index that pytorch-lightning 2.0 passed inside the batch and misreads "
            "later versions' bare batches; the tag is the form its pytorch-lightning 1.x branch "
            "reads. NNI's controller is its default policy (LSTM 64, lr 1e-4; ours 3.5e-3) and "
            "its child module logs train loss and torchmetrics accuracy every step, ours loss "
            "and accuracy.",
        ],
        append=not args.no_append,
        load_before=before,
    )


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", choices=("child", "controller", "search"),
                   help="run one part (default: child and controller)")  # fmt: skip
    p.add_argument("--layers", type=int, default=6, help="normal cells (+2 reduction cells)")
    p.add_argument("--channels", type=int, default=20)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--archs", type=int, default=5, help="sampled architectures")
    p.add_argument("--steps", type=int, default=3, help="steps per timed round")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds per architecture")
    p.add_argument("--ctrl-repeats", type=int, default=5, help="timed controller rounds")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--no-append", action="store_true", help="print only, do not touch RESULTS.md")
    g = p.add_argument_group("search part (--only search)")
    g.add_argument("--epochs", type=int, default=2, help="search epochs")
    g.add_argument("--train", type=int, default=320, help="training images (child steps: /batch)")
    g.add_argument(
        "--val", type=int, default=128, help="validation images (rewards draw from them)"
    )
    g.add_argument("--updates", type=int, default=1, help="controller updates per epoch")
    g.add_argument("--num-aggregate", type=int, default=10, help="rewards per controller update")
    g.add_argument("--derive-samples", type=int, default=2, help="our derivation's candidates")
    g.add_argument("--rounds", type=int, default=3, help="timed rounds (median)")
    g.add_argument("--no-ddp", action="store_true", help="skip our 2-rank DDP setting")
    g.add_argument(
        "--ours-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an extra override for our side only, e.g. search.channels_last=true (repeatable)",
    )
    g.add_argument("--ours-python", default="", help="interpreter of our side (default: this one)")
    g.add_argument("--nni-python", default="", help="interpreter of NNI's side (default: this one)")
    # the search part's per-run worker (and the ranks Lightning relaunches from it)
    p.add_argument("--worker", choices=("ours", "nni"), help=argparse.SUPPRESS)
    p.add_argument("--worker-devices", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--worker-threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--out", default="", help=argparse.SUPPRESS)
    p.add_argument("--result", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        search_worker(args)
        return
    if args.only == "search":
        run_search(args)
        return
    torch.set_num_threads(args.threads)
    if args.only != "controller":
        run_child(args)
    if args.only != "child":
        run_controller(args)


if __name__ == "__main__":
    main()

"""Child-training throughput and controller cost against Microsoft NNI's ENAS micro (cell) space.

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

It needs NNI, which the project's venv does not have, and the controller part needs tianshou and
gym (NNI 3.0's ENAS imports them; ``--no-deps`` so that pip never swaps the CPU torch):

    python3 -m venv /work/nni-venv
    /work/nni-venv/bin/pip install torch==2.13.0 nni -e .  # pin torch: a CPU build
    /work/nni-venv/bin/pip install --no-deps tianshou==0.5.1 gym==0.26.2 gym-notices \
        gymnasium==0.28.1 jax-jumpy pettingzoo==1.23.1 Farama-Notifications numba llvmlite h5py
    /work/nni-venv/bin/python bench/compare_nni.py [--only child|controller] [--archs 5] \
        [--steps 3] [--repeats 3] [--ctrl-repeats 5]
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
import nni  # noqa: E402
from nni.nas.hub.pytorch import ENAS as NniEnasSpace  # noqa: E402
from nni.nas.oneshot.pytorch.supermodule.base import BaseSuperNetModule  # noqa: E402
from nni.nas.strategy import ENAS as NniEnasStrategy  # noqa: E402

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
    space = NniEnasSpace(width=channels, num_cells=layers + 2, dataset="cifar")
    return NniEnasStrategy().mutate_model(space)


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
            "nni": nni.__version__,
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
            "nni": nni.__version__,
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


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", choices=("child", "controller"), help="run one part (default both)")
    p.add_argument("--layers", type=int, default=6, help="normal cells (+2 reduction cells)")
    p.add_argument("--channels", type=int, default=20)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--archs", type=int, default=5, help="sampled architectures")
    p.add_argument("--steps", type=int, default=3, help="steps per timed round")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds per architecture")
    p.add_argument("--ctrl-repeats", type=int, default=5, help="timed controller rounds")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--no-append", action="store_true", help="print only, do not touch RESULTS.md")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.only != "controller":
        run_child(args)
    if args.only != "child":
        run_controller(args)


if __name__ == "__main__":
    main()

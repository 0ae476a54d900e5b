"""Why a search's greedy cell is one op everywhere: the controller's last op distribution.

The greedy architecture takes the most likely op at every decision. This reads each search's
``history.json`` and reports, for its last controller epoch, the op probabilities averaged over
the decisions, how much they differ between decisions (the largest spread of one op's
probability across the decisions: near 0 means one context-free distribution), the margin
between the two most likely ops, the parameter-free share the controller samples (the mean
probability of the parameter-free ops), and the greedy cell's parameter-free share.

A margin of a few thousandths means the greedy cell is decided by a near-tie: with a
context-free distribution every decision breaks it the same way, so the greedy cell is that one
op at every node, whatever the samples look like.

    python experiments/greedy_margin.py RUN_DIR [RUN_DIR ...]   (a search's output directory,
        or any directory above: every history.json below it is read)
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from enas_lightning.arch import parse_ints
from enas_lightning.spaces import get_space
from enas_lightning.spaces.micro.arch import AUTHORS_MICRO_OPS, MicroArch
from enas_lightning.spaces.micro.ops import MICRO_OPS


def is_param_free(op: str) -> bool:
    """As the micro space's op registry declares it (identity and the pools)."""
    return MICRO_OPS.param_free_share([op]) == 1.0


def margin_row(history: list[dict[str, Any]], ops: list[str]) -> dict[str, Any] | None:
    """The last controller epoch's figures (see the module docstring); None without one."""
    ran = [h for h in history if h.get("op_probs")]
    if not ran:
        return None
    last = ran[-1]
    rows = list(last["op_probs"].values())
    mean = [statistics.fmean(r[k] for r in rows) for k in range(len(ops))]
    spread = max(max(r[k] for r in rows) - min(r[k] for r in rows) for k in range(len(ops)))
    top = sorted(mean, reverse=True)
    greedy = last.get("greedy_arch") or history[-1].get("greedy_arch")
    greedy_share = None
    if greedy:
        arch = MicroArch.from_ints(parse_ints(greedy["ints"]), tuple(greedy.get("ops", ops)))
        greedy_share = get_space("micro").param_free_share(arch)
    return {
        "epoch": int(last["epoch"]) + 1,
        "mean": dict(zip(ops, mean, strict=True)),
        "spread": spread,
        "margin": top[0] - top[1],
        "sampled_share": sum(p for o, p in zip(ops, mean, strict=True) if is_param_free(o)),
        "greedy_share": greedy_share,
    }


def histories(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for p in paths:
        found += [p] if p.name == "history.json" else sorted(p.rglob("history.json"))
    return found


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument(
        "--ops",
        default=",".join(AUTHORS_MICRO_OPS),
        help="the search's op names in order (default: the authors' micro ops)",
    )
    args = ap.parse_args(argv)
    ops = args.ops.split(",")
    files = histories(args.runs)
    if not files:
        raise SystemExit(f"no history.json under {', '.join(map(str, args.runs))}")
    short = [o.replace("_conv", "").replace("_pool", "") for o in ops]
    print(
        "| run | epoch | mean op probabilities ("
        + " / ".join(short)
        + ") | spread across decisions | top-two margin | sampled share | greedy share |"
    )
    print("|---|---|---|---|---|---|---|")
    for f in files:
        r = margin_row(json.loads(f.read_text()), ops)
        if r is None:
            print(f"| {f.parent} | - | no controller epoch | | | | |")
            continue
        probs = " / ".join(f"{p:.3f}" for p in r["mean"].values())
        g = "-" if r["greedy_share"] is None else f"{r['greedy_share']:.2f}"
        print(
            f"| {f.parent} | {r['epoch']} | {probs} | {r['spread']:.3f} | {r['margin']:.3f} "
            f"| {r['sampled_share']:.3f} | {g} |"
        )


if __name__ == "__main__":
    main()

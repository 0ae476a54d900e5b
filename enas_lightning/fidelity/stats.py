"""Rank correlations, percentile bootstrap intervals, the top-1 regret, the noise ceiling
(numpy only).

Kendall's tau is tau-b (ties in either variable counted as scipy's ``kendalltau`` counts them)
and Spearman's rho is Pearson's correlation of average ranks (scipy's ``spearmanr``). Both are
``nan`` when either variable is constant, as in scipy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from numpy.typing import ArrayLike


def average_ranks(x: ArrayLike) -> np.ndarray:
    """Ranks ``[n]`` from 1, tied values sharing the mean of their ranks (scipy's ``rankdata``)."""
    x = np.asarray(x, dtype=float)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=float)
    sorted_x = x[order]
    # the first position of each run of equal values, and the run's end
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], len(x)]
    for s, e in zip(starts, ends, strict=True):
        ranks[order[s:e]] = (s + 1 + e) / 2  # mean of the ranks s+1 .. e
    return ranks


def kendall_tau_b(x: ArrayLike, y: ArrayLike) -> float:
    """Kendall's tau-b of two equally long sequences ``[n]``.

    ``(concordant - discordant) / sqrt((n0 - ties_x) * (n0 - ties_y))`` over all ``n0`` pairs,
    where ``ties_x`` counts pairs tied in ``x`` (whether or not they tie in ``y`` too).
    O(n^2), fine for the few dozen architectures a fidelity run retrains.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) != len(y):
        raise ValueError(f"x and y differ in length: {len(x)} and {len(y)}")
    i, j = np.triu_indices(len(x), k=1)
    dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    n0 = len(i)
    untied_x, untied_y = n0 - np.sum(dx == 0), n0 - np.sum(dy == 0)
    if untied_x == 0 or untied_y == 0:
        return float("nan")
    return float(np.sum(dx * dy) / np.sqrt(float(untied_x) * float(untied_y)))


def spearman_rho(x: ArrayLike, y: ArrayLike) -> float:
    """Spearman's rho: Pearson's correlation of the average ranks of ``x`` and ``y`` ``[n]``."""
    rx, ry = average_ranks(x), average_ranks(y)
    if len(rx) != len(ry):
        raise ValueError(f"x and y differ in length: {len(rx)} and {len(ry)}")
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = np.sqrt(np.sum(rx**2) * np.sum(ry**2))
    if denom == 0:
        return float("nan")
    return float(np.sum(rx * ry) / denom)


def top1_regret(shared: ArrayLike, standalone: ArrayLike) -> float:
    """Best standalone accuracy minus that of the architecture with the best shared score.

    Architectures tied for the best shared score count with their mean standalone accuracy
    (the expected regret when the tie is broken at random).
    """
    shared, standalone = np.asarray(shared, dtype=float), np.asarray(standalone, dtype=float)
    picked = standalone[shared == shared.max()]
    return float(standalone.max() - picked.mean())


@dataclass(frozen=True)
class Interval:
    """A point estimate and its percentile bootstrap interval.

    ``valid`` counts the resamples where the statistic was defined (a resample that drew one
    architecture over and over has constant scores and no rank correlation).
    """

    estimate: float
    low: float
    high: float
    valid: int

    def to_dict(self) -> dict[str, float | int | list[float]]:
        return {
            "estimate": self.estimate,
            "ci": [self.low, self.high],
            "bootstrap_valid": self.valid,
        }


def bootstrap(
    statistic: Callable[[np.ndarray, np.ndarray], float],
    x: ArrayLike,
    y: ArrayLike,
    samples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap interval of ``statistic(x, y)``, resampling the pairs (architectures).

    Each of ``samples`` resamples draws ``n`` indices with replacement (seeded); the interval is
    the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of the defined (finite)
    resampled values. ``nan`` bounds when no resample was defined or ``samples`` is 0.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) != len(y):
        raise ValueError(f"x and y differ in length: {len(x)} and {len(y)}")
    return bootstrap_rows(
        lambda t: statistic(t[:, 0], t[:, 1]), np.stack([x, y], 1), samples, confidence, seed
    )


def bootstrap_rows(
    statistic: Callable[[np.ndarray], float],
    table: ArrayLike,
    samples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap interval of ``statistic(table)``, resampling the rows of ``table``.

    ``table`` is ``[n, m]``: one row per architecture (e.g. its accuracy under each of ``m``
    retrain seeds). The resamples are those of :func:`bootstrap` for the same ``n``, ``samples``
    and ``seed``, so intervals of several statistics of one run resample the same architectures.
    """
    table = np.asarray(table, dtype=float)
    estimate = statistic(table)
    rng = np.random.default_rng(seed)
    n = len(table)
    values = np.array([statistic(table[idx]) for idx in rng.integers(0, n, (samples, n))])
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return Interval(estimate, float("nan"), float("nan"), 0)
    alpha = 1 - confidence
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return Interval(estimate, float(low), float(high), int(len(values)))


# ------------------------------------------------------------------------- several retrain seeds
def seed_pairs_mean(statistic: Callable[[np.ndarray, np.ndarray], float], accs: ArrayLike) -> float:
    """The mean of ``statistic`` between two seeds' columns over every pair of seeds.

    ``accs`` is ``[n, S]``: the retrained accuracy of ``n`` architectures under ``S >= 2``
    seeds. With ``statistic`` a rank correlation this is the noise ceiling: how well one
    retraining ranks the architectures as another does. ``nan`` where a pair's correlation is
    (a constant column) or for fewer than 2 seeds.
    """
    accs = np.asarray(accs, dtype=float)
    pairs = list(combinations(range(accs.shape[1]), 2))
    if not pairs:
        return float("nan")
    return float(np.mean([statistic(accs[:, a], accs[:, b]) for a, b in pairs]))


def single_seed_mean(
    statistic: Callable[[np.ndarray, np.ndarray], float], table: ArrayLike
) -> float:
    """The mean over seeds of ``statistic(table[:, 0], table[:, 1 + s])``.

    ``table`` is ``[n, 1 + S]``: a score (the shared-weight accuracy) and ``S`` seeds'
    retrained accuracies. Each term compares the score with one retraining, as the noise
    ceiling compares one retraining with another.
    """
    table = np.asarray(table, dtype=float)
    return float(np.mean([statistic(table[:, 0], table[:, s]) for s in range(1, table.shape[1])]))


def leave_one_out(statistic: Callable[[np.ndarray, np.ndarray], float], accs: ArrayLike) -> float:
    """The mean over seeds ``s`` of ``statistic(accs[:, s], mean of the other seeds)``.

    ``accs`` is ``[n, S]`` with ``S >= 3``. The ceiling for an estimator judged against a mean
    of ``S - 1`` seeds: how well one retraining ranks the architectures as the other seeds'
    mean does (a supernet's ranking against the ``S``-seed means is the nearest comparison).
    ``nan`` for fewer than 3 seeds.
    """
    accs = np.asarray(accs, dtype=float)
    s = accs.shape[1]
    if s < 3:
        return float("nan")
    rest = (accs.sum(1, keepdims=True) - accs) / (s - 1)  # [n, S]: the others' mean per seed
    return float(np.mean([statistic(accs[:, k], rest[:, k]) for k in range(s)]))


def spread(accs: ArrayLike) -> tuple[float, float]:
    """``(between, within)``: how much architectures differ, and how much seeds do.

    ``accs`` is ``[n, S]``. ``between`` is the standard deviation (``ddof=1``) of the ``n``
    seed means; ``within`` the pooled standard deviation over seeds of one architecture,
    ``sqrt(mean_i var_i)`` with each ``var_i`` over the ``S`` seeds (``ddof=1``; ``nan`` for one
    seed). The seed means still carry ``within**2 / S`` of seed variance.
    """
    accs = np.asarray(accs, dtype=float)
    n, s = accs.shape
    between = float(np.std(accs.mean(1), ddof=1)) if n > 1 else float("nan")
    within = float(np.sqrt(np.mean(np.var(accs, axis=1, ddof=1)))) if s > 1 else float("nan")
    return between, within


def split_half(statistic: Callable[[np.ndarray, np.ndarray], float], accs: ArrayLike) -> float:
    """``statistic`` between the mean of the first half of the seeds and that of the second.

    ``accs`` is ``[n, S]`` with an even ``S >= 2``. With ``S = 2k`` seeds the ground truth of a
    ranking is usually a mean over seeds; this is the ceiling for a truth of ``k``-seed means
    (how well one ``k``-seed mean ranks the architectures as another does), where
    :func:`seed_pairs_mean` is that of single retrainings. ``nan`` for an odd or too small ``S``.
    """
    accs = np.asarray(accs, dtype=float)
    s = accs.shape[1]
    if s < 2 or s % 2:
        return float("nan")
    return float(statistic(accs[:, : s // 2].mean(1), accs[:, s // 2 :].mean(1)))

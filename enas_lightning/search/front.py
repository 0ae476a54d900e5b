"""The accuracy-cost front: the architectures no other one beats on both accuracy and cost."""

from __future__ import annotations

from collections.abc import Sequence


def pareto_front(costs: Sequence[float], accs: Sequence[float]) -> list[int]:
    """Indices of the points on the front, by increasing cost: a point is on it when no other
    point costs at most as much with a higher accuracy, or costs less with the same accuracy
    (the first of exact duplicates is kept)."""
    order = sorted(range(len(costs)), key=lambda i: (costs[i], -accs[i], i))
    front: list[int] = []
    for i in order:
        # sorted by cost (then best accuracy first): on the front iff it beats every cheaper one
        if not front or accs[i] > accs[front[-1]]:
            front.append(i)
    return front


def front_accuracy(costs: Sequence[float], accs: Sequence[float], cost: float) -> float | None:
    """The front's accuracy at ``cost``: the best accuracy of the points costing at most
    ``cost``; ``None`` where every point costs more."""
    within = [a for c, a in zip(costs, accs, strict=True) if c <= cost]
    return max(within) if within else None


def gap_to_front(
    costs: Sequence[float], accs: Sequence[float], cost: float, acc: float
) -> float | None:
    """How far an architecture of ``cost`` and ``acc`` lies below the front of the points, in
    accuracy at its cost (``front_accuracy - acc``: 0 on it, negative above it); ``None``
    where it costs less than every point (nothing to compare with)."""
    best = front_accuracy(costs, accs, cost)
    return None if best is None else best - acc

"""The derivation record: the candidates scored with the shared weights, and the derived one.

At the end of a search (:meth:`enas_lightning.search.module.SearchModule.derive`) the strategy's
candidates and a uniformly sampled reference are scored on the validation split with the shared
weights by the reward (their accuracy by default); :class:`Derivation` keeps the scores and says
which candidate was derived.
``task=search`` writes it to ``best_arch.json`` and ``arch_candidates.csv`` and prints
:meth:`Derivation.report`; the loggers record :meth:`Derivation.summary`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from enas_lightning.errors import ENASError
from enas_lightning.spaces import ArchRecord, space_of

# what a derivation reminds its reader of wherever it prints or saves its accuracies
SHARED_WEIGHT_CAVEAT = (
    "shared-weight accuracies favour the architectures the supernet was trained on; "
    "only retraining (task=final) shows real quality"
)


# derive.max_<name> -> the cost it bounds (a key of Derivation.costs' dicts)
BUDGETS = {"max_params": "params", "max_madds": "madds", "max_latency_ms": "latency_ms"}


class BudgetError(ENASError):
    """No candidate of the derivation fits the budget (``derive.max_*``)."""


def budget_of(derive: object) -> dict[str, float]:
    """The set budgets of a ``derive`` config section, as ``{cost name: bound}``."""
    out = {}
    for setting, cost in BUDGETS.items():
        bound = getattr(derive, setting, None) if derive is not None else None
        if bound is not None:
            out[cost] = float(bound)
    return out


def fits(cost: dict[str, float], budget: dict[str, float]) -> bool:
    """Whether an architecture of ``cost`` stays within every bound of ``budget``."""
    return all(cost[name] <= bound for name, bound in budget.items())


def least_squares_line(x: list[float], y: list[float]) -> tuple[float, float]:
    """Intercept and slope of the least-squares line of ``y`` on ``x`` (slope 0 where ``x`` has
    no spread)."""
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    var = float(np.mean((xs - xs.mean()) ** 2))
    slope = float(np.mean((xs - xs.mean()) * (ys - ys.mean())) / var) if var > 1e-12 else 0.0
    return float(ys.mean() - slope * xs.mean()), slope


def _mean_share(archs: Iterable[ArchRecord]) -> float | None:
    """Mean parameter-free share of ``archs`` (``None``: none, or a space without shares)."""
    shares = [space_of(a).param_free_share(a) for a in archs]
    if not shares or any(s is None for s in shares):
        return None
    return float(np.mean(shares))


def rank_key(score: float, index: int) -> tuple[float, int]:
    """Sort key, best first: a higher score, then the earlier candidate. A non-finite score
    ranks last, where ``np.argmax`` would take a NaN as the best: a candidate whose loss diverged
    on the shared weights must not be derived."""
    return (-score if np.isfinite(score) else np.inf, index)


def _cost(name: str, value: float) -> str:
    """A cost as printed: milliseconds to 4 digits, counts whole."""
    return f"{value:.4g}" if name == "latency_ms" else f"{value:.0f}"


@dataclass
class Derivation:
    """The result of scoring candidates with the shared weights on the validation split.

    ``candidates`` are the controller's (its greedy architecture first, if it has one, then K
    samples); the derived architecture is the best of them. ``uniform`` are K architectures
    sampled uniformly from the space (a separate seeded draw, even for ``controller=random``)
    and scored the same way: the random reference the controller has to beat. The best of K
    grows with K whatever the controller learned; compare means: greedy and the controller's
    mean against the uniform mean.

    ``accuracies[i]`` (in ``[0, 1]``) is ``candidates[i]``'s and ``uniform_accuracies[j]``
    ``uniform[j]``'s: two pairs of equally long lists. ``best_index`` is set from them. Under
    another reward than accuracy they hold that reward's scores (higher is better) and
    ``metric`` names them (the reward's ``metric``, e.g. ``val_neg_loss``): the keys of
    :meth:`summary` and the label of :meth:`report` follow it.

    ``finetune_steps`` > 0 (``search.derive_finetune_steps``): every score was taken after that
    many fine-tuning steps of its architecture from the shared weights; ``uniform_steps`` > 0
    (``search.derive_uniform_steps``): on a copy of the shared weights trained that many more
    steps on uniform children. :meth:`summary` and :meth:`report` say so, since such scores are
    not comparable with plain ones.

    ``costs[i]`` and ``uniform_costs[j]`` (empty lists: not counted) are each architecture's
    standalone cost: ``{"params", "madds"}`` and ``"latency_ms"`` where a latency table is
    used. ``budget`` (``{cost name: bound}``, :func:`budget_of`) leaves the candidates over it
    out of the choice; when none fits, :class:`BudgetError` names the smallest cost seen.

    ``param_free_adjust`` (``search.param_free_adjust``): the candidates are ranked by their
    score minus the least-squares line of score on parameter-free share fitted over all of them
    (:attr:`param_free_line`, intercept and slope), so a candidate is judged against candidates
    of like share; :meth:`residual` gives any architecture's adjusted score.

    ``pruned`` (``search.derive_prune_keep``): the candidates kept after the first scoring
    (indices into ``candidates``, best first: :meth:`order`) and ``pruned_scores`` their scores
    on a copy of the scoring weights trained ``prune_steps`` more SGD steps on them (from
    ``prune_lr`` on a half cosine); the derived architecture is the best of those second scores
    (the first of equal ones) and ``unpruned_index`` the one the first scores alone would pick.
    """

    candidates: list[ArchRecord]
    accuracies: list[float]
    greedy_index: int | None  # index of the controller's argmax architecture, if any
    uniform: list[ArchRecord] = field(default_factory=list)
    uniform_accuracies: list[float] = field(default_factory=list)
    metric: str = "val_acc"
    # search.derive_finetune_steps: SGD steps each candidate took from the shared weights before
    # it was scored (0: scored on the shared weights as they are, the paper), and their rate
    finetune_steps: int = 0
    finetune_lr: float | None = None
    # search.derive_uniform_steps: SGD steps on uniform children that the copy of the shared
    # weights every score was taken on trained after the search (0: the shared weights as the
    # search left them), and the rate they started at
    uniform_steps: int = 0
    uniform_lr: float | None = None
    costs: list[dict[str, float]] = field(default_factory=list)
    uniform_costs: list[dict[str, float]] = field(default_factory=list)
    budget: dict[str, float] = field(default_factory=dict)
    param_free_adjust: bool = False
    # search.derive_prune_keep: the kept candidates (best first) and their second scores
    pruned: list[int] = field(default_factory=list)
    pruned_scores: list[float] = field(default_factory=list)
    prune_steps: int = 0
    prune_lr: float | None = None
    # (intercept, slope) of the candidates' score on parameter-free share (param_free_adjust)
    param_free_line: tuple[float, float] | None = field(init=False)
    best_index: int = field(init=False)
    unpruned_index: int = field(init=False)

    def __post_init__(self) -> None:
        self.param_free_line = None
        if self.param_free_adjust:
            shares = [space_of(a).param_free_share(a) for a in self.candidates]
            self.param_free_line = least_squares_line(shares, self.accuracies)
        self.best_index = self.unpruned_index = self._first_pick()
        if len(self.pruned) != len(self.pruned_scores):
            raise ValueError(
                f"{len(self.pruned)} pruned candidates but {len(self.pruned_scores)} scores"
            )
        if self.pruned:
            # the first of the best second scores; a non-finite one (a candidate whose loss
            # diverged on the pruned copy) is never preferred to a finite one
            j = min(range(len(self.pruned)), key=lambda j: rank_key(self.pruned_scores[j], j))
            self.best_index = self.pruned[j]

    def _ranking(self) -> list[float]:
        """What the candidates are ranked by (:meth:`residual` of each score)."""
        return [self.residual(a, v) for a, v in zip(self.candidates, self.accuracies, strict=True)]

    def _within(self) -> list[int]:
        """The candidates that fit the budget (all of them without one)."""
        if not self.budget:
            return list(range(len(self.candidates)))
        within = [i for i, c in enumerate(self.costs) if fits(c, self.budget)]
        if not within:
            raise BudgetError(self.none_fits())
        return within

    def _first_pick(self) -> int:
        """The best candidate by the first scores, within the budget: the head of
        :meth:`order`."""
        return self.order()[0]

    def order(self) -> list[int]:
        """The candidates the derivation may pick (within any budget), best first by the first
        scores (:meth:`residual`); equal ones in the candidates' order, a non-finite score
        last. Its head is the pick without pruning."""
        ranking = self._ranking()
        return sorted(self._within(), key=lambda i: rank_key(ranking[i], i))

    def residual(self, arch: ArchRecord, score: float) -> float:
        """What the derivation ranks ``arch`` by, given its ``score``: the score itself, or under
        ``param_free_adjust`` the score minus :attr:`param_free_line` at ``arch``'s share."""
        if self.param_free_line is None:
            return score
        intercept, slope = self.param_free_line
        return score - (intercept + slope * space_of(arch).param_free_share(arch))

    def none_fits(self) -> str:
        """The one line saying that no candidate fits, with the smallest cost seen."""
        setting = {cost: s for s, cost in BUDGETS.items()}
        parts = []
        for name, bound in self.budget.items():
            smallest = min(c[name] for c in self.costs)
            seen = [c[name] for c in self.uniform_costs]
            also = f" (of the uniform reference: {_cost(name, min(seen))})" if seen else ""
            parts.append(
                f"derive.{setting[name]}={_cost(name, bound)}: the smallest {name} among the "
                f"{len(self.costs)} candidates is {_cost(name, smallest)}{also}"
            )
        return (
            "no candidate fits the budget; "
            + "; ".join(parts)
            + "; the search's checkpoints and history are kept: derive again with a larger "
            "budget (the same command with resume=true)"
        )

    @property
    def best(self) -> ArchRecord:
        return self.candidates[self.best_index]

    @property
    def pruned_best_score(self) -> float | None:
        """The derived architecture's score on the pruned copy (``None`` without pruning)."""
        return self.pruned_score(self.best_index)

    def pruned_score(self, index: int) -> float | None:
        """Candidate ``index``'s score on the pruned copy (``None``: not kept, or no pruning)."""
        return self.pruned_scores[self.pruned.index(index)] if index in self.pruned else None

    @property
    def best_acc(self) -> float:
        return self.accuracies[self.best_index]

    @property
    def greedy_acc(self) -> float | None:
        return None if self.greedy_index is None else self.accuracies[self.greedy_index]

    @property
    def controller_mean_acc(self) -> float:
        """Mean over the controller's samples (the greedy architecture left out)."""
        accs = [a for i, a in enumerate(self.accuracies) if i != self.greedy_index]
        return float(np.mean(accs))

    @property
    def uniform_mean_acc(self) -> float | None:
        """Mean over the uniformly sampled reference architectures (``None`` without any)."""
        return float(np.mean(self.uniform_accuracies)) if self.uniform_accuracies else None

    @property
    def param_free_share(self) -> float | None:
        """The derived architecture's share of parameter-free op choices (identity, pooling);
        ``None`` where its space does not say which ops those are."""
        return space_of(self.best).param_free_share(self.best)

    @property
    def greedy_param_free_share(self) -> float | None:
        """The greedy architecture's share of parameter-free op choices (``None`` without one)."""
        if self.greedy_index is None:
            return None
        greedy = self.candidates[self.greedy_index]
        return space_of(greedy).param_free_share(greedy)

    @property
    def controller_mean_param_free_share(self) -> float | None:
        """Mean parameter-free share of the controller's samples (the greedy architecture left
        out, as in :attr:`controller_mean_acc`): what the controller samples, where the greedy
        architecture only shows each decision's most likely op (``None`` without a share)."""
        return _mean_share(c for i, c in enumerate(self.candidates) if i != self.greedy_index)

    @property
    def uniform_mean_param_free_share(self) -> float | None:
        """Mean parameter-free share of the uniformly sampled reference architectures."""
        return _mean_share(self.uniform)

    def summary(self) -> dict[str, float | int | None]:
        """The four accuracies (scores) under the names ``best_arch.json`` and the loggers use:
        ``val_acc`` (``metric``), ``greedy_val_acc``, ``controller_mean_val_acc`` and
        ``uniform_mean_val_acc``, the counts, then the derived and greedy architectures'
        parameter-free shares; after fine-tuned scoring also ``derive_finetune_steps`` and
        ``derive_finetune_lr`` (absent for plain shared-weight scores)."""
        m = self.metric
        finetune = (
            {"derive_finetune_steps": self.finetune_steps, "derive_finetune_lr": self.finetune_lr}
            if self.finetune_steps > 0
            else {}
        )
        if self.uniform_steps > 0:
            finetune |= {
                "derive_uniform_steps": self.uniform_steps,
                "derive_uniform_lr": self.uniform_lr,
            }
        if self.pruned:
            finetune |= {
                "derive_prune_keep": len(self.pruned),
                "derive_prune_steps": self.prune_steps,
                "derive_prune_lr": self.prune_lr,
                f"pruned_{m}": self.pruned_best_score,
                "pruning_changed_pick": self.best_index != self.unpruned_index,
            }
        return {
            m: self.best_acc,  # the derived (best) architecture's
            f"greedy_{m}": self.greedy_acc,
            f"controller_mean_{m}": self.controller_mean_acc,
            f"uniform_mean_{m}": self.uniform_mean_acc,
            "candidates": len(self.candidates),
            "uniform_samples": len(self.uniform),
            "param_free_share": self.param_free_share,
            "greedy_param_free_share": self.greedy_param_free_share,
            "controller_mean_param_free_share": self.controller_mean_param_free_share,
            "uniform_mean_param_free_share": self.uniform_mean_param_free_share,
            **finetune,
            **self._line_summary(),
            # the derived architecture's standalone cost (final.*), when counted
            **(self.costs[self.best_index] if self.costs else {}),
            **{f"budget_{name}": bound for name, bound in self.budget.items()},
        }

    def _line_summary(self) -> dict[str, float | bool]:
        """Under ``param_free_adjust``: that it was on and the fitted line (empty otherwise)."""
        if self.param_free_line is None:
            return {}
        intercept, slope = self.param_free_line
        return {
            "param_free_adjust": True,
            "param_free_intercept": intercept,
            "param_free_slope": slope,
        }

    def rows(self) -> list[tuple[str, ArchRecord, float]]:
        """``(source, architecture, accuracy)`` of every scored architecture; ``source`` is
        ``greedy``, ``controller`` (the controller's samples) or ``uniform``."""
        out = [
            ("greedy" if i == self.greedy_index else "controller", arch, acc)
            for i, (arch, acc) in enumerate(zip(self.candidates, self.accuracies, strict=True))
        ]
        return out + [
            ("uniform", a, acc)
            for a, acc in zip(self.uniform, self.uniform_accuracies, strict=True)
        ]

    def cost_rows(self) -> list[dict[str, float]]:
        """The costs of :meth:`rows`, in the same order (empty dicts where not counted)."""
        n, m = len(self.candidates), len(self.uniform)
        return (self.costs or [{}] * n) + (self.uniform_costs or [{}] * m)

    def report(self) -> list[str]:
        """The four labelled rows, the parameter-free shares, the fine-tuning (if any) and the
        caveat, as printed at the end of a search."""
        k = len(self.candidates) - (self.greedy_index is not None)
        greedy = "-" if self.greedy_acc is None else f"{self.greedy_acc:.4f}"
        uniform = "-" if self.uniform_mean_acc is None else f"{self.uniform_mean_acc:.4f}"
        m = self.metric.replace("_", " ")
        return [
            f"  best            {m} {self.best_acc:.4f}  (the derived architecture: best of "
            f"the controller's {len(self.candidates)} candidates)",
            f"  greedy          {m} {greedy}  (the controller's most likely architecture)",
            f"  controller mean {m} {self.controller_mean_acc:.4f}  (mean of its {k} samples)",
            f"  uniform mean    {m} {uniform}  (mean of {len(self.uniform)} uniformly "
            "sampled architectures: the random reference)",
            *self._param_free_line(),
            *self._adjust_line(),
            *self._finetune_line(),
            *self._prune_line(),
            *self._cost_line(),
            f"  ({SHARED_WEIGHT_CAVEAT})",
        ]

    def _finetune_line(self) -> list[str]:
        """That every score was taken after training a copy of the shared weights
        (``search.derive_uniform_steps``, ``search.derive_finetune_steps``)."""
        lines = []
        if self.uniform_steps > 0:
            lines.append(
                f"  scored on a copy of the shared weights trained {self.uniform_steps} more SGD "
                f"steps on uniform children (lr {self.uniform_lr:g} on a half cosine; "
                "search.derive_uniform_steps): not comparable with plain shared-weight scores"
            )
        if self.finetune_steps == 0:
            return lines
        return lines + [
            f"  every architecture fine-tuned {self.finetune_steps} SGD steps (lr "
            f"{self.finetune_lr:g}) from the shared weights before scoring "
            "(search.derive_finetune_steps): not comparable with plain shared-weight scores"
        ]

    def _prune_line(self) -> list[str]:
        """Under ``search.derive_prune_keep``: how the pick was made among the kept ones."""
        if not self.pruned:
            return []
        m = self.metric.replace("_", " ")
        rank = self.order().index(self.best_index) + 1
        first = (
            "the first scoring's best too"
            if self.best_index == self.unpruned_index
            else f"number {rank} of the first scoring"
        )
        return [
            f"  pruned: the best {len(self.pruned)} candidates scored again on a copy of the "
            f"shared weights trained {self.prune_steps} more SGD steps on them (lr "
            f"{self.prune_lr:g} on a half cosine; search.derive_prune_keep); the derived one "
            f"is their best there, {m} {self.pruned_best_score:.4f} ({first})"
        ]

    def _cost_line(self) -> list[str]:
        """The derived architecture's cost beside its score, and the budget, if counted."""
        if not self.costs:
            return []
        c = self.costs[self.best_index]
        text = "  ".join(f"{k} {_cost(k, v)}" for k, v in c.items())
        budget = ", ".join(f"{k} <= {_cost(k, v)}" for k, v in self.budget.items())
        within = f" (budget: {budget})" if budget else ""
        return [f"  derived cost    {text}  (its standalone network, final.*){within}"]

    def _adjust_line(self) -> list[str]:
        """Under ``param_free_adjust``: what the candidates were ranked by."""
        if self.param_free_line is None:
            return []
        slope = self.param_free_line[1]
        return [
            f"  ranked by score minus the candidates' line in parameter-free share (slope "
            f"{slope:+.4f} per unit share; search.param_free_adjust)"
        ]

    def _param_free_line(self) -> list[str]:
        """The parameter-free shares of the derived and the greedy architecture and the mean
        shares of the controller's and the uniform samples, if known."""
        best = self.param_free_share
        if best is None:
            return []
        others = [
            (name, share)
            for name, share in (
                ("greedy", self.greedy_param_free_share),
                ("controller mean", self.controller_mean_param_free_share),
                ("uniform mean", self.uniform_mean_param_free_share),
            )
            if share is not None
        ]
        text = "".join(f", {name} {share:.2f}" for name, share in others)
        return [
            f"  parameter-free ops: derived {best:.2f}{text}  (share of identity and "
            "pooling among the op choices)"
        ]

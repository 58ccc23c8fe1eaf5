"""The regret the search leaves, on a task whose true accuracies are known for the whole
space (a lookup task such as ``nas-bench-macro``).

For a budget: every network of the space gets its latency predicted (the same batch
predictor the search uses, so "meets the budget" means the same for the pick and for the
others); the true best is the most accurate network predicted within the budget; the top
``contenders`` of them by true accuracy are measured end to end (journaled, never twice),
so the report also says which of them really meet the budget. Regret = true best - the
pick's true accuracy, in accuracy points (percent).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

MAX_ENUMERATED = 200_000  # spaces larger than this are not enumerated (no regret reported)


def all_indices(space, limit: int = MAX_ENUMERATED) -> np.ndarray | None:
    """Every architecture of ``space`` as choice-index rows ``(size, D)``; None when larger than ``limit``."""
    if space.size() > limit:
        return None
    return space.all_indices()


@dataclass
class RegretSetup:
    """The enumerated space with predicted latency (ms) and true accuracy (fraction) per row."""

    space: object
    indices: np.ndarray      # (N, D)
    latency_ms: np.ndarray   # (N,)
    true_accuracy: np.ndarray  # (N,)

    def true_of(self, row) -> float:
        hit = np.flatnonzero((self.indices == np.asarray(row)).all(axis=1))
        return float(self.true_accuracy[hit[0]])


def regret_setup(space, trainer, predict_ms: Callable) -> RegretSetup | None:
    """The enumerated space for a task that knows its true accuracies (``trainer.true_accuracy``),
    else None."""
    truth = getattr(trainer, "true_accuracy", None)
    if truth is None:
        return None
    idx = all_indices(space)
    if idx is None:
        return None
    return RegretSetup(space, idx, np.asarray(predict_ms(idx), dtype=float), np.asarray(truth(space, idx), dtype=float))


def pick_regret(setup: RegretSetup, pick_row, budget_ms: float, samples: int, contenders: int = 2,
                measure_ms: Callable | None = None) -> dict:
    """Report fields of one pick: its true accuracy, the true best under ``budget_ms``, the
    regret in points, the lookups used (``samples``) and the measured contenders
    (``measure_ms(row) -> ms or None``)."""
    true_pick = setup.true_of(pick_row)
    feasible = np.flatnonzero(setup.latency_ms <= budget_ms)
    out = {"true_accuracy": true_pick, "samples": int(samples)}
    if not len(feasible):
        out.update(best_true_accuracy_under_budget=None, regret_points=None, contenders=[])
        return out
    order = _best_first(setup, feasible)
    best = order[0]
    rows = []
    for i in order[:max(contenders, 0)]:
        measured = measure_ms(setup.indices[i]) if measure_ms else None
        rows.append({"architecture": setup.space.from_indices(setup.indices[i]).to_dict(),
                     "true_accuracy": float(setup.true_accuracy[i]),
                     "predicted_latency_ms": float(setup.latency_ms[i]), "measured_ms": measured,
                     "meets_budget_measured": None if measured is None else bool(measured <= budget_ms)})
    ok = [r["true_accuracy"] for r in rows if r["meets_budget_measured"]]
    out.update({
        "best_true_accuracy_under_budget": float(setup.true_accuracy[best]),
        "regret_points": float(100 * (setup.true_accuracy[best] - true_pick)),
        "feasible_networks": int(len(feasible)),
        "best_under_budget": {"architecture": setup.space.from_indices(setup.indices[best]).to_dict(),
                              "predicted_latency_ms": float(setup.latency_ms[best])},
        "contenders": rows,
        "best_true_accuracy_measured_under_budget": max(ok) if ok else None,
    })
    return out


def _best_first(setup: RegretSetup, feasible: np.ndarray) -> np.ndarray:
    """``feasible`` (indices into the setup) ordered by true accuracy, best first."""
    return feasible[np.argsort(-setup.true_accuracy[feasible], kind="stable")]


def contender_rows(setup: RegretSetup, budget_ms: float, contenders: int = 2) -> list[np.ndarray]:
    """The choice-index rows ``pick_regret`` measures for ``budget_ms``: the ``contenders``
    truly best networks the predictor puts under the budget (so a caller measures them all
    in one batch first)."""
    feasible = np.flatnonzero(setup.latency_ms <= budget_ms)
    return [setup.indices[i] for i in _best_first(setup, feasible)[:max(contenders, 0)]]

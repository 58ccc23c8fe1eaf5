"""One option per layer under a latency budget, by an integer program (HANT's second phase).

Variables ``x[l, o]`` in {0, 1}; every layer ``l`` takes exactly one option
(``sum_o x[l, o] = 1``); the summed latency stays within the budget
(``sum x[l, o] * latency[l][o] <= budget``); the summed cost (HANT: the layer-wise
distillation loss, a proxy of the accuracy lost) is minimised. Solved exactly by
``scipy.optimize.milp`` (HiGHS branch and bound).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np


class BudgetError(ValueError):
    """No choice meets the budget (bad input, exit 2); the message gives the fastest choice."""


@dataclass(frozen=True)
class Selection:
    """The chosen option index of each layer, its summed cost and latency, and the solver's
    status and time (s)."""

    choice: tuple[int, ...]
    cost: float
    latency: float
    status: str
    seconds: float


def fastest(latencies: Sequence[Sequence[float]]) -> float:
    """The smallest summed latency any choice reaches (each layer's fastest option)."""
    return float(sum(min(lat) for lat in latencies))


def select(costs: Sequence[Sequence[float]], latencies: Sequence[Sequence[float]], budget: float) -> Selection:
    """The choice minimising the summed cost with summed latency <= ``budget``.

    ``costs[l][o]`` and ``latencies[l][o]``: option ``o`` of layer ``l`` (layers may have
    different numbers of options). Raises :class:`BudgetError` when even the fastest choice
    exceeds the budget."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    if len(costs) != len(latencies) or any(len(c) != len(t) or not len(c) for c, t in zip(costs, latencies)):
        raise ValueError("costs and latencies need the same, non-empty, options per layer")
    low = fastest(latencies)
    if low > budget:
        raise BudgetError(f"the budget {budget:.4g} is below the fastest choice ({low:.4g})")
    sizes = [len(c) for c in costs]
    n = sum(sizes)
    c = np.concatenate([np.asarray(x, float) for x in costs])
    lat = np.concatenate([np.asarray(x, float) for x in latencies])
    one = np.zeros((len(sizes), n))
    start = 0
    for layer, size in enumerate(sizes):
        one[layer, start:start + size] = 1.0
        start += size
    constraints = [LinearConstraint(one, 1.0, 1.0), LinearConstraint(lat[None, :], -np.inf, budget)]
    t0 = time.perf_counter()
    res = milp(c, constraints=constraints, integrality=np.ones(n), bounds=Bounds(0, 1),
               options={"presolve": True})
    seconds = time.perf_counter() - t0
    if res.x is None:
        raise BudgetError(f"the integer program found no choice within {budget:.4g}: {res.message}")
    x = np.round(res.x).astype(int)
    choice, start = [], 0
    for size in sizes:
        choice.append(int(np.argmax(x[start:start + size])))
        start += size
    return Selection(tuple(choice), float(c @ x), float(lat @ x), str(res.message), seconds)

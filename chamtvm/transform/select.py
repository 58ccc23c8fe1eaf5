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
from typing import Callable, Sequence, TypeVar

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


DRIFT_SLACK = 0.01  # share of the budget kept free for run-to-run drift of end-to-end timings
# a confirmed choice this share or more under the limit leaves latency unspent: choose once more
# under a budget raised by the shortfall (FILL_TRIES times at most), keep it if it measures under
FILL_SHARE = 0.05
FILL_TRIES = 1
Choice = TypeVar("Choice")


def select_measured(solve: Callable[[float], Choice], measure_ms: Callable[[Choice], float], budget_ms: float,
                    model_budget: float, ms_per_unit: float, tries: int = 3, slack: float = DRIFT_SLACK,
                    describe: Callable[[Choice], dict] | None = None,
                    confirm_ms: Callable[[Choice], float] | None = None, fill: float = FILL_SHARE,
                    fill_tries: int = FILL_TRIES) -> tuple[Choice, list[dict]]:
    """Choose under a latency model, measure the choice end to end, and choose again while it
    measures over the budget.

    ``solve(model_budget)`` returns a choice whose modelled latency (``.latency``, in the
    model's unit) is at most ``model_budget``, or raises :class:`BudgetError`;
    ``measure_ms(choice)`` times it on the target (ms); ``ms_per_unit`` converts the model's
    unit to end-to-end ms (its slope). While the choice measures over ``budget_ms * (1 -
    slack)``, the next asks for a modelled latency lower than the last choice's by the
    overshoot, at most ``tries`` choices in all. A model errs where it interpolates or
    extrapolates; this makes the budget hold for what was measured, not for what was predicted.

    A choice that measures under the limit is timed once more (``confirm_ms``, default
    ``measure_ms``: it must time anew, not read a journal) and that second, independent timing
    decides: the first choice to measure under is, among choices measured with noise, one whose
    timing came out low by chance (a winner's curse), so its first timing is biased low; the
    second is not.

    A choice confirmed more than ``fill`` (a share) under the limit leaves latency unspent
    (the model over-predicted): up to ``fill_tries`` times, the next asks for a modelled
    latency higher than the last choice's by the shortfall to ``limit * (1 - fill / 2)``, and is
    kept only if it too measures and confirms under the limit (records marked ``"fill"``);
    otherwise the earlier choice stays. Returns the choice (over the budget only when
    ``tries`` ran out or a lower budget had no choice) and one record per try (model budget,
    modelled latency, measured ms, the confirming ms where taken, whether under the budget,
    ``"kept"``: whether it is the returned choice, and ``describe(choice)``)."""
    if tries < 1 or ms_per_unit <= 0:
        raise ValueError(f"tries must be >= 1 and ms_per_unit > 0, got {tries}, {ms_per_unit}")
    confirm_ms = confirm_ms or measure_ms
    limit = budget_ms * (1 - slack)
    checks: list[dict] = []

    def timed(choice, budget: float, **extra) -> float:
        """Measure ``choice`` (confirmed anew when under the limit), record it; the deciding ms."""
        record = {"model_budget": budget, "modelled": float(choice.latency),
                  "measured_ms": float(measure_ms(choice)), **extra}
        ms = record["measured_ms"]
        if ms <= limit:
            ms = record["confirm_ms"] = float(confirm_ms(choice))
        checks.append({**record, "under_budget": ms <= limit, **(describe(choice) if describe else {})})
        return ms

    last = None
    for _ in range(tries):
        try:
            choice = solve(model_budget)
        except BudgetError:
            if last is None:
                raise
            break
        last, measured = choice, timed(choice, model_budget)
        if measured <= limit:
            break
        model_budget = min(model_budget, choice.latency) - (measured - limit) / ms_per_unit
    best, kept = last, len(checks) - 1
    if not checks[-1]["under_budget"]:
        return best, _mark_kept(checks, kept)
    for _ in range(fill_tries):
        if measured >= limit * (1 - fill):
            break
        model_budget = max(model_budget, best.latency) + (limit * (1 - fill / 2) - measured) / ms_per_unit
        try:
            choice = solve(model_budget)
        except BudgetError:
            break
        if choice.latency <= best.latency:  # nothing wider fits the model: the same choice again
            break
        confirmed = timed(choice, model_budget, fill=True)
        if confirmed > limit:
            break
        best, measured, kept = choice, confirmed, len(checks) - 1
    return best, _mark_kept(checks, kept)


def _mark_kept(checks: list[dict], kept: int) -> list[dict]:
    """The records with ``"kept"``: true for the one whose choice is returned."""
    return [{**c, "kept": i == kept} for i, c in enumerate(checks)]

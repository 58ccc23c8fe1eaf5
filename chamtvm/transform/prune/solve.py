"""Choose every group's kept width under a latency budget: an exact integer program.

Why an integer program rather than ALCS's ADMM for the choice of widths: once widths are
restricted to multiples of the lanes, each group has a handful of candidate widths, and the
width-latency model (``latency``) is a constant plus one term per group plus one term per
pair of groups that share a kernel. Choosing one width per group that minimises the summed
accuracy cost under the budget is then a small mixed-integer linear program that HiGHS
(``scipy.optimize.milp``) solves to optimality in well under a second, with the pairwise terms
exact (no separable approximation). ADMM (``admm``) is kept for what it adds: it changes the
*weights* during training towards the pruned structure before the cut.

Formulation. Binary ``x[g, i]`` = group ``g`` keeps its ``i``-th candidate width
(``sum_i x[g, i] = 1``). For each pair ``(a, b)`` with a joint latency table ``P[i, j]``,
continuous ``y[i, j] >= 0`` with row sums ``x[a, i]`` and column sums ``x[b, j]``: with
one-hot ``x`` the only such ``y`` is ``x[a] x[b]^T``, so ``sum P * y`` is the pair's exact
latency. Budget: ``constant + sum_g u_g . x_g + sum P . y <= budget``. Objective: the summed
costs, plus a tie-break of 1e-6 per unit of normalised latency (between equal costs, the
faster network).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from ..select import BudgetError as SelectBudgetError
from .latency import WidthLatencyModel


class BudgetError(SelectBudgetError):
    """No choice of widths meets the budget (bad input, exit 2); the message gives the fastest
    reachable."""


@dataclass
class LatencyTerms:
    """The latency of a width choice as ``constant + sum unary + sum pairwise`` (same unit as
    the budget): ``unary[g][i]`` at ``g``'s ``i``-th candidate, ``pairwise[(a, b)][i, j]``."""

    constant: float
    unary: dict[str, np.ndarray]
    pairwise: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)

    def value(self, choice: Mapping[str, int]) -> float:
        """Latency of ``choice`` (group -> candidate index)."""
        out = self.constant + sum(float(u[choice[g]]) for g, u in self.unary.items())
        return out + sum(float(p[choice[a], choice[b]]) for (a, b), p in self.pairwise.items())


def latency_terms(model: WidthLatencyModel, candidates: Mapping[str, Sequence[int]]) -> LatencyTerms:
    """The kernel-sum latency (us) of ``model`` as terms over the ``candidates`` of each group
    (groups without candidates stay at full width). A kernel that touches three or more
    groups with candidates is a ``ValueError`` (not expressible with pairwise terms)."""
    full = model.full
    constant = 0.0
    unary = {g: np.zeros(len(ws)) for g, ws in candidates.items()}
    pairwise: dict[tuple[str, str], np.ndarray] = {}
    for pos in model.positions:
        free = [g for g in pos.groups if g in candidates]
        if not free:
            constant += pos.predict_us(full)
        elif len(free) == 1:
            g = free[0]
            unary[g] += np.array([pos.predict_us({**full, g: w}) for w in candidates[g]])
        elif len(free) == 2:
            a, b = free
            table = np.array([[pos.predict_us({**full, a: wa, b: wb}) for wb in candidates[b]]
                              for wa in candidates[a]])
            pairwise[(a, b)] = pairwise.get((a, b), 0) + table
        else:
            raise ValueError(f"a kernel ({pos.signature}) touches {len(free)} prunable groups {free}; "
                             f"the integer program handles at most two per kernel")
    return LatencyTerms(constant, unary, pairwise)


@dataclass
class Solution:
    """The chosen width per group, its cost and modelled latency, and how it was found."""

    widths: dict[str, int]
    cost: float
    latency: float
    status: str
    seconds: float
    method: str = "milp"


def _fastest(terms: LatencyTerms) -> float:
    """A lower bound on the latency any choice reaches (every term at its minimum)."""
    return terms.constant + sum(float(u.min()) for u in terms.unary.values()) + \
        sum(float(p.min()) for p in terms.pairwise.values())


def solve_milp(terms: LatencyTerms, costs: Mapping[str, Sequence[float]], candidates: Mapping[str, Sequence[int]],
               budget: float, time_limit_s: float = 60.0) -> Solution:
    """The widths minimising the summed ``costs`` with ``terms`` latency at most ``budget``.
    An infeasible budget is a ``BudgetError`` that says the fastest latency reachable."""
    from scipy import sparse
    from scipy.optimize import Bounds, LinearConstraint, milp

    t0 = time.perf_counter()
    groups = list(candidates)
    offset, col = {}, 0
    for g in groups:
        offset[g] = col
        col += len(candidates[g])
    n_x = col
    pair_off = {}
    for pair, p in terms.pairwise.items():
        pair_off[pair] = col
        col += p.size
    n = col
    rows, cols, vals, lo, hi = [], [], [], [], []
    r = 0

    def add_row(entries, low, high):
        nonlocal r
        for c, v in entries:
            rows.append(r)
            cols.append(c)
            vals.append(v)
        lo.append(low)
        hi.append(high)
        r += 1

    for g in groups:  # one width per group
        add_row([(offset[g] + i, 1.0) for i in range(len(candidates[g]))], 1.0, 1.0)
    for (a, b), p in terms.pairwise.items():  # y's marginals are x_a and x_b
        na, nb = p.shape
        base = pair_off[(a, b)]
        for i in range(na):
            add_row([(base + i * nb + j, 1.0) for j in range(nb)] + [(offset[a] + i, -1.0)], 0.0, 0.0)
        for j in range(nb):
            add_row([(base + i * nb + j, 1.0) for i in range(na)] + [(offset[b] + j, -1.0)], 0.0, 0.0)
    lat = np.zeros(n)
    for g, u in terms.unary.items():
        lat[offset[g]:offset[g] + len(u)] += u
    for pair, p in terms.pairwise.items():
        lat[pair_off[pair]:pair_off[pair] + p.size] += p.ravel()
    add_row([(i, v) for i, v in enumerate(lat) if v != 0.0], -np.inf, budget - terms.constant)
    a_mat = sparse.csr_array((vals, (rows, cols)), shape=(r, n))
    c = np.zeros(n)
    for g in groups:
        c[offset[g]:offset[g] + len(candidates[g])] = np.asarray(costs[g], dtype=float)
    scale = max(abs(budget), 1e-12)
    c += 1e-6 * lat / scale
    integrality = np.zeros(n)
    integrality[:n_x] = 1
    res = milp(c, constraints=LinearConstraint(a_mat, lo, hi), integrality=integrality,
               bounds=Bounds(0, 1), options={"time_limit": time_limit_s})
    seconds = time.perf_counter() - t0
    if res.x is None:
        raise BudgetError(f"no widths meet the budget {budget:.6g} (the fastest reachable is about "
                          f"{_fastest(terms):.6g}; solver: {res.message})")
    choice = {g: int(np.argmax(res.x[offset[g]:offset[g] + len(candidates[g])])) for g in groups}
    widths = {g: int(candidates[g][i]) for g, i in choice.items()}
    cost = float(sum(costs[g][i] for g, i in choice.items()))
    return Solution(widths, cost, terms.value(choice), "optimal" if res.status == 0 else str(res.message), seconds)


def solve_brute_force(terms: LatencyTerms, costs: Mapping[str, Sequence[float]],
                      candidates: Mapping[str, Sequence[int]], budget: float) -> Solution:
    """The same optimum by enumerating every choice (tiny instances only: tests)."""
    t0 = time.perf_counter()
    groups = list(candidates)
    best = None
    for idx in itertools.product(*(range(len(candidates[g])) for g in groups)):
        choice = dict(zip(groups, idx))
        lat = terms.value(choice)
        if lat > budget:
            continue
        cost = float(sum(costs[g][i] for g, i in choice.items()))
        if best is None or (cost, lat) < (best[0], best[1]):
            best = (cost, lat, choice)
    if best is None:
        raise BudgetError(f"no widths meet the budget {budget:.6g}")
    cost, lat, choice = best
    return Solution({g: int(candidates[g][i]) for g, i in choice.items()}, cost, lat, "optimal",
                    time.perf_counter() - t0, "brute-force")

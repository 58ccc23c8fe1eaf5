"""``transform.select``: the integer program picks the known optimum of small instances (checked
against enumerating every choice), including one where the greedy choice is wrong, and a
budget below the fastest choice is a ``BudgetError``."""

import itertools

import numpy as np
import pytest

from chamtvm.transform.select import BudgetError, fastest, select


def _brute_force(costs, lats, budget):
    best = None
    for choice in itertools.product(*[range(len(c)) for c in costs]):
        lat = sum(t[i] for t, i in zip(lats, choice))
        cost = sum(c[i] for c, i in zip(costs, choice))
        if lat <= budget + 1e-12 and (best is None or cost < best[0] - 1e-12):
            best = (cost, choice)
    return best


def test_known_optimum_where_greedy_fails():
    # layer 0: keep (cost 0, 10 ms) or cheap (cost 1, 2 ms); layer 1: keep (0, 10) or cheap (5, 9).
    # Budget 12: greedy by cost per ms saved replaces layer 1 first (5 for 1 ms) and misses it;
    # the optimum replaces layer 0 only: cost 1, latency 12.
    costs = [[0.0, 1.0], [0.0, 5.0]]
    lats = [[10.0, 2.0], [10.0, 9.0]]
    sel = select(costs, lats, 12.0)
    assert sel.choice == (1, 0) and sel.cost == pytest.approx(1.0) and sel.latency == pytest.approx(12.0)


def test_matches_enumeration_on_random_instances():
    rng = np.random.default_rng(0)
    for _ in range(20):
        layers = rng.integers(2, 5)
        costs = [np.r_[0.0, rng.uniform(0, 1, rng.integers(1, 4))] for _ in range(layers)]
        lats = [np.r_[rng.uniform(5, 10), rng.uniform(0.5, 6, len(c) - 1)] for c in costs]
        lo, hi = fastest(lats), sum(t[0] for t in lats)
        budget = lo + rng.uniform(0, 1) * (hi - lo)
        sel = select(costs, lats, budget)
        cost, _ = _brute_force(costs, lats, budget)
        assert sel.cost == pytest.approx(cost, abs=1e-9)
        assert sel.latency <= budget + 1e-9


def test_budget_below_the_fastest_choice_is_an_error():
    with pytest.raises(BudgetError, match="below the fastest choice"):
        select([[0.0, 1.0]], [[3.0, 2.0]], 1.5)
    with pytest.raises(ValueError, match="same, non-empty"):
        select([[0.0]], [[1.0, 2.0]], 5.0)

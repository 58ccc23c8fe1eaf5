"""Genetic search: seeded, constraints respected, Pareto front, clear errors."""

import numpy as np
import pytest

from chamtvm.search.genetic import SearchError, genetic_search
from chamtvm.space.schema import SearchSpace


@pytest.fixture(scope="module")
def problem():
    space = SearchSpace.load("small")
    sizes = np.array([len(c) for _, c in space.dimensions()])
    w = np.random.default_rng(0).random(len(sizes))
    norm = lambda X: X / np.maximum(sizes - 1, 1)
    return space, (lambda X: norm(X) @ w), (lambda X: 1.0 + norm(X) @ (w[::-1] + 0.5))


def test_same_seed_same_result_and_constraints_hold(problem):
    space, acc, lat = problem
    a = genetic_search(space, acc, lat, 6.0, np.random.default_rng(3), population=100, generations=20)
    b = genetic_search(space, acc, lat, 6.0, np.random.default_rng(3), population=100, generations=20)
    assert (a.best_indices == b.best_indices).all() and a.best_accuracy == b.best_accuracy
    assert a.best_latency_ms <= 6.0 and lat(a.best_indices[None])[0] == pytest.approx(a.best_latency_ms)
    assert a.evaluated == 100 * 21
    # the front is non-dominated and sorted by latency
    assert (np.diff(a.pareto_latency_ms) >= 0).all() and (np.diff(a.pareto_accuracy) > 0).all()
    # search beats random sampling of the same size under the same budget
    rng = np.random.default_rng(3)
    sizes = np.array([len(c) for _, c in space.dimensions()])
    rand = (rng.random((a.evaluated, len(sizes))) * sizes).astype(np.int64)
    ok = lat(rand) <= 6.0
    assert a.best_accuracy >= acc(rand)[ok].max()


def test_extra_constraint_is_respected(problem):
    space, acc, lat = problem
    flops = lambda X: X.sum(axis=1).astype(float)
    r = genetic_search(space, acc, lat, 100.0, np.random.default_rng(0), population=60, generations=10,
                       constraints={"flops": (flops, 10.0)})
    assert flops(r.best_indices[None])[0] <= 10.0


@pytest.mark.parametrize("budget", [-1.0, 0.0, float("nan")])
def test_bad_budget_is_refused(problem, budget):
    space, acc, lat = problem
    with pytest.raises(SearchError, match="positive number"):
        genetic_search(space, acc, lat, budget, np.random.default_rng(0))


def test_impossible_budget_says_what_is_reachable(problem):
    space, acc, lat = problem
    with pytest.raises(SearchError, match=r"latency <= 0.5 ms\); the fastest evaluated one takes [0-9.]+ ms"):
        genetic_search(space, acc, lat, 0.5, np.random.default_rng(0), population=20, generations=3)

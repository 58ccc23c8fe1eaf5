"""The search never hides a flat predictor: P(beats runner-up), front flatness, LCB."""

import numpy as np
import pytest

from chamtvm.accuracy.encoding import accuracy_features
from chamtvm.accuracy.fit import new_gp
from chamtvm.accuracy.nasbench import NasBenchMacro
from chamtvm.pipeline.regret import all_indices
from chamtvm.search.genetic import genetic_search
from chamtvm.search.uncertainty import beats_runner_up, front_flatness, lcb
from chamtvm.space.schema import SearchSpace


@pytest.fixture(scope="module")
def macro():
    space = SearchSpace.load("macro")
    idx = all_indices(space)
    return space, idx, NasBenchMacro.load().true_accuracy(idx)


def _fit(space, idx, y, n, seed=0):
    pick = np.random.default_rng(seed).choice(len(idx), n, replace=False)
    return new_gp(seed).fit(accuracy_features(space, idx[pick]), y[pick])


def test_informative_predictor_is_not_flat_and_flat_data_is(macro):
    space, idx, y = macro
    gp = _fit(space, idx, y, 60)
    mflops = space.costs(idx)[:, 1] / 1e6
    res = genetic_search(space, lambda i: gp.predict(accuracy_features(space, i)),
                         lambda i: space.costs(i)[:, 1] / 1e6, float(np.median(mflops)),
                         np.random.default_rng(0), population=40, generations=10)
    good = front_flatness(gp, space, res.pareto_indices)
    assert not good["flat"] and good["spread_points"] > good["gp_std_points"] > 0
    # accuracies that are pure noise around one value: the GP explains them as noise and
    # its front is flat
    noise = 0.85 + 0.002 * np.random.default_rng(1).standard_normal(len(y))
    flat_gp = _fit(space, idx, noise, 30)
    flat = front_flatness(flat_gp, space, res.pareto_indices)
    assert flat["flat"], flat


def test_probability_of_beating_the_runner_up(macro):
    space, idx, y = macro
    gp = _fit(space, idx, y, 80)
    worst, best = idx[np.argmin(y)], idx[np.argmax(y)]
    assert beats_runner_up(gp, space, best, worst) > 0.99
    assert beats_runner_up(gp, space, worst, best) < 0.01
    assert beats_runner_up(gp, space, best, best) == pytest.approx(0.5)
    assert beats_runner_up(gp, space, best, None) is None


def test_lcb_is_below_the_mean_by_kappa_std(macro):
    space, idx, y = macro
    gp = _fit(space, idx, y, 20)
    mean, std = gp.predict(accuracy_features(space, idx[:50]), return_std=True)
    np.testing.assert_allclose(lcb(gp, space, idx[:50], 2.0), mean - 2 * std)

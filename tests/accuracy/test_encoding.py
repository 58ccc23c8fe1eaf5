"""Closed-form cost features agree with counting on the torch model."""

import numpy as np
import pytest

from chamtvm.accuracy.encoding import accuracy_features, arch_costs, model_cost
from chamtvm.space.schema import SearchSpace


@pytest.mark.parametrize("name", ["fashion", "small"])
def test_closed_form_costs_match_the_torch_model(name):
    space = SearchSpace.load(name)
    rng = np.random.default_rng(1)
    archs = [space.sample(rng) for _ in range(4)]
    closed = arch_costs(space, [space.indices(a) for a in archs])
    counted = np.array([model_cost(space, a) for a in archs], dtype=np.float64)
    np.testing.assert_array_equal(closed, counted)


def test_cost_columns_span_the_space_between_smallest_and_largest():
    space = SearchSpace.load("fashion")
    sizes = [len(c) for _, c in space.dimensions()]
    X = accuracy_features(space, [[0] * len(sizes), [n - 1 for n in sizes]])
    np.testing.assert_allclose(X[:, -2:], [[0, 0], [1, 1]])
    rng = np.random.default_rng(0)
    idx = (rng.random((500, len(sizes))) * sizes).astype(int)
    X = accuracy_features(space, idx)
    assert X.shape == (500, len(sizes) + 2) and (X >= 0).all() and (X <= 1).all()

"""Synthetic tables: shapes, reproducibility, the known best under a budget."""

from __future__ import annotations

import numpy as np

from chamtvm.accuracy.synthetic import synthetic_table


def test_table_is_seeded_and_knows_its_best():
    a, b = synthetic_table(3, layers=4, choices=3), synthetic_table(3, layers=4, choices=3)
    assert np.array_equal(a.accuracy, b.accuracy) and a.X.shape == (81, 4) and a.prior.shape == (81, 2)
    assert not np.array_equal(a.accuracy, synthetic_table(4, layers=4, choices=3).accuracy)
    for budget in a.budgets():
        feas = np.flatnonzero(a.latency_ms <= budget)
        assert a.best_under(budget) == feas[np.argmax(a.accuracy[feas])]
    assert a.best_under(0.0) == -1
    assert np.array_equal(a.oracle([0, 5]), a.accuracy[[0, 5]])
    # bigger networks are usually more accurate, not always
    from scipy.stats import kendalltau

    assert 0.2 < kendalltau(a.latency_ms, a.accuracy)[0] < 0.95

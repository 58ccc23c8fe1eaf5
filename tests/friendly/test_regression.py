"""Least squares with confidence intervals (pure numpy/scipy)."""

import numpy as np
import pytest

from chamtvm.friendly.regression import fit_ols


def test_noise_free_data_is_recovered_exactly_with_zero_width_intervals():
    rng = np.random.default_rng(0)
    X = np.c_[np.ones(20), rng.random((20, 3))]
    beta = np.array([1.0, -2.0, 0.5, 3.0])
    fit = fit_ols(X, X @ beta)
    assert np.allclose(fit.coef, beta) and fit.r2 == pytest.approx(1.0)
    est, half = fit.estimate([0, 1, -1, 0])
    assert est == pytest.approx(-2.5) and half < 1e-9


def test_95_percent_intervals_cover_the_truth_about_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    X = np.c_[np.ones(15), rng.integers(0, 2, (15, 3))]
    beta = np.array([2.0, 0.3, -0.1, 0.7])
    g = np.array([0.0, 1.0, 0.0, -1.0])
    hits = 0
    for _ in range(400):
        fit = fit_ols(X, X @ beta + rng.normal(0, 0.2, 15))
        est, half = fit.estimate(g)
        hits += abs(est - g @ beta) <= half
    assert 0.91 <= hits / 400 <= 0.985


def test_unidentifiable_or_too_small_inputs_are_refused():
    X = np.c_[np.ones(6), np.arange(6), 2 * np.arange(6)]
    with pytest.raises(ValueError, match="rank"):
        fit_ols(X, np.arange(6.0))
    with pytest.raises(ValueError, match="cannot estimate"):
        fit_ols(np.ones((2, 2)), np.ones(2))
    with pytest.raises(ValueError, match="non-finite"):
        fit_ols(np.c_[np.ones(4), np.arange(4)], [1.0, np.nan, 2.0, 3.0])

"""``accuracy.evaluate``: Kendall tau, RMSE and k-fold / leave-one-out cross-validation,
checked against values known by hand."""

import math

import numpy as np
import pytest


def test_kendall_tau_known_values_and_nan_when_constant():
    from chamtvm.accuracy.evaluate import kendall_tau

    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # 4 items, one discordant pair out of 6: (5 - 1) / 6
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    assert math.isnan(kendall_tau([0.5, 0.5, 0.5], [1, 2, 3]))


def test_rmse_known_value():
    from chamtvm.accuracy.evaluate import rmse

    assert rmse([1, 2, 3], [1, 2, 3]) == 0.0
    assert rmse([0, 0, 0, 0], [1, -1, 1, -1]) == pytest.approx(1.0)
    assert rmse([3, 0], [0, 4]) == pytest.approx(math.sqrt((9 + 16) / 2))


class _NearestNeighbour:
    """A tiny exact predictor: the y of the nearest training x (so every fold is known)."""

    def fit(self, X, y):
        self.X, self.y = np.asarray(X), np.asarray(y)
        return self

    def predict(self, X):
        d = np.abs(np.asarray(X)[:, None, 0] - self.X[None, :, 0])
        return self.y[np.argmin(d, axis=1)]


def test_leave_one_out_predictions_are_the_neighbours():
    from chamtvm.accuracy.evaluate import cross_validate

    X = np.array([[0.0], [1.0], [2.0], [10.0]])
    y = np.array([0.1, 0.2, 0.3, 0.9])
    cv = cross_validate(_NearestNeighbour, X, y, n_folds=99)  # more folds than samples: LOO
    assert cv["n_folds"] == 4 and cv["n"] == 4
    # each point predicted from the others: x=0 -> x=1, x=1 -> x=0 (first of the tie), 2 -> 1, 10 -> 2
    assert cv["predictions"] == pytest.approx([0.2, 0.1, 0.2, 0.3])
    assert cv["rmse"] == pytest.approx(math.sqrt((0.1 ** 2 + 0.1 ** 2 + 0.1 ** 2 + 0.6 ** 2) / 4))
    assert cv["kendall_tau"] is not None and cv["kendall_tau"] > 0


def test_every_sample_is_predicted_out_of_fold_once():
    from chamtvm.accuracy.evaluate import cross_validate

    seen = []

    class Spy(_NearestNeighbour):
        def fit(self, X, y):
            seen.append(len(y))
            return super().fit(X, y)

    X = np.arange(10.0)[:, None]
    cv = cross_validate(Spy, X, X[:, 0] * 2, n_folds=3, rng=np.random.default_rng(1))
    assert cv["n_folds"] == 3 and sorted(seen) == [6, 7, 7]  # folds of 4, 3, 3
    assert len(cv["predictions"]) == 10


def test_constant_predictions_give_no_tau_and_too_few_samples_are_refused():
    from chamtvm.accuracy.evaluate import cross_validate

    class Constant:
        def fit(self, X, y):
            return self

        def predict(self, X):
            return np.full(len(X), 0.5)

    cv = cross_validate(Constant, np.zeros((4, 1)), np.array([0.1, 0.2, 0.3, 0.4]))
    assert cv["kendall_tau"] is None and cv["rmse"] > 0
    with pytest.raises(ValueError, match="at least 3 samples, got 2"):
        cross_validate(Constant, np.zeros((2, 1)), np.array([0.1, 0.2]))

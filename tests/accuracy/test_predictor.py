"""GP / MLP predictors and cross-validation (chamtvm.accuracy.predictor/evaluate)."""

import json

import numpy as np
import pytest

from chamtvm.accuracy import GPPredictor, MLPPredictor, make_predictor
from chamtvm.accuracy.evaluate import cross_validate, kendall_tau, rmse


def smooth(X):
    return 90 + 2 * np.sin(3 * X[:, 0]) + X[:, 1] ** 2 - 0.5 * X[:, 2]


def data(n, seed):
    rng = np.random.default_rng(seed)
    X = rng.random((n, 4))  # feature 3 is irrelevant
    return X, smooth(X) + rng.normal(0, 0.02, n)


def test_gp_predicts_smooth_function_far_better_than_the_mean():
    X, y = data(40, 0)
    Xt, yt = data(300, 1)
    gp = GPPredictor(random_state=0).fit(X, y)
    assert gp.fit(X, y) is gp
    err_gp = rmse(gp.predict(Xt), smooth(Xt))
    err_mean = rmse(np.full(len(Xt), y.mean()), smooth(Xt))
    assert err_gp < 0.2 * err_mean
    assert kendall_tau(gp.predict(Xt), smooth(Xt)) > 0.85


def test_std_is_small_at_training_points_and_large_far_away():
    X, y = data(30, 2)
    gp = GPPredictor(random_state=0).fit(X, y)
    mean, std = gp.predict(np.vstack([X[:5], X[:5] + 3.0]), return_std=True)
    assert mean.shape == std.shape == (10,)
    assert np.all(std[:5] < std[5:] / 5)


def test_same_random_state_same_fit():
    X, y = data(25, 3)
    a = GPPredictor(n_restarts_optimizer=3, random_state=7).fit(X, y)
    b = GPPredictor(n_restarts_optimizer=3, random_state=7).fit(X, y)
    np.testing.assert_array_equal(a.theta_, b.theta_)


@pytest.mark.parametrize("scale", [None, 100.0])
def test_json_round_trip_predicts_the_same(tmp_path, scale):
    X, y = data(20, 4)
    gp = GPPredictor(kernel="matern32-ard", random_state=0, log_error_scale=scale).fit(X, y)
    path = tmp_path / "gp.json"
    gp.save(path)
    d = json.loads(path.read_text())  # plain JSON, no pickle
    assert d["kernel"] == "matern32-ard" and len(d["X"]) == 20
    back = GPPredictor.load(path)
    Xt, _ = data(50, 5)
    for a, b in zip(gp.predict(Xt, return_std=True), back.predict(Xt, return_std=True)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-8)


def test_errors_are_clear():
    with pytest.raises(RuntimeError, match="not fitted"):
        GPPredictor().predict(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="unknown kernel"):
        GPPredictor(kernel="nope").fit(*data(5, 0))
    X, y = data(5, 0)
    with pytest.raises(ValueError, match="fit with 4"):
        GPPredictor().fit(X, y).predict(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="valid"):
        make_predictor("svm")


def test_cross_validation_and_mlp_baseline():
    X, y = data(30, 6)
    cv = cross_validate(lambda: GPPredictor(n_restarts_optimizer=1), X, y, n_folds=5)
    assert cv["n"] == 30 and cv["n_folds"] == 5 and cv["kendall_tau"] > 0.6
    mlp = MLPPredictor(hidden=32, max_iter=300).fit(X, y)
    assert mlp.predict(X).shape == (30,)
    with pytest.raises(ValueError, match="uncertainty"):
        mlp.predict(X, return_std=True)

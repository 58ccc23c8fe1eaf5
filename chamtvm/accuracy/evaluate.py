"""Quality of an accuracy predictor: ranking and error metrics, and cross-validation."""

from __future__ import annotations

from typing import Callable

import numpy as np


def kendall_tau(pred, true) -> float:
    """Kendall tau-b between predicted and true accuracies (1: same ranking); NaN when
    either side is constant (no ranking to compare)."""
    from scipy.stats import kendalltau

    return float(kendalltau(np.asarray(pred), np.asarray(true))[0])


def rmse(pred, true) -> float:
    """Root mean squared error, in the unit of the accuracies."""
    d = np.asarray(pred, dtype=np.float64) - np.asarray(true, dtype=np.float64)
    return float(np.sqrt(np.mean(d ** 2)))


def cross_validate(make: Callable[[], object], X, y, n_folds: int = 5,
                   rng: np.random.Generator | None = None) -> dict:
    """K-fold (leave-one-out when ``n_folds >= len(y)``) out-of-fold predictions.

    ``make()`` returns a fresh unfitted predictor. Returns ``{"kendall_tau", "rmse",
    "n_folds", "n", "predictions"}``; tau and RMSE are computed over all out-of-fold
    predictions at once (``n`` values); tau is None when the out-of-fold predictions are
    constant (e.g. the GP explains 2 training points as noise).
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    if n < 3:
        raise ValueError(f"cross-validation needs at least 3 samples, got {n}")
    k = min(n_folds, n)
    order = (rng or np.random.default_rng(0)).permutation(n)
    folds = np.array_split(order, k)
    pred = np.empty(n)
    for fold in folds:
        train = np.setdiff1d(order, fold)
        pred[fold] = make().fit(X[train], y[train]).predict(X[fold])
    tau = kendall_tau(pred, y)
    return {"kendall_tau": None if np.isnan(tau) else tau, "rmse": rmse(pred, y), "n_folds": k,
            "n": n, "predictions": pred.tolist()}

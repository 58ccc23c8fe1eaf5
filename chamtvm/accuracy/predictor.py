"""Accuracy predictors with a scikit-learn interface (fit / predict) on any numeric encoding.

:class:`GPPredictor` is ChamNet's predictor: a Gaussian process whose kernel is a
constant times a Matern kernel (ARD: one length scale per feature, or isotropic), plus
white noise
(training accuracies are noisy: seed-to-seed spread). Hyperparameters are fit by
maximising the marginal likelihood with ``n_restarts_optimizer`` random restarts drawn
from ``random_state``; targets are normalised (``normalize_y``). Saved as JSON: kernel
name, fitted log-hyperparameters and the training data; never pickle.

Kernel choice, measured by ``benchmarks/bench_accuracy.py`` (section ``selection.kernel``
of ``benchmarks/results/accuracy_nasbench.json``): NAS-Bench-Macro, ``ops+cost``
features, log-error target, random samples, selection seeds 100-104 (disjoint from the
reporting seeds), Kendall tau over all 6,561 architectures at 20 / 50 samples:
``matern52-iso`` 0.784 / 0.837, ``matern52-ard`` 0.674 / 0.837, ``matern32-ard``
0.594 / 0.839, ``rbf-ard`` 0.735 / 0.826. With 50 samples the ARD Matern kernels tie
the isotropic one; with 20 samples, one length scale per feature (26 here) overfits the
marginal likelihood and ranks much worse. Hence the default ``matern52-iso``; ARD
remains available (``kernel="matern52-ard"``) for larger sample counts.

:class:`MLPPredictor` is the OFA-style baseline (a 3-layer MLP regressor) used by the
benchmark; it has no uncertainty, so it cannot drive Bayesian optimisation.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..core.registry import Registry

KERNELS = ("matern52-ard", "matern32-ard", "rbf-ard", "matern52-iso")
FORMAT_VERSION = 1


def _check_X(X, n_features: int | None = None) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D array (n_samples, n_features), got shape {X.shape}")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"X has {X.shape[1]} features, the predictor was fit with {n_features}")
    if not np.all(np.isfinite(X)):
        raise ValueError("X contains NaN or infinite values")
    return X


def _make_kernel(name: str, n_features: int):
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, RBF, WhiteKernel

    if name not in KERNELS:
        raise ValueError(f"unknown kernel {name!r}; valid: {list(KERNELS)}")
    ls = np.ones(n_features) if name.endswith("-ard") else 1.0
    bounds = (1e-2, 1e3)
    if name.startswith("matern52"):
        base = Matern(length_scale=ls, length_scale_bounds=bounds, nu=2.5)
    elif name.startswith("matern32"):
        base = Matern(length_scale=ls, length_scale_bounds=bounds, nu=1.5)
    else:
        base = RBF(length_scale=ls, length_scale_bounds=bounds)
    return (ConstantKernel(1.0, (1e-3, 1e3)) * base
            + WhiteKernel(noise_level=1e-2, noise_level_bounds=(1e-6, 1e0)))


class GPPredictor:
    """Gaussian-process accuracy predictor (see the module docstring for the kernel).

    Parameters: ``kernel`` (one of ``KERNELS``), ``n_restarts_optimizer`` (random restarts
    of the marginal-likelihood optimiser), ``random_state`` (int or None: restart draws).
    After ``fit``: ``gp_`` (the scikit-learn regressor), ``n_features_in_``.
    X: ``(n_samples, n_features)`` float; y: ``(n_samples,)`` accuracies in any unit.
    """

    def __init__(self, kernel: str = "matern52-iso", n_restarts_optimizer: int = 5,
                 random_state: int | None = 0, log_error_scale: float | None = None):
        self.kernel = kernel
        self.n_restarts_optimizer = n_restarts_optimizer
        self.random_state = random_state
        self.log_error_scale = log_error_scale

    # The optional target transform t = -log(scale - y) (scale: 1 for fractions, 100 for
    # percentages) spreads the crowded top of the accuracy range and squeezes the few
    # very bad architectures, which otherwise dominate the squared-error fit.
    def _to_t(self, y):
        if self.log_error_scale is None:
            return y
        # a perfect score (error 0) is floored at 1e-4 of the scale instead of -log(0)
        err = np.maximum(self.log_error_scale - y, 1e-4 * self.log_error_scale)
        return -np.log(err)

    def _from_t(self, t, t_std=None):
        if self.log_error_scale is None:
            return t if t_std is None else (t, t_std)
        y = self.log_error_scale - np.exp(-t)
        if t_std is None:
            return y
        return y, t_std * np.exp(-t)  # delta method: dy/dt = exp(-t)

    def fit(self, X, y, theta: np.ndarray | None = None) -> "GPPredictor":
        """Fit hyperparameters and posterior; with ``theta`` (log-hyperparameters, e.g. from
        a previous fit) the hyperparameters are kept fixed and only the posterior is
        computed (cheap: used for batch fantasies and for loading)."""
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.gaussian_process import GaussianProcessRegressor

        X = _check_X(X)
        y = np.asarray(y, dtype=np.float64).ravel()
        if len(y) != len(X):
            raise ValueError(f"X has {len(X)} rows but y has {len(y)} values")
        if len(y) < 2:
            raise ValueError("a GP predictor needs at least 2 training points")
        kern = _make_kernel(self.kernel, X.shape[1])
        if theta is not None:
            kern = kern.clone_with_theta(np.asarray(theta, dtype=np.float64))
        gp = GaussianProcessRegressor(
            kernel=kern, normalize_y=True, alpha=1e-8,
            optimizer=None if theta is not None else "fmin_l_bfgs_b",
            n_restarts_optimizer=0 if theta is not None else self.n_restarts_optimizer,
            random_state=self.random_state,
        )
        with warnings.catch_warnings():
            # length scales at their bound are expected for features that do not matter
            warnings.simplefilter("ignore", ConvergenceWarning)
            gp.fit(X, self._to_t(y))
        self.gp_ = gp
        self.n_features_in_ = X.shape[1]
        self.X_train_, self.y_train_ = X, y
        return self

    def predict(self, X, return_std: bool = False):
        """Predicted accuracy ``(n,)``; with ``return_std`` also the posterior std ``(n,)``
        of the latent function (white noise excluded), in the unit of ``y``."""
        self._check_fitted()
        X = _check_X(X, self.n_features_in_)
        if not return_std:
            return self._from_t(self.gp_.predict(X))
        mean, std = self.gp_.predict(X, return_std=True)
        # scikit-learn's std includes the fitted white noise; remove it so that an
        # already-measured point is not considered uncertain by the acquisition
        noise = self.noise_variance_
        var = np.maximum(std ** 2 - noise, 1e-18)
        return self._from_t(mean, np.sqrt(var))

    def latent_cov(self, X) -> tuple[np.ndarray, np.ndarray]:
        """Joint posterior of the latent function at ``X`` ``(n, d)``: mean ``(n,)`` and
        covariance ``(n, n)`` in the GP's target unit (the transformed target when
        ``log_error_scale`` is set, which is monotone in the accuracy), white noise excluded."""
        self._check_fitted()
        X = _check_X(X, self.n_features_in_)
        mean, cov = self.gp_.predict(X, return_cov=True)
        cov = np.array(cov, dtype=np.float64)
        cov[np.diag_indices_from(cov)] = np.maximum(np.diag(cov) - self.noise_variance_, 1e-18)
        return np.asarray(mean, dtype=np.float64), cov

    def prob_greater(self, Xa, Xb) -> np.ndarray:
        """``(n,)``: posterior probability that the accuracy at ``Xa[i]`` exceeds the one at
        ``Xb[i]`` (joint Gaussian of the two latent values, their correlation included)."""
        from scipy.stats import norm

        Xa, Xb = _check_X(Xa, self.n_features_in_), _check_X(Xb, self.n_features_in_)
        out = np.empty(len(Xa))
        for i in range(len(Xa)):
            m, c = self.latent_cov(np.vstack([Xa[i], Xb[i]]))
            var = max(c[0, 0] + c[1, 1] - 2 * c[0, 1], 1e-18)
            out[i] = norm.cdf((m[0] - m[1]) / np.sqrt(var))
        return out

    @property
    def noise_variance_(self) -> float:
        """Fitted white-noise variance in the GP's target unit squared (``y``, or the
        transformed target when ``log_error_scale`` is set)."""
        self._check_fitted()
        k = self.gp_.kernel_
        scale = float(np.atleast_1d(self.gp_._y_train_std)[0]) if self.gp_.normalize_y else 1.0
        return float(k.k2.noise_level) * scale ** 2

    @property
    def theta_(self) -> np.ndarray:
        """Fitted log-hyperparameters (scikit-learn ``kernel_.theta``)."""
        self._check_fitted()
        return self.gp_.kernel_.theta.copy()

    def _check_fitted(self):
        if not hasattr(self, "gp_"):
            raise RuntimeError("GPPredictor is not fitted yet; call fit(X, y) first")

    # ------------------------------------------------------------------ saving
    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible state: settings, fitted hyperparameters and training data."""
        self._check_fitted()
        return {
            "format": "chamtvm.accuracy.GPPredictor", "version": FORMAT_VERSION,
            "kernel": self.kernel, "n_restarts_optimizer": self.n_restarts_optimizer,
            "random_state": self.random_state, "log_error_scale": self.log_error_scale,
            "theta": self.theta_.tolist(), "kernel_repr": repr(self.gp_.kernel_),
            "X": self.X_train_.tolist(), "y": self.y_train_.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "GPPredictor":
        if d.get("format") != "chamtvm.accuracy.GPPredictor":
            raise ValueError("not a saved GPPredictor (field 'format' missing or different)")
        if d.get("version") != FORMAT_VERSION:
            raise ValueError(f"saved GPPredictor version {d.get('version')!r}; this code reads {FORMAT_VERSION}")
        obj = cls(d["kernel"], d["n_restarts_optimizer"], d["random_state"], d.get("log_error_scale"))
        return obj.fit(np.asarray(d["X"]), np.asarray(d["y"]), theta=np.asarray(d["theta"]))

    def save(self, path: str | os.PathLike) -> None:
        """Write JSON atomically (temp file + rename)."""
        from ..core.atomic import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "GPPredictor":
        return cls.from_dict(json.loads(Path(path).read_text()))


class MLPPredictor:
    """OFA-style MLP accuracy predictor (baseline): 3 hidden layers of ``hidden`` ReLU units
    on standardised targets, Adam, early stopping off (too few samples for a split)."""

    def __init__(self, hidden: int = 400, max_iter: int = 2000, alpha: float = 1e-4,
                 random_state: int | None = 0):
        self.hidden, self.max_iter, self.alpha, self.random_state = hidden, max_iter, alpha, random_state

    def fit(self, X, y) -> "MLPPredictor":
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPRegressor

        X = _check_X(X)
        y = np.asarray(y, dtype=np.float64).ravel()
        self.y_mean_, self.y_std_ = float(y.mean()), float(y.std() or 1.0)
        self.mlp_ = MLPRegressor(hidden_layer_sizes=(self.hidden,) * 3, alpha=self.alpha,
                                 max_iter=self.max_iter, learning_rate_init=1e-3,
                                 random_state=self.random_state)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.mlp_.fit(X, (y - self.y_mean_) / self.y_std_)
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X, return_std: bool = False):
        if return_std:
            raise ValueError("MLPPredictor has no predictive uncertainty (return_std=True)")
        X = _check_X(X, self.n_features_in_)
        return self.mlp_.predict(X) * self.y_std_ + self.y_mean_


PREDICTORS: Registry = Registry("predictor")
PREDICTORS.register("gp", GPPredictor)
PREDICTORS.register("mlp", MLPPredictor)


def make_predictor(name: str, **kwargs: Any):
    """Predictor by registry name; an unknown name lists the valid ones."""
    return PREDICTORS.get(name)(**kwargs)

"""Ordinary least squares with confidence intervals of linear combinations of the coefficients.

In: a model matrix ``X`` ``(n, p)`` of full column rank and responses ``y`` ``(n,)`` (e.g.
measured network latency in ms, or accuracy in points). Out: a :class:`LinearFit` whose
``estimate(g)`` gives the estimate of ``g' beta`` and the half-width of its two-sided
confidence interval (Student t with ``n - p`` degrees of freedom, homoscedastic errors),
which is how a choice's contribution (a difference of two choices' effects) gets its interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95


@dataclass(frozen=True)
class LinearFit:
    """A fitted linear model: coefficients ``(p,)``, their covariance ``(p, p)``, residual
    degrees of freedom, residual standard deviation (units of y), R^2, and the confidence level."""

    coef: np.ndarray
    cov: np.ndarray
    dof: int
    sigma: float
    r2: float
    n: int
    level: float = CONFIDENCE

    @property
    def t_quantile(self) -> float:
        """Two-sided Student-t quantile of ``level`` at the residual degrees of freedom."""
        from scipy import stats

        return float(stats.t.ppf(0.5 + self.level / 2, self.dof))

    def estimate(self, g) -> tuple[float, float]:
        """``(g' beta, half-width of its confidence interval)`` for a vector ``g`` ``(p,)``."""
        g = np.asarray(g, dtype=float)
        se = float(np.sqrt(max(g @ self.cov @ g, 0.0)))
        return float(g @ self.coef), self.t_quantile * se

    def summary(self) -> dict:
        return {"n": self.n, "parameters": int(len(self.coef)), "residual_dof": self.dof,
                "residual_sd": self.sigma, "r2": self.r2, "confidence": self.level}


def fit_ols(X, y, level: float = CONFIDENCE) -> LinearFit:
    """Least-squares fit of ``y`` on ``X`` (module docstring); ValueError when ``X`` is not of
    full column rank, when there are no residual degrees of freedom, or on non-finite input."""
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"expected X (n, p) and y (n,), got {X.shape} and {y.shape}")
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))):
        raise ValueError("the regression input holds non-finite values")
    n, p = X.shape
    if n <= p:
        raise ValueError(f"{n} observations cannot estimate {p} coefficients with a confidence interval")
    rank = np.linalg.matrix_rank(X)
    if rank < p:
        raise ValueError(f"the model matrix has rank {rank} < {p}: some effects are not identifiable "
                         f"from these networks (use a balanced design)")
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ coef
    dof = n - p
    sigma2 = float(resid @ resid) / dof
    cov = sigma2 * np.linalg.inv(X.T @ X)
    tss = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float(resid @ resid) / tss if tss > 0 else 1.0
    return LinearFit(coef, cov, dof, float(np.sqrt(sigma2)), r2, n, level)

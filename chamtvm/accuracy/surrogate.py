"""The surrogate of the budget-aware loop (``budgeted.pick_under_budgets``): a small exact
Gaussian process in numpy, and the choice among a few candidate models by leave-one-out
on the lookups made so far.

Why not :class:`~chamtvm.accuracy.predictor.GPPredictor` (scikit-learn): the loop refits
after every lookup and compares several candidate models each time; scikit-learn's
generic kernel machinery costs 0.1-3 s per fit, this one a few milliseconds for the same
exact GP (tens of points, a handful of hyperparameters, analytic gradients).

Features come in named **groups** (``"encoding"``: the caller's architecture encoding;
``"prior"``: features that cost no training, such as log parameters, log MACs, the
predicted latency and zero-cost proxies). A :class:`ModelSpec` says which groups a
candidate uses, whether it adds a linear (Bayesian linear regression) term to the Matern
kernel, and its target transform. Kernel of a spec (``z``: its feature columns, each
group scaled to [0, 1] over the pool, ``c``: the pool mean)::

    k(z, z') = s_m * Matern52( sqrt( sum_g |z_g - z'_g|^2 / l_g^2 ) )
             + sum_g s_g * <z_g - c_g, z'_g - c_g> / d_g      (linear term, if any)
             + s_n * [z == z']                                  (noise)

one length scale ``l_g`` and one linear weight ``s_g`` per group (``d_g``: the group's
width), so the marginal likelihood weights the groups against each other. Targets are
standardised; ``log-error`` models ``-log(scale - y)`` (spreads the crowded top of the
accuracy range; only offered when the accuracy scale is known: 1 for fractions, 100 for
percentages).

Model choice (``select_model``): every candidate's hyperparameters are fitted by maximum
marginal likelihood on all lookups, then scored by the closed-form leave-one-out log
predictive density of the observed accuracies (Rasmussen & Williams 2006, Sec. 5.4.2),
in the accuracy's own unit (the log-error transform's Jacobian included, so the two
targets compare). The score uses the lookups only; nothing else is ever read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Hyperparameter bounds (log space) on standardised targets and [0, 1]-scaled features,
# fixed a priori (wide; not tuned on any benchmark).
_LOG_SIGNAL = (math.log(1e-3), math.log(1e2))
_LOG_LINEAR = (math.log(1e-4), math.log(1e2))
_LOG_NOISE = (math.log(1e-6), math.log(1.0))
_LENGTH_FACTOR = (0.05, 20.0)  # length scale bounds: factor * sqrt(group width)
_SQRT5 = math.sqrt(5.0)


@dataclass(frozen=True)
class ModelSpec:
    """One candidate surrogate: feature ``groups`` used, ``linear`` term or not, ``target``
    (``"raw"`` or ``"log-error"``)."""

    groups: tuple[str, ...]
    linear: bool
    target: str = "raw"

    @property
    def name(self) -> str:
        return f"{'+'.join(self.groups)}|{'matern+linear' if self.linear else 'matern'}|{self.target}"


def candidate_specs(groups: tuple[str, ...], log_error: bool) -> list[ModelSpec]:
    """The candidate models (fixed a priori): Matern + linear on the encoding as given and,
    when the pool has categorical columns, on its one-hot form (``categorical_encoding``);
    each alone and with the prior group (when there is one); each on the raw target and,
    when ``log_error`` (the accuracy scale is known), on the log-error target. (Matern
    alone, the present GP's form, is the case of a vanishing linear weight.)"""
    bases = [g for g in ("encoding", "onehot") if g in groups]
    shapes = [((g,), True) for g in bases]
    if "prior" in groups:
        shapes += [((g, "prior"), True) for g in bases]
    targets = ("raw", "log-error") if log_error else ("raw",)
    return [ModelSpec(g, lin, t) for t in targets for g, lin in shapes]


MAX_LEVELS = 16  # a column with 3..16 distinct values is treated as categorical (a priori)


def categorical_encoding(X: np.ndarray, max_levels: int = MAX_LEVELS) -> np.ndarray | None:
    """``X`` with every column of 3 to ``max_levels`` distinct values replaced by its
    one-hot indicators (other columns kept), or None when no column is categorical. A
    linear term on it is an additive model with one free effect per choice, whatever
    order the caller's codes put the choices in."""
    X = np.asarray(X, dtype=np.float64)
    cols, expanded = [], False
    for j in range(X.shape[1]):
        levels = np.unique(X[:, j])
        if 3 <= len(levels) <= max_levels:
            cols.append((X[:, j][:, None] == levels[None, :]).astype(np.float64))
            expanded = True
        else:
            cols.append(X[:, j][:, None])
    return np.hstack(cols) if expanded else None


def to_target(y: np.ndarray, target: str, scale: float | None) -> tuple[np.ndarray, np.ndarray]:
    """``(t, log|dt/dy|)`` of accuracies ``y`` (n,) under a target transform."""
    y = np.asarray(y, dtype=np.float64)
    if target == "raw":
        return y.copy(), np.zeros_like(y)
    if target == "log-error":
        if scale is None:
            raise ValueError("the log-error target needs the accuracy scale (1 or 100)")
        err = np.maximum(scale - y, 1e-4 * scale)  # a perfect score is floored, not -log(0)
        return -np.log(err), -np.log(err)
    raise ValueError(f"unknown target {target!r}; valid: ['raw', 'log-error']")


def from_target(t: np.ndarray, target: str, scale: float | None) -> np.ndarray:
    """Accuracies of transformed values ``t`` (inverse of :func:`to_target`)."""
    if target == "raw":
        return np.asarray(t, dtype=np.float64)
    return scale - np.exp(-np.asarray(t, dtype=np.float64))


class FeatureGroups:
    """The pool's feature groups, each column min-max scaled to [0, 1] over the pool.

    ``groups``: name -> ``(N, d_g)`` array (constant columns are dropped; a group left
    without columns is dropped)."""

    def __init__(self, groups: dict[str, np.ndarray]):
        self.columns: dict[str, np.ndarray] = {}
        self.center: dict[str, np.ndarray] = {}
        for name, G in groups.items():
            G = np.asarray(G, dtype=np.float64)
            lo, hi = G.min(axis=0), G.max(axis=0)
            keep = hi > lo
            if not keep.any():
                continue
            Z = (G[:, keep] - lo[keep]) / (hi[keep] - lo[keep])
            self.columns[name] = Z
            self.center[name] = Z.mean(axis=0)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.columns)

    def width(self, name: str) -> int:
        return self.columns[name].shape[1]


class ExactGP:
    """Exact GP on a :class:`ModelSpec`'s feature groups (kernel in the module docstring).

    ``fit(rows, y)``: pool rows ``(n,)`` and accuracies ``(n,)``; hyperparameters by
    maximum marginal likelihood (L-BFGS-B, analytic gradient, a deterministic start plus
    ``n_restarts`` seeded random starts). ``predict(rows)``: mean and latent std (noise
    excluded) in the *transformed* target's unit (``t``); ``loo_log_density()``: the
    leave-one-out log predictive density of the observed accuracies, summed, in the
    accuracy's unit.
    """

    def __init__(self, spec: ModelSpec, features: FeatureGroups, scale: float | None = None,
                 n_restarts: int = 2, rng: np.random.Generator | None = None):
        self.spec = spec
        self.features = features
        self.scale = scale
        self.n_restarts = n_restarts
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.groups = [g for g in spec.groups if g in features.columns]
        if not self.groups:
            raise ValueError(f"model {spec.name}: none of its feature groups has a varying column")

    # -- parameters: [log s_m, log l_g..., (log s_g...), log s_n]
    def _bounds(self) -> list[tuple[float, float]]:
        b = [_LOG_SIGNAL]
        for g in self.groups:
            w = math.sqrt(self.features.width(g))
            b.append((math.log(_LENGTH_FACTOR[0] * w), math.log(_LENGTH_FACTOR[1] * w)))
        if self.spec.linear:
            b += [_LOG_LINEAR] * len(self.groups)
        return b + [_LOG_NOISE]

    def _start(self) -> np.ndarray:
        p = [0.0] + [math.log(math.sqrt(self.features.width(g))) for g in self.groups]
        if self.spec.linear:
            p += [math.log(0.1)] * len(self.groups)
        return np.array(p + [math.log(1e-2)])

    def _parts(self, A: list[np.ndarray], B: list[np.ndarray]):
        """Per-group squared distances and centred inner products between row sets."""
        # |a - b|^2 = |a|^2 + |b|^2 - 2 a.b: no (m, n, d) temporary on large pools
        d2 = [np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T), 0.0)
              for a, b in zip(A, B)]
        ip = [(a @ b.T) / a.shape[1] for a, b in zip(A, B)] if self.spec.linear else []
        return d2, ip

    def _cols(self, rows) -> list[np.ndarray]:
        return [self.features.columns[g][rows] - self.features.center[g] for g in self.groups]

    def _kernel(self, p, d2, ip, grad: bool = False):
        G = len(self.groups)
        sm = math.exp(p[0])
        ls = np.exp(p[1:1 + G])
        r2 = sum(d / (l * l) for d, l in zip(d2, ls))
        r = np.sqrt(np.maximum(r2, 0.0))
        e = np.exp(-_SQRT5 * r)
        m = (1.0 + _SQRT5 * r + 5.0 / 3.0 * r2) * e
        K = sm * m
        lin_w = np.exp(p[1 + G:1 + 2 * G]) if self.spec.linear else []
        for w, x in zip(lin_w, ip):
            K = K + w * x
        if not grad:
            return K
        grads = [sm * m]
        # d m / d log l_g = (5/3) (1 + sqrt5 r) e * d2_g / l_g^2
        f = sm * 5.0 / 3.0 * (1.0 + _SQRT5 * r) * e
        grads += [f * d / (l * l) for d, l in zip(d2, ls)]
        grads += [w * x for w, x in zip(lin_w, ip)]
        return K, grads

    def _nll(self, p, d2, ip, t):
        from scipy.linalg.lapack import dpotrf, dpotri

        n = len(t)
        K, grads = self._kernel(p, d2, ip, grad=True)
        sn = math.exp(p[-1])
        K[np.diag_indices(n)] += sn
        L, info = dpotrf(K, lower=1)
        if info != 0:
            return 1e25, np.zeros_like(p)
        Kinv, info = dpotri(L, lower=1)
        Kinv = np.tril(Kinv) + np.tril(Kinv, -1).T
        alpha = Kinv @ t
        nll = 0.5 * t @ alpha + np.log(np.diag(L)).sum() + 0.5 * n * math.log(2 * math.pi)
        W = np.outer(alpha, alpha) - Kinv
        g = [-0.5 * np.sum(W * dK) for dK in grads]
        g.append(-0.5 * sn * np.trace(W))
        return nll, np.array(g)

    def fit(self, rows, y, theta: np.ndarray | None = None, warm: np.ndarray | None = None) -> "ExactGP":
        """Fit on pool ``rows`` (n,) and accuracies ``y`` (n,); with ``theta`` (log
        hyperparameters of an earlier fit) only the posterior is computed; ``warm``: one
        more start for the optimiser (e.g. the previous fit's hyperparameters)."""
        from scipy.optimize import minimize

        rows = np.asarray(rows, dtype=np.int64)
        y = np.asarray(y, dtype=np.float64)
        if len(rows) < 2:
            raise ValueError("the surrogate needs at least 2 observed points")
        t, self.log_jac_ = to_target(y, self.spec.target, self.scale)
        self.t_mean_, self.t_std_ = float(t.mean()), float(t.std() or 1.0)
        ts = (t - self.t_mean_) / self.t_std_
        A = self._cols(rows)
        d2, ip = self._parts(A, A)
        if theta is None:
            bounds = self._bounds()
            starts = [np.clip(self._start(), [b[0] for b in bounds], [b[1] for b in bounds])]
            if warm is not None:  # the previous fit replaces the random restarts
                starts.append(np.asarray(warm, dtype=np.float64))
            else:
                for _ in range(self.n_restarts):
                    starts.append(np.array([self.rng.uniform(lo, hi) for lo, hi in bounds]))
            best = None
            for s in starts:
                res = minimize(self._nll, s, args=(d2, ip, ts), jac=True, method="L-BFGS-B", bounds=bounds,
                               options={"maxiter": 100, "ftol": 1e-7})
                if best is None or res.fun < best.fun:
                    best = res
            theta = best.x
        self.theta_ = np.asarray(theta, dtype=np.float64)
        K = self._kernel(self.theta_, d2, ip) + math.exp(self.theta_[-1]) * np.eye(len(rows))
        self.L_ = np.linalg.cholesky(K)
        self.alpha_ = np.linalg.solve(self.L_.T, np.linalg.solve(self.L_, ts))
        self.rows_, self.y_, self.ts_ = rows, y, ts
        return self

    def predict(self, rows) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and latent std ``(m,)`` of the transformed target ``t`` at pool rows."""
        rows = np.asarray(rows, dtype=np.int64)
        B = self._cols(rows)
        A = self._cols(self.rows_)
        d2, ip = self._parts(B, A)
        Ks = self._kernel(self.theta_, d2, ip)
        mean = Ks @ self.alpha_
        v = np.linalg.solve(self.L_, Ks.T)
        prior_var = math.exp(self.theta_[0]) + (
            sum(math.exp(w) * (b * b).sum(1) / b.shape[1]
                for w, b in zip(self.theta_[1 + len(self.groups):1 + 2 * len(self.groups)], B))
            if self.spec.linear else 0.0)
        var = np.maximum(prior_var - (v * v).sum(0), 1e-12)
        return self.t_mean_ + self.t_std_ * mean, self.t_std_ * np.sqrt(var)

    def predict_accuracy(self, rows) -> np.ndarray:
        """Posterior mean mapped back to the accuracy's unit ``(m,)``."""
        return from_target(self.predict(rows)[0], self.spec.target, self.scale)

    def loo_log_density(self) -> float:
        """Sum over lookups of the leave-one-out log predictive density of the observed
        accuracy (hyperparameters as fitted on all lookups; Jacobian of the target
        transform included, so raw and log-error models compare)."""
        n = len(self.rows_)
        Kinv = np.linalg.solve(self.L_.T, np.linalg.solve(self.L_, np.eye(n)))
        d = np.maximum(np.diag(Kinv), 1e-300)
        var = 1.0 / d
        resid = self.alpha_ / d  # standardised t_i - LOO mean_i
        logp = -0.5 * np.log(2 * math.pi * var) - 0.5 * resid ** 2 / var
        return float(np.sum(logp - math.log(self.t_std_) + self.log_jac_))


@dataclass
class Selection:
    """Outcome of :func:`select_model`: the chosen fitted GP and every candidate's LOO score."""

    model: ExactGP
    scores: dict[str, float]


def select_model(specs: list[ModelSpec], features: FeatureGroups, rows, y, scale: float | None,
                 rng: np.random.Generator, n_restarts: int = 1, warm: dict | None = None) -> Selection:
    """Fit every candidate on the lookups ``(rows, y)`` and keep the best leave-one-out
    log predictive density (ties: the earlier, simpler candidate). ``warm``: spec name ->
    hyperparameters of an earlier fit, used as one more optimiser start and updated."""
    best, scores = None, {}
    warm = {} if warm is None else warm
    for spec in specs:
        if any(g not in features.columns for g in spec.groups):
            continue
        gp = ExactGP(spec, features, scale, n_restarts, rng).fit(rows, y, warm=warm.get(spec.name))
        warm[spec.name] = gp.theta_
        s = gp.loo_log_density()
        scores[spec.name] = s
        if best is None or s > scores[best.spec.name] + 1e-9:
            best = gp
    if best is None:
        raise ValueError("no candidate model can be fitted on these feature groups")
    return Selection(best, scores)

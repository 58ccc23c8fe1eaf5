"""Which architectures to train: ChamNet's imbalanced quasi-Monte-Carlo start followed by
batched Bayesian-optimisation rounds on a finite candidate pool.

Start (``imbalanced_sobol``): a scrambled Sobol sequence in the unit cube, each
coordinate warped ``u -> u ** (1 / skew)``. With ``skew > 1`` the density grows toward 1,
i.e. toward the larger choice of every feature (``SearchSpace.encode`` and the benchmark's
ordinal encoding sort choices ascending, so 1 means more channels / blocks / expansion /
kernel). This is our rule for ChamNet's imbalanced sampling: spend more of the first
trainings on the capable, high-accuracy part of the space, where the architectures that
will finally be chosen live, while the Sobol sequence still covers the rest evenly. Each
warped point is mapped to its nearest (Euclidean, after min-max scaling of the pool)
not-yet-chosen pool point; ties are broken by a seeded random order.

Rounds (``strategy="bo"``): fit the GP predictor, then pick ``batch_size`` pool points
one at a time by the acquisition; after each pick the GP is updated with a *kriging
believer* fantasy (its own predicted mean at the picked point, hyperparameters kept),
which shrinks the uncertainty around it so the next pick goes elsewhere (batch diversity).
Acquisitions: ``ucb`` (mean + kappa * std), ``ei`` (expected improvement over the best
measured value), ``std`` (most uncertain: pure exploration), ``mean`` (pure exploitation),
``ivr`` (integrated variance reduction: the point whose training most shrinks the
posterior variance summed over the pool, which favours representative points over the
pool's corners; good for ranking the whole space) and ``ivr-top`` (the same, summed with
weights = probability of being in the predicted top 20 %: uncertain *and* promising).
For ``ivr*`` the sums run over ``n_reference`` random pool points and the choice over
``n_candidates`` random free points (seeded) to bound the cost on large pools.
Defaults (``DEFAULTS``), measured on NAS-Bench-Macro by ``benchmarks/bench_accuracy.py``
(``selection.acquisition`` in ``benchmarks/results/accuracy_nasbench.json``; seeds
100-104; mean Kendall tau at 20 / 50 samples): ``ivr`` 0.795 / 0.844 was best; ``ucb``
kappa 4: 0.777 / 0.834, kappa 2: 0.741 / 0.814; ``ei`` 0.687 / 0.811; ``std`` 0.734 /
0.764; ``mean`` 0.673 / 0.814 (``ei`` and ``mean`` pick slightly better best
architectures at 50 samples, 93.10 / 93.05 % vs 92.80 %, at a cost in ranking). The
imbalanced start (skew 1.5 vs 1.0) lowered tau for 5 of the 6 acquisition settings
(e.g. ``ivr`` 0.795 -> 0.774 at 20 samples; only ``ivr-top`` gained), so the measured
default is ``skew=1.0`` (plain scrambled
Sobol); raise ``skew`` to bias the start toward larger models as ChamNet does.
Half of the budget goes to the start (``init_fraction=0.5``), the rest in batches of 5.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from dataclasses import dataclass

from ..core.registry import Registry
from .predictor import GPPredictor

# the defaults of sample_and_fit, as measured best on NAS-Bench-Macro (bench_accuracy.py)
DEFAULTS = {"kernel": "matern52-iso", "target": "log-error", "acquisition": "ivr", "kappa": 2.0, "skew": 1.0}


@dataclass(frozen=True)
class Acquisition:
    """How BO scores a free pool point: ``score(mean, std, best, kappa) -> (N,)`` (higher is
    picked first), or ``variance_reduction`` (integrated variance reduction, ``top``:
    weighted toward the predicted top 20 %)."""

    name: str
    score: Callable | None = None
    variance_reduction: bool = False
    top: bool = False


def _ei(mean, std, best, kappa):
    from scipy.stats import norm

    z = (mean - best) / np.maximum(std, 1e-12)
    return (mean - best) * norm.cdf(z) + std * norm.pdf(z)


ACQUISITIONS: Registry[Acquisition] = Registry("acquisition")
for _a in (Acquisition("ucb", lambda m, s, b, k: m + k * s), Acquisition("ei", _ei),
           Acquisition("std", lambda m, s, b, k: s), Acquisition("mean", lambda m, s, b, k: m),
           Acquisition("ivr", variance_reduction=True), Acquisition("ivr-top", variance_reduction=True, top=True)):
    ACQUISITIONS.register(_a.name, _a)

# strategies: functions (pool_X, oracle, n_samples, rng, settings) -> (predictor, chosen);
# registered below sample_and_fit's helpers
SAMPLERS: Registry[Callable] = Registry("sampling strategy")
STRATEGIES = SAMPLERS  # old name: ``"bo" in STRATEGIES`` and ``list(STRATEGIES)`` still work


def _scaled(pool_X: np.ndarray) -> np.ndarray:
    lo, hi = pool_X.min(axis=0), pool_X.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    return (pool_X - lo) / span


def imbalanced_sobol(pool_X, n: int, rng: np.random.Generator, skew: float = 1.5,
                     exclude: Sequence[int] = ()) -> np.ndarray:
    """``n`` distinct pool indices near a skewed scrambled Sobol sequence (see module doc).

    pool_X: ``(N, D)``; returns int array ``(n,)`` in draw order. ``skew`` >= 1 (1: plain
    Sobol). ``exclude`` indices are never returned.
    """
    import warnings

    from scipy.stats import qmc

    pool_X = np.asarray(pool_X, dtype=np.float64)
    N, D = pool_X.shape
    taken = np.zeros(N, dtype=bool)
    taken[list(exclude)] = True
    if n > N - taken.sum():
        raise ValueError(f"cannot draw {n} distinct points from a pool of {N - taken.sum()}")
    if skew < 1:
        raise ValueError(f"skew must be >= 1, got {skew}")
    Z = _scaled(pool_X)
    sobol = qmc.Sobol(d=D, scramble=True, seed=rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # balance warning for n not a power of 2
        U = sobol.random(n) ** (1.0 / skew)
    order = rng.permutation(N)  # seeded tie-break: argmin takes the first of equal distances
    Zo = Z[order]
    out = []
    for u in U:
        d = ((Zo - u) ** 2).sum(axis=1)
        d[taken[order]] = np.inf
        j = int(order[int(np.argmin(d))])
        taken[j] = True
        out.append(j)
    return np.array(out, dtype=np.int64)


def _call_oracle(oracle: Callable, idx: np.ndarray) -> np.ndarray:
    y = np.asarray(oracle(idx), dtype=np.float64).reshape(-1)
    if y.size != idx.size:
        raise ValueError(f"oracle returned {y.size} values for {idx.size} indices")
    return y


def _acquire(name: str, mean: np.ndarray, std: np.ndarray, best: float, kappa: float) -> np.ndarray:
    acq = ACQUISITIONS.get(name)
    if acq.score is None:
        raise ValueError(f"acquisition {name!r} is not a pointwise score (it reduces variance)")
    return acq.score(mean, std, best, kappa)


def _variance_reduction(model: GPPredictor, pool_X: np.ndarray, cand: np.ndarray,
                        ref: np.ndarray, top: bool) -> np.ndarray:
    """Integrated variance reduction: for each candidate c, how much training it would
    shrink the GP's posterior variance summed over the reference points r,
    ``sum_r w_r cov(r, c)^2 / (var(c) + noise)`` (GP's normalised units; shape
    ``(len(cand),)``). ``top``: weight r by its probability of lying above the 80th
    percentile of predicted means (the promising part); else ``w_r = 1``."""
    from scipy.linalg import solve_triangular

    gp = model.gp_
    k = gp.kernel_
    Xt = gp.X_train_
    Xr, Xc = pool_X[ref], pool_X[cand]
    vr = solve_triangular(gp.L_, k(Xt, Xr), lower=True)
    vc = solve_triangular(gp.L_, k(Xt, Xc), lower=True)
    cov = k(Xr, Xc) - vr.T @ vc  # white noise only sits on k(X, X)'s diagonal
    var_c = np.maximum(k.k1.diag(Xc) - (vc ** 2).sum(axis=0), 1e-12)
    w = np.ones(len(ref))
    if top:
        from scipy.stats import norm

        mean, std = gp.predict(Xr, return_std=True)  # monotone in the accuracy
        var_r = np.maximum(std ** 2 - float(k.k2.noise_level) * float(np.atleast_1d(gp._y_train_std)[0]) ** 2, 1e-18)
        w = norm.sf((np.quantile(mean, 0.8) - mean) / np.sqrt(var_r))
    return (w[:, None] * cov ** 2).sum(axis=0) / (var_c + float(k.k2.noise_level))


def sample_and_fit(pool_X, oracle: Callable, n_samples: int, strategy: str = "bo",
                   seed: int = 0, *, acquisition: str = "ivr", kappa: float = 2.0,
                   skew: float = 1.0, init_fraction: float = 0.5, batch_size: int = 5,
                   kernel: str = "matern52-iso", n_restarts_optimizer: int = 3,
                   log_error_scale: float | None = None, n_candidates: int = 2000,
                   n_reference: int = 1000, progress: bool = False, known=None):
    """Choose ``n_samples`` pool points to train, train them via ``oracle``, fit a GP.

    pool_X: ``(N, D)`` feature vectors of the candidate architectures. ``oracle(indices)``
    gets an int array of pool indices and returns their accuracies (any unit; NaN marks a
    failed training: that point is not used for fitting and not asked again).
    ``strategy``: ``"bo"`` (imbalanced Sobol start of ``ceil(init_fraction * n)`` points,
    then batches of ``batch_size`` by ``acquisition``) or ``"random"`` (uniform without
    replacement). ``kernel``, ``n_restarts_optimizer`` and ``log_error_scale`` (1 for
    fractions, 100 for percentages, None: model raw accuracy; the benchmark measured the
    log-error target better, pass it when you know the unit) configure the
    :class:`GPPredictor`. The same ``seed`` gives the same choices when the oracle is deterministic.

    ``known``: ``(indices (k,), values (k,))``, pool points whose accuracy is already known
    (trainings done before, such as a friendliness profile's design networks; same unit as
    the oracle, NaN: failed). They are in every fit and never asked again; ``n_samples``
    counts only the new trainings. Their share of the start: with ``"bo"`` the Sobol start
    is the ``init_fraction`` of all ``k + n_samples`` points less the ``k`` known ones (none
    when ``k`` covers it), since the known points already cover the space; ``"random"``
    draws its ``n_samples`` among the rest.

    Returns ``(predictor, chosen)``: the fitted :class:`GPPredictor` and the int array
    ``(k + n_samples,)`` of pool indices the predictor was fitted on: the known ones first,
    then the new ones in the order they were asked.
    """
    pool_X = np.asarray(pool_X, dtype=np.float64)
    if pool_X.ndim != 2:
        raise ValueError(f"pool_X must be (N, D), got shape {pool_X.shape}")
    N = len(pool_X)
    known_idx, known_y = known_points(known, N)
    low = 1 if len(known_idx) else 2  # a fit needs 2 points in all
    if not low <= n_samples <= N - len(known_idx):
        raise ValueError(f"n_samples must be in [{low}, {N - len(known_idx)}] "
                         f"(the pool size less the {len(known_idx)} known points), got {n_samples}")
    sampler = SAMPLERS.get(strategy)  # unknown names list the valid ones
    ACQUISITIONS.get(acquisition)
    rng = np.random.default_rng(seed)
    gp_seed = int(rng.integers(2**31 - 1))

    def fit(chosen, y, theta=None):
        ok = np.isfinite(y)
        if ok.sum() < 2:
            raise RuntimeError("fewer than 2 successful trainings; cannot fit a predictor")
        return GPPredictor(kernel, n_restarts_optimizer, gp_seed, log_error_scale).fit(pool_X[chosen[ok]], y[ok], theta=theta)

    settings = dict(acquisition=acquisition, kappa=kappa, skew=skew, init_fraction=init_fraction,
                    batch_size=batch_size, kernel=kernel, gp_seed=gp_seed, log_error_scale=log_error_scale,
                    n_candidates=n_candidates, n_reference=n_reference, progress=progress, fit=fit,
                    known_idx=known_idx, known_y=known_y)
    return sampler(pool_X, oracle, n_samples, rng, settings)


def known_points(known, N: int) -> tuple[np.ndarray, np.ndarray]:
    """``known`` checked: distinct pool indices in ``[0, N)`` and as many values."""
    if known is None:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    idx, y = known
    idx = np.asarray(idx).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if idx.size and not np.issubdtype(idx.dtype, np.integer):
        raise TypeError(f"known indices must be integers, got dtype {idx.dtype}")
    idx = idx.astype(np.int64)
    if idx.size != y.size:
        raise ValueError(f"known has {idx.size} indices but {y.size} values")
    if idx.size and (idx.min() < 0 or idx.max() >= N):
        raise ValueError(f"known indices must lie in the pool [0, {N}), got {idx.min()}..{idx.max()}")
    if len(np.unique(idx)) != idx.size:
        raise ValueError("known indices repeat a pool point")
    return idx, y


@SAMPLERS.register("random")
def _random_sampler(pool_X, oracle, n_samples, rng, st):
    """Uniform without replacement among the points not known, then one fit."""
    free = np.setdiff1d(np.arange(len(pool_X)), st["known_idx"])
    new = rng.choice(free, size=n_samples, replace=False).astype(np.int64)
    chosen = np.concatenate([st["known_idx"], new])
    y = np.concatenate([st["known_y"], _call_oracle(oracle, new)])
    return st["fit"](chosen, y), chosen


@SAMPLERS.register("bo")
def _bo_sampler(pool_X, oracle, n_samples, rng, st):
    """Imbalanced Sobol start, then batches chosen by the acquisition (module docstring)."""
    N = len(pool_X)
    fit, kernel, gp_seed, log_error_scale = st["fit"], st["kernel"], st["gp_seed"], st["log_error_scale"]
    acq = ACQUISITIONS.get(st["acquisition"])
    n_candidates, n_reference, batch_size = st["n_candidates"], st["n_reference"], st["batch_size"]
    known_idx, known_y = st["known_idx"], st["known_y"]
    k = len(known_idx)
    total = k + n_samples
    n_init = min(n_samples, max(2 - min(k, 2), math.ceil(st["init_fraction"] * total) - k))
    start = (imbalanced_sobol(pool_X, n_init, rng, skew=st["skew"], exclude=known_idx) if n_init
             else np.zeros(0, dtype=np.int64))
    chosen = np.concatenate([known_idx, start])
    y = np.concatenate([known_y, _call_oracle(oracle, start) if n_init else np.zeros(0)])
    bar = None
    if st["progress"]:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_samples, initial=n_init, desc="BO sampling", unit="arch")
    try:
        while len(chosen) < total:
            model = fit(chosen, y)
            theta = model.theta_
            b = min(batch_size, total - len(chosen))
            taken = np.zeros(N, dtype=bool)
            taken[chosen] = True
            ok = np.isfinite(y)
            Xf, yf = list(chosen[ok]), list(y[ok])
            best = float(np.max(yf))
            batch = []
            fantasy = model
            for _ in range(b):
                mean, std = fantasy.predict(pool_X, return_std=True)
                if acq.variance_reduction:
                    free = np.flatnonzero(~taken)
                    cand = free if len(free) <= n_candidates else rng.choice(free, n_candidates, replace=False)
                    ref = np.arange(N) if N <= n_reference else rng.choice(N, n_reference, replace=False)
                    red = _variance_reduction(fantasy, pool_X, cand, ref, acq.top)
                    j = int(cand[int(np.argmax(red))])
                else:
                    score = acq.score(mean, std, best, st["kappa"])
                    score[taken] = -np.inf
                    j = int(np.argmax(score))
                batch.append(j)
                taken[j] = True
                Xf.append(j)
                yf.append(float(mean[j]))  # kriging believer
                if len(batch) < b:
                    fantasy = GPPredictor(kernel, 0, gp_seed, log_error_scale).fit(pool_X[Xf], np.array(yf), theta=theta)
            batch = np.array(batch, dtype=np.int64)
            y = np.concatenate([y, _call_oracle(oracle, batch)])
            chosen = np.concatenate([chosen, batch])
            if bar is not None:
                bar.update(len(batch))
    finally:
        if bar is not None:
            bar.close()
    return fit(chosen, y), chosen

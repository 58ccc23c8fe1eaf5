"""The accuracy loop that answers the question asked: which network is most accurate
under each latency budget, with ``n_lookups`` trainings (or table lookups) in all.

``pick_under_budgets(pool_X, oracle, latency_ms, budgets_ms, n_lookups, seed=...)`` is
the one entry point (the main job, ``chamtvm accuracy`` and ``--task command`` call it;
any table or trainer can). Three phases, sizes fixed a priori (not tuned on any
benchmark):

1. **initial** (``ceil(n / 4)`` lookups, at least 3): a scrambled Sobol design mapped to
   the nearest networks (``sampling.imbalanced_sobol``, plain Sobol) -- among the networks
   that meet the *largest* budget only: a network no budget admits can never be a pick,
   so no lookup is spent on it (ChamNet samples where the constraint binds).
2. **exploration** (the rest but the last quarter): one lookup at a time, the network
   with the largest **sum over budgets of the expected improvement of that budget's best
   observed feasible network** (``sum_b [lat <= b] EI(f, best_b)``): a lookup is worth
   what it is expected to add to the picks, and a network counts only for the budgets it
   meets. Before every choice the surrogate is refitted and re-chosen
   (``surrogate.select_model``: candidate GPs with and without the prior features,
   scored by leave-one-out on the lookups so far).
3. **verification** (``floor(n / 4)`` lookups): the top contenders -- the unobserved
   networks with the largest sum over budgets of the probability of beating that budget's
   best observed network (the expected number of picks the lookup would change).

The pick under a budget is the **best observed** network that meets it (its accuracy is a
measurement, not a prediction); only when no looked-up network meets a budget is the
surrogate's most accurate prediction returned, marked ``observed=False``.

Prior knowledge (``prior``, ``(N, P)``): features that cost no training (log parameters,
log MACs, zero-cost proxies, see ``proxies``); the log of ``latency_ms`` is always added.
They enter as one feature group of the surrogate, weighted by its marginal likelihood and
kept only when leave-one-out on the lookups prefers the model that uses them.

The oracle is called only with pool indices the loop chose, and every call is counted;
NaN marks a failed training (counted as a lookup, never asked again, not fitted).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .surrogate import FeatureGroups, candidate_specs, categorical_encoding, from_target, select_model, to_target

INIT_FRACTION = 0.25    # a priori: a quarter of the lookups for the space-filling start
VERIFY_FRACTION = 0.25  # a priori: the last quarter verifies the contenders
MIN_LOOKUPS = 3
PHASES = ("initial", "exploration", "verification")
KNOWN_PHASE = "known"  # points given with their values (``known``), not looked up


@dataclass
class BudgetPick:
    """The pick under one budget. ``index``: pool index (None when no network meets the
    budget); ``accuracy``: observed when ``observed``, else predicted (the oracle's unit);
    ``predicted_accuracy``: the final surrogate's mean there; ``feasible``: networks of the
    pool within the budget; ``feasible_observed``: how many of them were looked up."""

    budget_ms: float
    index: int | None
    accuracy: float | None
    observed: bool
    predicted_accuracy: float | None
    latency_ms: float | None
    feasible: int
    feasible_observed: int

    def to_dict(self) -> dict:
        return {"budget_ms": self.budget_ms, "index": self.index, "accuracy": self.accuracy,
                "observed": self.observed, "predicted_accuracy": self.predicted_accuracy,
                "latency_ms": self.latency_ms, "feasible": self.feasible,
                "feasible_observed": self.feasible_observed}


@dataclass
class BudgetedResult:
    """What :func:`pick_under_budgets` returns: one :class:`BudgetPick` per budget (in the
    order given), every lookup in order (pool index, value, phase) and the surrogate's
    choices."""

    picks: list[BudgetPick]
    lookups: np.ndarray            # (k + n,) pool indices: the k known ones first, then those asked, in order
    values: np.ndarray             # (k + n,) their values (NaN: failed)
    phases: list[str]              # (k + n,) "known" | "initial" | "exploration" | "verification"
    models: list[str]              # surrogate chosen before each exploration/verification lookup
    final_model: str | None
    final_scores: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    settings: dict = field(default_factory=dict)
    surrogate: object | None = None

    @property
    def n_lookups(self) -> int:
        """Lookups the loop asked the oracle for (the known points not counted)."""
        return int(len(self.lookups)) - self.n_known

    @property
    def n_known(self) -> int:
        """Points whose values were given (``known``), never asked."""
        return int(sum(1 for q in self.phases if q == KNOWN_PHASE))

    def phase_counts(self) -> dict[str, int]:
        """Lookups per phase; ``"known"`` too when values were given."""
        out = {p: int(sum(1 for q in self.phases if q == p)) for p in PHASES}
        return {KNOWN_PHASE: self.n_known, **out} if self.n_known else out

    def summary(self) -> dict:
        """JSON-compatible report (the surrogate object itself is left out)."""
        return {"picks": [p.to_dict() for p in self.picks], "lookups": self.n_lookups,
                "lookups_by_phase": self.phase_counts(), "failed": int(np.isnan(self.values).sum()),
                "final_model": self.final_model, "final_loo_log_density": self.final_scores,
                "models_chosen": {m: self.models.count(m) for m in sorted(set(self.models))},
                "seconds": self.seconds, "settings": self.settings}


def _check_inputs(pool_X, oracle, latency_ms, budgets_ms, n_lookups, prior, known):
    """``pick_under_budgets``'s inputs checked and as arrays: ``(pool_X (N, D), latency (N,) ms,
    budgets (B,) ms, prior (N, P) or None, known indices (k,), known values (k,))``; raises
    ``ValueError`` / ``TypeError`` on bad input, and when ``n_lookups`` exceeds the pool networks
    not known that meet the largest budget."""
    pool_X = np.asarray(pool_X, dtype=np.float64)
    if pool_X.ndim != 2 or len(pool_X) == 0 or pool_X.shape[1] == 0:
        raise ValueError(f"pool_X must be a non-empty (N, D) array, got shape {pool_X.shape}")
    if not np.all(np.isfinite(pool_X)):
        raise ValueError("pool_X contains NaN or infinite values")
    if not callable(oracle):
        raise TypeError("oracle must be callable: oracle(indices int array) -> accuracies")
    N = len(pool_X)
    lat = np.asarray(latency_ms, dtype=np.float64).reshape(-1)
    if lat.shape != (N,):
        raise ValueError(f"latency_ms must have one value per pool point ({N}), got {lat.size}")
    if not np.all(np.isfinite(lat)) or np.any(lat <= 0):
        raise ValueError("latency_ms must be finite and positive")
    budgets = np.asarray(budgets_ms, dtype=np.float64).reshape(-1)
    if budgets.size == 0:
        raise ValueError("budgets_ms is empty: give at least one latency budget")
    if not np.all(np.isfinite(budgets)) or np.any(budgets <= 0):
        raise ValueError(f"budgets_ms must be finite and positive, got {budgets.tolist()}")
    if isinstance(n_lookups, bool) or not isinstance(n_lookups, (int, np.integer)):
        raise TypeError(f"n_lookups must be an int, got {type(n_lookups).__name__}")
    if prior is not None:
        prior = np.asarray(prior, dtype=np.float64)
        if prior.ndim == 1:
            prior = prior[:, None]
        if prior.ndim != 2 or len(prior) != N:
            raise ValueError(f"prior must be (N, P) with N = {N} pool points, got shape {prior.shape}")
        if not np.all(np.isfinite(prior)):
            raise ValueError("prior contains NaN or infinite values")
    from .sampling import known_points

    known_idx, known_y = known_points(known, N)
    if not MIN_LOOKUPS <= n_lookups:
        raise ValueError(f"n_lookups must be at least {MIN_LOOKUPS}, got {n_lookups}")
    meets = lat <= budgets.max()
    free = int(meets.sum() - meets[known_idx].sum())  # what the loop can still look up
    if n_lookups > free:
        raise ValueError(f"n_lookups ({n_lookups}) exceeds the {free} pool networks "
                         f"{'not known ' if len(known_idx) else ''}that meet the largest budget "
                         f"({budgets.max():g} ms)")
    return pool_X, lat, budgets, prior, known_idx, known_y


def _accuracy_scale(y: np.ndarray, scale):
    """The accuracy scale for the log-error target: given, or ``"auto"``: 1 when every
    observed value lies in [0, 1], 100 when in [0, 100], else None (raw target only)."""
    if scale != "auto":
        return None if scale is None else float(scale)
    ok = y[np.isfinite(y)]
    if ok.size and ok.min() >= 0 and ok.max() <= 1:
        return 1.0
    if ok.size and ok.min() >= 0 and ok.max() <= 100:
        return 100.0
    return None


def _ei(mean, std, best):
    from scipy.stats import norm

    z = (mean - best) / std
    return (mean - best) * norm.cdf(z) + std * norm.pdf(z)


def _pi(mean, std, best):
    from scipy.stats import norm

    return norm.cdf((mean - best) / std)


def pick_under_budgets(pool_X, oracle: Callable, latency_ms, budgets_ms, n_lookups: int, seed: int = 0, *,
                       prior=None, accuracy_scale="auto", batch_size: int = 1,
                       progress: bool = False, known=None) -> BudgetedResult:
    """Choose ``n_lookups`` pool networks to look up (train) and pick the best under each budget.

    pool_X: ``(N, D)`` encoding of the pool's networks. ``oracle(indices)``: int array of
    pool indices -> their accuracies (higher is better, any unit; NaN: failed). latency_ms:
    ``(N,)`` each network's (predicted) latency; budgets_ms: the budgets (ms). prior:
    optional ``(N, P)`` features that cost no training (module docstring).
    accuracy_scale: 1 (fractions), 100 (percent), None (no log-error target) or
    ``"auto"`` (from the first lookups). batch_size: lookups chosen per round (> 1 for
    parallel trainers: the rest of a batch is chosen against the surrogate's own mean at
    the earlier picks, hyperparameters kept). The same seed gives the same lookups and
    picks when the oracle is deterministic.

    known: optional ``(indices (k,), values (k,))``, pool networks whose accuracy is already
    known (trained before, such as a friendliness profile's design networks; the oracle's
    unit, NaN: failed). They are observations like lookups (fitted, eligible as picks) but
    never asked; ``n_lookups`` counts only new lookups. They take the place of the initial
    phase's points: it draws ``max(0, ceil(n / 4) - k)`` (at least 3 in all).

    Returns a :class:`BudgetedResult`. Raises ValueError / TypeError on bad inputs
    (shapes, non-finite values, no budget, ``n_lookups`` < 3 or more than the networks
    that meet the largest budget).
    """
    pool_X, lat, budgets, prior, known_idx, known_y = _check_inputs(pool_X, oracle, latency_ms, budgets_ms,
                                                                    n_lookups, prior, known)
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    from threadpoolctl import threadpool_limits

    # tiny matrices: BLAS threads only add overhead (and contend with parallel trainings)
    with threadpool_limits(1):
        return _loop(pool_X, oracle, lat, budgets, n_lookups, seed, prior, accuracy_scale, int(batch_size),
                     progress, known_idx, known_y)


def _loop(pool_X, oracle, lat, budgets, n_lookups, seed, prior, accuracy_scale, batch_size, progress,
          known_idx, known_y):
    t0 = time.time()
    rng = np.random.default_rng(seed)
    N = len(pool_X)
    feasible = [lat <= b for b in budgets]
    union = np.flatnonzero(lat <= budgets.max())
    prior_cols = [np.log(lat)[:, None]] + ([prior] if prior is not None else [])
    groups = {"encoding": pool_X}
    onehot = categorical_encoding(pool_X)
    if onehot is not None:
        groups["onehot"] = onehot
    features = FeatureGroups({**groups, "prior": np.hstack(prior_cols)})

    n_known = len(known_idx)
    n_init = min(n_lookups, max(MIN_LOOKUPS - min(n_known, MIN_LOOKUPS),
                                math.ceil(INIT_FRACTION * n_lookups) - n_known))
    n_verify = min(n_lookups - n_init, int(VERIFY_FRACTION * n_lookups))
    n_explore = n_lookups - n_init - n_verify

    from .sampling import imbalanced_sobol

    free0 = union[~np.isin(union, known_idx)]
    first = free0[imbalanced_sobol(pool_X[free0], n_init, rng, skew=1.0)] if n_init else np.zeros(0, np.int64)
    rows: list[int] = [int(i) for i in known_idx]
    values: list[float] = [float(v) for v in known_y]
    phases: list[str] = [KNOWN_PHASE] * n_known
    models: list[str] = []
    bar = None
    if progress:
        from ..core.progress import progress_bar

        bar = progress_bar(n_lookups, "accuracy lookups (budget-aware)", True)

    def ask(batch, phase):
        batch = np.asarray(batch, dtype=np.int64)
        y = np.asarray(oracle(batch), dtype=np.float64).reshape(-1)
        if y.size != batch.size:
            raise ValueError(f"oracle returned {y.size} values for {batch.size} indices")
        rows.extend(int(i) for i in batch)
        values.extend(float(v) for v in y)
        phases.extend([phase] * len(batch))
        if bar is not None:
            bar.update(len(batch))

    if n_init:
        ask(first, "initial")
    state = {"scale": None, "warm": {}}

    def fitted():
        r, v = np.array(rows), np.array(values)
        ok = np.isfinite(v)
        if ok.sum() < 2:
            return None, r[ok], v[ok]
        if state["scale"] is None:
            state["scale"] = _accuracy_scale(v, accuracy_scale) or 0.0
        scale = state["scale"] or None
        specs = candidate_specs(features.names, scale is not None)
        sel = select_model(specs, features, r[ok], v[ok], scale, rng, warm=state["warm"])
        return sel, r[ok], v[ok]

    def incumbents(sel, r_ok, v_ok):
        """Best observed value per budget in the surrogate's target unit (None: nothing
        observed there yet)."""
        t_ok, _ = to_target(v_ok, sel.model.spec.target, sel.model.scale)
        out = []
        for f in feasible:
            m = f[r_ok]
            out.append(float(t_ok[m].max()) if m.any() else None)
        return out, float(t_ok.min())

    def choose(phase):
        sel, r_ok, v_ok = fitted()
        taken = np.zeros(N, dtype=bool)
        taken[rows] = True
        free = union[~taken[union]]
        b = min(int(batch_size), len(free),
                n_known + (n_init + n_explore if phase == "exploration" else n_lookups) - len(rows))
        if sel is None:  # fewer than 2 successful lookups: keep filling space
            return free[imbalanced_sobol(pool_X[free], b, rng, skew=1.0)], None
        models.append(sel.model.spec.name)
        gp = sel.model
        best_t, floor_t = incumbents(sel, r_ok, v_ok)
        batch = []
        fantasy_rows, fantasy_t = list(r_ok), list(to_target(v_ok, gp.spec.target, gp.scale)[0])
        for k in range(b):
            mean, std = gp.predict(free)
            std = np.maximum(std, 1e-9)
            score = np.zeros(len(free))
            for f, inc in zip(feasible, best_t):
                ff = f[free]
                inc = floor_t if inc is None else inc
                part = _ei(mean, std, inc) if phase == "exploration" else _pi(mean, std, inc)
                score += np.where(ff, part, 0.0)
            score[np.isin(free, batch)] = -np.inf
            j = int(free[int(np.argmax(score))])
            batch.append(j)
            if k + 1 < b:  # kriging believer: condition on the surrogate's own mean there
                fantasy_rows.append(j)
                fantasy_t.append(float(gp.predict([j])[0][0]))
                gp = _condition(gp, fantasy_rows, fantasy_t)
        return np.array(batch, dtype=np.int64), sel

    try:
        for phase, until in (("exploration", n_known + n_init + n_explore), ("verification", n_known + n_lookups)):
            while len(rows) < until:
                batch, _ = choose(phase)
                ask(batch, phase)
    finally:
        if bar is not None:
            bar.close()

    sel, r_ok, v_ok = fitted()
    picks = []
    for b, f in zip(budgets, feasible):
        n_feas = int(f.sum())
        obs = r_ok[f[r_ok]]
        if n_feas == 0:
            picks.append(BudgetPick(float(b), None, None, False, None, None, 0, 0))
            continue
        if len(obs):
            vals = v_ok[f[r_ok]]
            j = int(obs[int(np.argmax(vals))])
            acc, observed = float(vals.max()), True
        elif sel is not None:
            cand = np.flatnonzero(f)
            pred = sel.model.predict_accuracy(cand)
            j = int(cand[int(np.argmax(pred))])
            acc, observed = float(pred.max()), False
        else:
            picks.append(BudgetPick(float(b), None, None, False, None, None, n_feas, 0))
            continue
        pred_j = float(sel.model.predict_accuracy([j])[0]) if sel is not None else None
        picks.append(BudgetPick(float(b), j, acc, observed, pred_j, float(lat[j]), n_feas, int(len(obs))))
    settings = {"n_known": n_known, "n_initial": n_init, "n_exploration": n_explore, "n_verification": n_verify,
                "init_fraction": INIT_FRACTION, "verify_fraction": VERIFY_FRACTION, "batch_size": int(batch_size),
                "accuracy_scale": state["scale"] or None, "seed": seed, "pool": N,
                "usable_pool": int(len(union)), "prior_features": 1 + (0 if prior is None else prior.shape[1])}
    return BudgetedResult(picks, np.array(rows, dtype=np.int64), np.array(values), phases, models,
                          None if sel is None else sel.model.spec.name, {} if sel is None else sel.scores,
                          round(time.time() - t0, 3), settings, None if sel is None else sel.model)


def _condition(gp, rows, t):
    """A copy of ``gp`` with the same hyperparameters conditioned on ``(rows, t)`` (t in
    the transformed unit): the kriging-believer fantasy of a batch."""
    from .surrogate import ExactGP

    y = from_target(np.asarray(t), gp.spec.target, gp.scale)
    return ExactGP(gp.spec, gp.features, gp.scale, 0, gp.rng).fit(np.asarray(rows), y, theta=gp.theta_)

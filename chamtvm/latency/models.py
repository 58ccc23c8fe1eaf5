"""Learned latency models on top of the table: unseen kernels and the network residual.

* ``KernelCostModel`` — XGBoost on the table's own rows (kernel features -> log latency):
  prices kernels the table has never seen, so any model lowered for the target gets a
  prediction without new measurements, with the estimated kernels named.
* ``ResidualModel`` — what the table sum misses between kernels (memory planning, VM
  overhead, cache effects), learned from a few end-to-end measurements on network-level
  features. ``mode="ratio"`` learns log(measured / table sum), ``"additive"`` learns
  (measured - table sum) / table sum, ``"scale"`` is one median ratio (calibration only);
  two linear modes say what they model: ``"calls"`` measured = s x table sum + a + b x calls
  (the VM's own cost per kernel call and per run), ``"kinds"`` measured = sum over kernel
  kinds of s_kind x that kind's table time + a + b x calls (non-negative least squares).
* ``LatencyPredictor`` — table sum (+ estimated kernels) corrected by the residual.

Models are saved next to the table in XGBoost's JSON format with a metadata file that
records the versions, a digest of the table they were trained on and a digest of the model
file; both files are written atomically. A model whose table has changed since, or whose
files are unreadable, torn or do not match, is reported stale (``StaleModelError``).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .features import KERNEL_FEATURES, NETWORK_FEATURES, kernel_feature_vector, network_feature_vector
from ..table.store import LatencyTable

RESIDUAL_MODES = ("ratio", "additive", "scale", "calls", "kinds")
LINEAR_MODES = ("calls", "kinds")  # least-squares models without XGBoost (below)
NO_RESIDUAL = "none"
AUTO_RESIDUAL = "auto"  # chosen by cross-validation on the training networks (``fit_residual``)
DEFAULT_RESIDUAL_MODE = AUTO_RESIDUAL
SIMPLEST_FIRST = (NO_RESIDUAL, "scale", "calls", "kinds", "ratio", "additive")


class StaleModelError(RuntimeError):
    """A saved model was trained on a table that has changed since."""


def table_digest(table: LatencyTable) -> str:
    """Digest of every successful row's key and median: changes when any kernel is re-measured or added."""
    h = hashlib.sha1()
    for key, p50 in sorted((r["key"], r["runtime_us_p50"]) for r in table.rows()):
        h.update(f"{key}={p50:.6g};".encode())
    return h.hexdigest()[:16]


def rows_digest(table: LatencyTable, n: int) -> str:
    """Digest of the table's first ``n`` successful rows in its row order (the order keys first
    appeared; a re-measured key keeps its place), key and median: unchanged by rows appended
    after them."""
    import itertools

    h = hashlib.sha1()
    for r in itertools.islice(table.rows(), n):
        h.update(f"{r['key']}={r['runtime_us_p50']:.6g};".encode())
    return h.hexdigest()[:16]


def _versions() -> dict:
    import xgboost

    from .. import __version__
    from ..core.versions import tvm_version

    return {"chamtvm": __version__, "xgboost": xgboost.__version__, "tvm": tvm_version()}


def _xgb(**kw):
    from xgboost import XGBRegressor

    return XGBRegressor(n_jobs=1, tree_method="hist", **kw)


def _save(model, meta: dict, path: Path) -> None:
    """Save an XGBoost model (or none, for a scale-only residual) at ``path`` and ``meta`` at
    ``<path>.meta.json``, each atomically (temporary file + ``os.replace``): a crash leaves
    the old pair or the new model with the old meta, whose digest or unreadable model then
    marks it stale; never half a file. The model is written first, so a new meta never
    describes an old model."""
    from ..core.atomic import atomic_path, atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(meta)
    if model is not None:
        with atomic_path(path, suffix=".json") as tmp:  # XGBoost picks the format by suffix
            model.save_model(str(tmp))
        meta["model_sha1"] = hashlib.sha1(path.read_bytes()).hexdigest()
    atomic_write_text(Path(str(path) + ".meta.json"), json.dumps(meta, indent=1))


def _load_meta(path: Path) -> dict:
    """The metadata of the model saved at ``path``; an unreadable or torn file is a
    ``StaleModelError`` that names it (the model is then refit, never a traceback)."""
    meta_path = Path(str(path) + ".meta.json")
    if not meta_path.exists():
        raise FileNotFoundError(f"no model metadata at {meta_path}")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StaleModelError(f"{meta_path} is unreadable ({type(e).__name__}: {e}); refit it") from None
    need = {"table_digest": str, "params": dict}
    bad = [k for k, t in need.items() if not isinstance(meta, dict) or not isinstance(meta.get(k), t)]
    if bad:
        raise StaleModelError(f"{meta_path} lacks {', '.join(bad)} (damaged or from another version); refit it")
    return meta


def _load_xgb(path: Path, meta: dict):
    """The XGBoost model saved at ``path``, checked against the digest its meta recorded; an
    absent, torn or foreign file is a ``StaleModelError`` naming it."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise StaleModelError(f"{path} is unreadable ({e.strerror or e}); refit it") from None
    want = meta.get("model_sha1")
    if want is not None and hashlib.sha1(data).hexdigest() != want:
        raise StaleModelError(f"{path} does not match its metadata (torn or replaced); refit it")
    model = _xgb()
    try:
        model.load_model(bytearray(data))
    except Exception as e:  # XGBoostError, ValueError: a damaged file
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise StaleModelError(f"{path} is unreadable ({first[:160]}); refit it") from None
    return model


def _saved_meta(model, table: LatencyTable, **fields) -> dict:
    """Metadata saved beside an XGBoost model: ``fields`` plus the table it was fitted on (path
    and digest), versions, the constructor parameters and the time it was written."""
    return {**fields, "table": str(table.path), "table_digest": table_digest(table),
            "table_rows": len(table), "table_rows_digest": rows_digest(table, len(table)), "versions": _versions(),
            "params": {"n_estimators": model.n_estimators, "max_depth": model.max_depth,
                       "learning_rate": model.learning_rate, "random_state": model.random_state},
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _check_digest(path, meta: dict, table: LatencyTable | None) -> int:
    """How many rows were appended to ``table`` since the model was fitted (0: the same
    table); a table whose fitted rows changed (re-measured, or another table) is stale."""
    if table is None or meta["table_digest"] == table_digest(table):
        return 0
    n = meta.get("table_rows")
    if (isinstance(n, int) and not isinstance(n, bool) and 0 < n < len(table)
            and meta.get("table_rows_digest") == rows_digest(table, n)):
        return len(table) - n  # only rows appended since (predict --measure-missing): still valid
    raise StaleModelError(f"{path} was trained on an older state of {table.path}; refit it")


def _params(path, meta: dict, allowed: tuple[str, ...]) -> dict:
    params = meta["params"]
    if set(params) - set(allowed):
        raise StaleModelError(f"{path}.meta.json has unknown params {sorted(set(params) - set(allowed))}; refit it")
    return params


# --------------------------------------------------------------- kernel model
MIN_ROWS_PER_KIND_INTERVAL = 20
"""A kernel kind gets its own error interval from this many cross-validated rows on."""


def _conformal_quantiles(resid: np.ndarray, coverage: float = 0.8) -> list[float]:
    """[low, median, high] of cross-validated log errors for a ``coverage`` interval.

    Split-conformal ranks: with n errors, high is the ceil((n+1)(1+c)/2)-th smallest and low
    the floor((n+1)(1-c)/2)-th (the extremes when n is too small for that rank), so the
    interval covers a new kernel's error with probability >= ``coverage`` whenever errors are
    exchangeable; plain percentiles of n errors cover less than that for small n.
    """
    v = np.sort(np.asarray(resid, dtype=float))
    n = len(v)
    tail = (1.0 - coverage) / 2.0
    hi_rank = int(np.ceil((n + 1) * (1.0 - tail)))
    lo_rank = int(np.floor((n + 1) * tail))
    hi = v[min(hi_rank, n) - 1]
    lo = v[max(lo_rank, 1) - 1]
    return [float(lo), float(np.median(v)), float(hi)]


class KernelCostModel:
    """Latency of one kernel call (microseconds) from its features."""

    def __init__(self, n_estimators: int = 600, max_depth: int = 6, learning_rate: float = 0.05,
                 random_state: int = 0, cv_folds: int = 5):
        self.cv_folds = cv_folds  # folds of the error estimate behind intervals (0: no intervals)
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.random_state = random_state

    @staticmethod
    def features(rows: Sequence[dict]) -> np.ndarray:
        return np.array([kernel_feature_vector(r["name"], r["args"], r.get("flops"), r["bytes"],
                                               r.get("schedule", "default")) for r in rows])

    @staticmethod
    def _offset(X: np.ndarray) -> np.ndarray:
        # log of max(FLOPs, bytes): the model learns time per unit of the dominant work
        return np.maximum(X[:, KERNEL_FEATURES.index("log_flops")], X[:, KERNEL_FEATURES.index("log_bytes")])

    def fit(self, rows: Sequence[dict]) -> "KernelCostModel":
        """Fit on successful table rows (``name``, ``args``, ``flops``, ``bytes``, ``runtime_us_p50``)."""
        # a kernel timed inside a network can come out at 0 us: a call cheaper than the VM's
        # per-call cost subtracted from it (``measure.insitu``); no time per unit of work to learn
        rows = [r for r in rows if r.get("status", "ok") == "ok" and (r.get("runtime_us_p50") or 0) > 0]
        if len(rows) < 5:
            raise ValueError(f"need at least 5 measured kernels to fit, got {len(rows)}")
        X = self.features(rows)
        # learn time per unit of work (max of FLOPs and bytes) rather than raw time: a tree
        # model cannot extrapolate raw times to larger kernels; per unit of work it can
        # (the target was chosen by cross-validation on table rows in an earlier run whose
        # figures were not kept; benchmarks/bench_latency_predictor.py reports the CV APE)
        y = np.log(np.array([r["runtime_us_p50"] for r in rows])) - self._offset(X)
        self.model_ = _xgb(n_estimators=self.n_estimators, max_depth=self.max_depth,
                           learning_rate=self.learning_rate, random_state=self.random_state,
                           subsample=0.9, colsample_bytree=0.9)
        self.model_.fit(X, y)
        self.n_rows_ = len(rows)
        self.error_quantiles_ = self._cv_error_quantiles(rows, X, y, self.cv_folds) if self.cv_folds > 1 else {}
        return self

    def _cv_error_quantiles(self, rows, X, y, folds: int = 5) -> dict:
        """Per kernel kind: low / median / high of log(measured / predicted) over
        ``folds``-fold cross-validation on the fitted rows, the low and high taken at the
        split-conformal ranks of an 80 % interval (:func:`_conformal_quantiles`: wider than
        the 10th/90th percentiles when rows are few, so a new kernel falls inside about 80 %
        of the time); kinds with fewer than ``MIN_ROWS_PER_KIND_INTERVAL`` rows get the
        pooled figures."""
        from .features import kernel_kind

        if len(rows) < 4 * folds:
            return {}
        rng = np.random.default_rng(self.random_state)
        fold = rng.permutation(len(rows)) % folds
        resid = np.zeros(len(rows))
        for f in range(folds):
            m = _xgb(n_estimators=self.n_estimators, max_depth=self.max_depth, learning_rate=self.learning_rate,
                     random_state=self.random_state, subsample=0.9, colsample_bytree=0.9)
            m.fit(X[fold != f], y[fold != f])
            resid[fold == f] = y[fold == f] - m.predict(X[fold == f])
        kinds = np.array([kernel_kind(r["name"], r["args"]) for r in rows])
        out = {"all": _conformal_quantiles(resid)}
        for k in sorted(set(kinds)):
            if (kinds == k).sum() >= MIN_ROWS_PER_KIND_INTERVAL:
                out[k] = _conformal_quantiles(resid[kinds == k])
        return out

    def predict_interval_us(self, kernels: Sequence[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(estimate, low, high) microseconds per call; [low, high] is the 80 % interval of
        the model's cross-validated error for the kernel's kind (equal to the estimate when
        the model was fitted on too few rows to say)."""
        from .features import kernel_kind

        est = self.predict_us(kernels)
        eq = getattr(self, "error_quantiles_", {}) or {}
        lo, hi = est.copy(), est.copy()
        for i, k in enumerate(kernels):
            q = eq.get(kernel_kind(k["name"], k["args"])) or eq.get("all")
            if q:
                lo[i], hi[i] = est[i] * np.exp(min(q[0], 0.0)), est[i] * np.exp(max(q[2], 0.0))
        return est, lo, hi

    def predict_us(self, kernels: Sequence[dict]) -> np.ndarray:
        """Predicted microseconds per call for kernel dicts (same fields as table rows)."""
        if not kernels:
            return np.zeros(0)
        X = self.features(kernels)
        return np.exp(self.model_.predict(X) + self._offset(X))

    def save(self, path: str | Path, table: LatencyTable) -> None:
        _save(self.model_, _saved_meta(self, table, kind="kernel_cost", features=list(KERNEL_FEATURES),
                                       n_rows=self.n_rows_,
                                       error_quantiles=getattr(self, "error_quantiles_", {})), Path(path))

    @classmethod
    def load(cls, path: str | Path, table: LatencyTable | None = None) -> "KernelCostModel":
        path = Path(path)
        meta = _load_meta(path)
        if meta.get("features") != list(KERNEL_FEATURES):
            raise StaleModelError(f"{path} was trained on other kernel features (an older chamtvm); refit it")
        added = _check_digest(path, meta, table)
        m = cls(**_params(path, meta, ("n_estimators", "max_depth", "learning_rate", "random_state")))
        m.rows_added_ = added
        m.model_ = _load_xgb(path, meta)
        m.n_rows_ = meta.get("n_rows")
        m.error_quantiles_ = meta.get("error_quantiles", {})
        return m


# ------------------------------------------------------------- residual model
class ResidualModel:
    """Corrects the table sum of a network from network-level features."""

    def __init__(self, mode: str = "scale", n_estimators: int = 150, max_depth: int = 2,
                 learning_rate: float = 0.1, random_state: int = 0):
        if mode not in RESIDUAL_MODES:
            raise ValueError(f"unknown residual mode {mode!r}; choose one of {RESIDUAL_MODES}")
        self.mode = mode
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.random_state = random_state

    def _target(self, table_sum_us, measured_us):
        if self.mode == "ratio":
            return np.log(measured_us / table_sum_us)
        return (measured_us - table_sum_us) / table_sum_us

    def fit(self, X: np.ndarray, table_sum_us: np.ndarray, measured_us: np.ndarray) -> "ResidualModel":
        """``X``: (n, len(NETWORK_FEATURES)); latencies in microseconds, shape (n,)."""
        X = np.asarray(X, dtype=float)
        table_sum_us = np.asarray(table_sum_us, dtype=float)
        measured_us = np.asarray(measured_us, dtype=float)
        if len(X) < 2:
            raise ValueError(f"need at least 2 measured networks, got {len(X)}")
        self.scale_ = float(np.median(measured_us / table_sum_us))
        self.model_ = None
        self.coef_ = None
        if self.mode in LINEAR_MODES:
            self.coef_ = _nnls(_linear_design(self.mode, X, table_sum_us), measured_us)
        elif self.mode != "scale":
            # learn what remains after the median calibration: robust with few networks
            t = self._target(table_sum_us * self.scale_, measured_us)
            self.model_ = _xgb(n_estimators=self.n_estimators, max_depth=self.max_depth,
                               learning_rate=self.learning_rate, random_state=self.random_state,
                               min_child_weight=2)
            self.model_.fit(X, t)
        self.n_networks_ = len(X)
        return self

    def predict(self, X: np.ndarray, table_sum_us: np.ndarray) -> np.ndarray:
        """Corrected latency in microseconds, shape (n,)."""
        if self.mode in LINEAR_MODES:
            return _linear_design(self.mode, np.asarray(X, dtype=float),
                                  np.asarray(table_sum_us, dtype=float)) @ np.asarray(self.coef_)
        base = np.asarray(table_sum_us, dtype=float) * self.scale_
        if self.model_ is None:
            return base
        r = self.model_.predict(np.asarray(X, dtype=float))
        return base * np.exp(r) if self.mode == "ratio" else base * (1.0 + r)

    def save(self, path: str | Path, table: LatencyTable, network_keys: Sequence[str]) -> None:
        _save(self.model_, _saved_meta(self, table, kind="residual", mode=self.mode, scale=self.scale_,
                                       features=list(NETWORK_FEATURES), n_networks=self.n_networks_,
                                       network_keys=list(network_keys),
                                       coef=None if self.coef_ is None else [float(c) for c in self.coef_]),
              Path(path))

    @classmethod
    def load(cls, path: str | Path, table: LatencyTable | None = None) -> "ResidualModel":
        path = Path(path)
        meta = _load_meta(path)
        added = _check_digest(path, meta, table)
        scale = meta.get("scale")
        if meta.get("mode") not in RESIDUAL_MODES or isinstance(scale, bool) or not isinstance(scale, (int, float)) \
                or not scale > 0:
            raise StaleModelError(f"{path}.meta.json has no valid mode/scale (damaged); refit it")
        m = cls(meta["mode"], **_params(path, meta, ("n_estimators", "max_depth", "learning_rate", "random_state")))
        m.scale_ = float(scale)
        m.rows_added_ = added
        m.n_networks_ = meta.get("n_networks")
        m.model_ = None
        m.coef_ = None
        if meta["mode"] in LINEAR_MODES:
            coef = meta.get("coef")
            if meta.get("features") != list(NETWORK_FEATURES) or not isinstance(coef, list) or \
                    len(coef) != _linear_design(meta["mode"], np.zeros((1, len(NETWORK_FEATURES))), np.ones(1)).shape[1] \
                    or not all(isinstance(c, (int, float)) and not isinstance(c, bool) and np.isfinite(c) for c in coef):
                raise StaleModelError(f"{path}.meta.json has no valid coefficients for mode {meta['mode']!r}; refit it")
            m.coef_ = np.array(coef, dtype=float)
        elif meta["mode"] != "scale":
            m.model_ = _load_xgb(path, meta)
        return m


def _linear_design(mode: str, X: np.ndarray, table_sum_us: np.ndarray) -> np.ndarray:
    """Columns of the linear residual modes, per network: ``calls``: [table sum, 1, calls];
    ``kinds``: [table time of each kernel kind, 1, calls] (microseconds and counts; from the
    network features ``log_table_sum_us``/``share_us_<kind>`` and ``calls``)."""
    calls = X[:, NETWORK_FEATURES.index("calls")]
    ones = np.ones(len(X))
    if mode == "calls":
        return np.column_stack([table_sum_us, ones, calls])
    from .features import KINDS

    shares = np.column_stack([X[:, NETWORK_FEATURES.index(f"share_us_{k}")] for k in KINDS])
    return np.column_stack([shares * table_sum_us[:, None], ones, calls])


def _nnls(A: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Non-negative least squares on relative errors (each row divided by its measured
    latency, so a 1 ms and a 10 ms network weigh alike); a column that never varies
    (a kernel kind absent from every training network) gets the overall scale instead of an
    arbitrary 0, so an unseen kind is not priced at nothing."""
    from scipy.optimize import nnls

    w = 1.0 / np.asarray(y, dtype=float)
    coef, _ = nnls(A * w[:, None], np.asarray(y, dtype=float) * w)
    absent = ~np.any(A != 0, axis=0)
    if absent.any():
        present = ~absent
        present[-2:] = False  # intercept and calls are not scales
        scale = float(np.median(coef[present])) if present.any() else 1.0
        coef[absent] = scale
    return coef


def _mape(pred, meas) -> float:
    return float(np.mean(np.abs(np.asarray(pred) - meas) / meas) * 100)


def cv_residual_mapes(X: np.ndarray, table_sum_us: np.ndarray, measured_us: np.ndarray,
                      folds: int = 5, seed: int = 0) -> dict[str, float]:
    """Cross-validated MAPE (%) of the table sum alone (``"none"``) and of each residual mode,
    over ``folds`` folds of the training networks (leave-one-out when there are fewer
    networks than folds). Only training networks enter; held-out networks never do."""
    X = np.asarray(X, dtype=float)
    sums = np.asarray(table_sum_us, dtype=float)
    meas = np.asarray(measured_us, dtype=float)
    n = len(meas)
    k = min(folds, n)
    fold = np.random.default_rng(seed).permutation(n) % k
    out = {NO_RESIDUAL: _mape(sums, meas)}
    for mode in RESIDUAL_MODES:
        pred = np.empty(n)
        for f in range(k):
            tr, te = fold != f, fold == f
            if tr.sum() < 2:
                pred[te] = sums[te]
                continue
            pred[te] = ResidualModel(mode).fit(X[tr], sums[tr], meas[tr]).predict(X[te], sums[te])
        out[mode] = _mape(pred, meas)
    return out


def fit_residual(X: np.ndarray, table_sum_us: np.ndarray, measured_us: np.ndarray,
                 mode: str = DEFAULT_RESIDUAL_MODE, folds: int = 5) -> tuple["ResidualModel | None", dict]:
    """The residual to use on top of the table sum, fitted on the training networks, and how
    it was chosen. ``mode="auto"`` picks, by ``folds``-fold cross-validated MAPE on these
    networks only, among no residual and each of ``RESIDUAL_MODES``; no residual wins unless a
    mode beats it (so the residual never makes the training networks' CV error worse).
    ``mode="none"`` returns no model; a named mode is fitted as asked. With fewer than 3
    networks "auto" keeps the table sum alone (nothing to cross-validate on)."""
    if mode not in (AUTO_RESIDUAL, NO_RESIDUAL, *RESIDUAL_MODES):
        raise ValueError(f"unknown residual mode {mode!r}; choose one of "
                         f"{(AUTO_RESIDUAL, NO_RESIDUAL, *RESIDUAL_MODES)}")
    n = len(np.asarray(measured_us))
    selection: dict = {"asked": mode, "training_networks": n}
    if mode == AUTO_RESIDUAL:
        if n < 3:
            selection.update(chosen=NO_RESIDUAL, why=f"{n} training networks: too few to cross-validate")
            return None, selection
        cv = cv_residual_mapes(X, table_sum_us, measured_us, folds)
        floor = min(cv.values())
        # the simplest mode within a hair of the best: ties never buy complexity
        best = next(m for m in SIMPLEST_FIRST if cv[m] <= floor + max(0.05, 0.02 * floor))
        selection.update(chosen=best, cv_mape_pct=cv, folds=min(folds, n),
                         why="the simplest mode within 2 % (relative) of the lowest cross-validated MAPE "
                             "on the training networks")
        mode = best
    else:
        selection["chosen"] = mode
    if mode == NO_RESIDUAL or n < 2:
        return None, selection
    return ResidualModel(mode).fit(X, table_sum_us, measured_us), selection


# ------------------------------------------------------------------ predictor
def kernel_dicts(prepared, table: LatencyTable, kernel_model: KernelCostModel | None = None):
    """Per distinct kernel: features' inputs plus ``latency_us`` from the table, or from the
    kernel model (``estimated``: True, with ``latency_us_low``/``latency_us_high``, its 80 %
    interval) when the table lacks it; kernels that neither can price are returned apart."""
    from .features import kernel_kind

    known, unknown = [], []
    for p in prepared:
        k = p.kernel
        d = {"name": k.name, "key": p.key, "args": [a.to_list() for a in k.args], "flops": k.flops,
             "bytes": k.bytes, "count": k.count, "schedule": p.schedule}
        d["kind"] = kernel_kind(d["name"], d["args"])
        row = table.get(p.key)
        if row is not None:
            us = row["runtime_us_p50"]
            d.update(latency_us=us, latency_us_low=us, latency_us_high=us, estimated=False)
            known.append(d)
        else:
            unknown.append(d)
    if unknown and kernel_model is not None:
        for d, us, lo, hi in zip(unknown, *kernel_model.predict_interval_us(unknown)):
            d.update(latency_us=float(us), latency_us_low=float(lo), latency_us_high=float(hi), estimated=True)
        known += unknown
        unknown = []
    return known, unknown


@dataclass
class FullPrediction:
    """A network's predicted latency with where each kernel's figure came from.

    ``latency_ms_low``/``latency_ms_high``: the range when every estimated kernel sits at
    the low (high) end of its 80 % interval at once (errors of one model on one network are
    correlated, so the ends are added, not combined in quadrature); table kernels count at
    their median. ``measured_now``: kernels measured on demand for this prediction."""

    latency_ms: float
    table_sum_ms: float
    residual: str
    kernels: list[dict] = field(default_factory=list)
    estimated: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    latency_ms_low: float | None = None
    latency_ms_high: float | None = None
    measured_now: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        now = set(self.measured_now)

        def source(k):
            return "estimated" if k["estimated"] else ("measured_now" if k["key"] in now else "table")

        kernels = sorted(({"name": k["name"], "key": k["key"], "kind": k.get("kind"), "count": k["count"],
                           "latency_us": k["latency_us"], "latency_us_low": k.get("latency_us_low"),
                           "latency_us_high": k.get("latency_us_high"), "estimated": k["estimated"],
                           "source": source(k)} for k in self.kernels),
                         key=lambda k: -k["latency_us"] * k["count"])
        calls = {s: sum(k["count"] for k in kernels if k["source"] == s) for s in ("table", "measured_now", "estimated")}
        est_us = sum(k["latency_us"] * k["count"] for k in kernels if k["estimated"])
        return {"latency_ms": self.latency_ms, "latency_ms_range": [self.latency_ms_low, self.latency_ms_high],
                "range_meaning": "every estimated kernel at the low/high end of its 80 % cross-validated interval",
                "table_sum_ms": self.table_sum_ms, "residual": self.residual,
                "estimated_kernels": self.estimated, "missing_kernels": self.missing,
                "complete": not self.missing, "calls_by_source": calls,
                "estimated_share": est_us / max(self.table_sum_ms * 1e3, 1e-12),
                "measured_now": sorted(now), "kernels": kernels}


class LatencyPredictor:
    """Table sum (unseen kernels priced by the kernel model) corrected by the residual."""

    def __init__(self, table: LatencyTable, kernel_model: KernelCostModel | None = None,
                 residual: ResidualModel | None = None):
        self.table = table
        self.kernel_model = kernel_model
        self.residual = residual

    def predict(self, prepared, measured_now=()) -> FullPrediction:
        """``measured_now``: table keys measured on demand for this call (reported as such)."""
        known, unknown = kernel_dicts(prepared, self.table, self.kernel_model)
        table_sum_us = sum(k["latency_us"] * k["count"] for k in known)
        low_us = sum(k["latency_us_low"] * k["count"] for k in known)
        high_us = sum(k["latency_us_high"] * k["count"] for k in known)
        latency_us = table_sum_us
        if self.residual is not None and known and not unknown:
            X = network_feature_vector(known)[None, :]
            latency_us = float(self.residual.predict(X, np.array([table_sum_us]))[0])
        f = latency_us / table_sum_us if table_sum_us > 0 else 1.0
        return FullPrediction(latency_us / 1e3, table_sum_us / 1e3,
                              self.residual.mode if self.residual else "none", known,
                              [k["name"] for k in known if k["estimated"]],
                              [k["name"] for k in unknown], low_us * f / 1e3, high_us * f / 1e3,
                              [k for k in measured_now])


def network_training_set(network_rows: Iterable[dict], table: LatencyTable, target_fingerprint: str | None = None):
    """(X, table_sum_us, measured_us, keys) from measured network rows (a network table's
    ``rows()``, or rows of networks priced elsewhere) whose kernels are all in ``table``.
    Network rows carry their kernel keys and counts."""
    X, sums, meas, keys = [], [], [], []
    for row in network_rows:
        if target_fingerprint and row.get("target_fingerprint") != target_fingerprint:
            continue
        kernels = []
        for key, count in zip(row["kernel_keys"], row["kernel_counts"]):
            k = table.get(key)
            if k is None:
                break
            kernels.append({"name": k["name"], "args": k["args"], "flops": k.get("flops"),
                            "bytes": k["bytes"], "count": count, "latency_us": k["runtime_us_p50"]})
        else:
            X.append(network_feature_vector(kernels))
            sums.append(sum(k["latency_us"] * k["count"] for k in kernels))
            meas.append(row["runtime_us_p50"])
            keys.append(row["key"])
    return np.array(X), np.array(sums), np.array(meas), keys


def model_paths(table: LatencyTable, space: str | None = None) -> tuple[Path, Path]:
    """Where the kernel model of a table and the residual model of one space's networks on
    it are saved: ``<target>.kernel_model.json`` and ``<target>.<space>.residual.json``
    (a residual is learned on one family of networks and applies to that family; without
    ``space``, ``<target>.residual.json``, which no step writes)."""
    stem = table.path.with_suffix("")
    residual = f"{stem}.{space}.residual.json" if space else f"{stem}.residual.json"
    return Path(f"{stem}.kernel_model.json"), Path(residual)


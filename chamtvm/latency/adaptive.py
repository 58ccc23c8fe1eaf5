"""Adaptive (nn-Meter-style) sampling of the calibration sweep: measure where the kernel model is least sure.

A uniform sweep spends most of its measurements where the model is already right (kernels
of a kind whose time per unit of work hardly varies) and few where it is not. Here the
sweep is grown in rounds instead:

1. a small seeded sweep (``lower.calibration.real_calibration_kernels`` with few probes per
   kind) is measured into the table;
2. the kernel model is refitted on the table rows (plus any fixed ``base_rows``);
3. every kernel of a large candidate pool (the same generator, other seeds:
   ``lower.calibration.real_sweep_pool``) is scored by the spread (standard deviation) of the
   log predictions of ``n_models`` bootstrap kernel models, and the ``per_kind`` most
   uncertain candidates of each kernel kind (``latency.features.fine_kind``) are measured
   into the table through ``table.fill.fill_table``, as ordinary calibration rows (appended
   as they arrive, so nothing measured is lost and a rerun measures nothing twice);
4. repeat for ``rounds`` rounds or until ``budget`` sweep kernels have been measured.

Each round reports the error of the refitted kernel model on held-out kernels it never chose
(median |log(predicted / measured)|, mean log error, share within +-10 %). ``strategy="random"``
picks the same number per kind at random from the same pool: the uniform control.

The selection is deterministic given the table's rows: a rerun on the same table chooses the
same kernels, finds them measured and measures nothing.

Measured on a contended 2-core x86 (``benchmarks/bench_real_models.py --adaptive``), the
uncertain picks were not the ones the model got most wrong, and adaptive and random arms
reached the same accuracy at equal numbers of kernels: the bootstrap spread there follows
timing noise. The README's real-models section has the figures.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np

from .features import fine_kind
from .models import KernelCostModel
from ..table.fill import PreparedKernel
from ..table.store import LatencyTable

STRATEGIES = ("uncertainty", "random")


def kernel_row(p: PreparedKernel) -> dict:
    """The fields the kernel model reads, for a kernel that may not be measured yet."""
    k = p.kernel
    return {"name": k.name, "key": p.key, "args": [a.to_list() for a in k.args], "flops": k.flops,
            "bytes": k.bytes, "schedule": p.schedule}


def bootstrap_uncertainty(train_rows: Sequence[dict], candidates: Sequence[dict], n_models: int = 8,
                          seed: int = 0, n_estimators: int = 200) -> np.ndarray:
    """Per candidate: the standard deviation of log(predicted microseconds) over ``n_models``
    kernel models, each fitted on a bootstrap resample of ``train_rows``; shape (len(candidates),).
    Large where the rows say little about the candidate (few, or disagreeing, neighbours)."""
    rows = [r for r in train_rows if r.get("status", "ok") == "ok"]
    if not candidates:
        return np.zeros(0)
    rng = np.random.default_rng(seed)
    logs = []
    for i in range(n_models):
        pick = rng.integers(0, len(rows), len(rows))
        m = KernelCostModel(n_estimators=n_estimators, random_state=seed + i, cv_folds=0)
        m.fit([rows[j] for j in pick])
        logs.append(np.log(m.predict_us(candidates)))
    return np.std(np.array(logs), axis=0)


def heldout_error(model: KernelCostModel, rows: Sequence[dict]) -> dict:
    """Error of ``model`` on measured ``rows``: n, median |log(pred/meas)|, mean log error
    (its bias; negative: too low) and the share of kernels within +-10 %."""
    rows = [r for r in rows if r.get("status", "ok") == "ok" and (r.get("runtime_us_p50") or 0) > 0]
    if not rows:
        return {"n": 0}
    err = np.log(model.predict_us(rows) / np.array([r["runtime_us_p50"] for r in rows]))
    return {"n": len(rows), "median_abs_log_err": float(np.median(np.abs(err))),
            "mean_log_err": float(np.mean(err)), "within_10pct": float(np.mean(np.abs(np.expm1(err)) <= 0.10))}


@dataclass
class RoundReport:
    """One round: the model fitted after it and what it chose next."""

    round: int
    sweep_measured: int          # sweep kernels in the table (ok rows) that the model was fitted on
    train_rows: int              # rows the model was fitted on (sweep + base rows)
    heldout: dict                # ``heldout_error`` of that model
    chosen: int = 0              # kernels chosen for the next round (0 after the last)
    chosen_by_kind: dict = field(default_factory=dict)
    uncertainty_chosen: float | None = None  # mean score of the chosen candidates
    uncertainty_pool: float | None = None    # mean score of every candidate scored
    seconds: float = 0.0         # fitting and scoring (not measuring)

    def to_dict(self) -> dict:
        return asdict(self)


class SweepSampler:
    """The state of one adaptive (or random) sweep: which kernels it owns, the pool left.

    ``initial``: the prepared kernels of the starting sweep; ``pool``: prepared candidates;
    ``base_rows``: rows every fit also uses (e.g. the grid sweep's), never candidates;
    ``model_factory``: the model ``fit`` returns; ``score_estimators``: trees per bootstrap model.
    The sampler fits on its own kernels' ok rows in ``table`` plus ``base_rows``."""

    def __init__(self, table: LatencyTable, initial: Sequence[PreparedKernel], pool: Sequence[PreparedKernel],
                 base_rows: Sequence[dict] = (), strategy: str = "uncertainty", per_kind: int = 4,
                 n_models: int = 8, seed: int = 0, model_factory: Callable[[], KernelCostModel] | None = None,
                 score_estimators: int = 200):
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; choose one of {STRATEGIES}")
        self.table = table
        self.owned: list[str] = list(dict.fromkeys(p.key for p in initial))
        owned = set(self.owned)
        self.pool = [p for p in dict((p.key, p) for p in pool).values() if p.key not in owned]
        self.base_rows = list(base_rows)
        self.strategy, self.per_kind, self.n_models, self.seed = strategy, per_kind, n_models, seed
        self.score_estimators = score_estimators  # trees of each bootstrap model
        self.model_factory = model_factory or (lambda: KernelCostModel(cv_folds=0))
        self.rounds = 0

    def own_rows(self) -> list[dict]:
        return [r for r in (self.table.get(k) for k in self.owned) if r is not None]

    def fit(self) -> KernelCostModel:
        """The kernel model on the sampler's measured kernels plus the base rows."""
        return self.model_factory().fit(self.own_rows() + self.base_rows)

    def propose(self, limit: int | None = None) -> tuple[list[PreparedKernel], dict]:
        """The next kernels to measure (``per_kind`` per kernel kind, at most ``limit`` in all,
        taken rank by rank across kinds) and the scores behind them; nothing is measured here."""
        t0 = time.time()
        if not self.pool or limit == 0:
            return [], {"seconds": time.time() - t0}
        cand = [kernel_row(p) for p in self.pool]
        kinds = [fine_kind(c["name"], c["args"]) for c in cand]
        if self.strategy == "uncertainty":
            score = bootstrap_uncertainty(self.own_rows() + self.base_rows, cand, self.n_models,
                                          self.seed + 1000 * self.rounds, self.score_estimators)
        else:
            score = np.random.default_rng(self.seed + 1000 * self.rounds).random(len(cand))
        ranked: dict[str, list[int]] = {}
        for i in np.argsort(-score, kind="stable"):
            ranked.setdefault(kinds[i], []).append(int(i))
        picks: list[int] = []
        for rank in range(self.per_kind):  # rank by rank, so a small limit still spreads over kinds
            picks += [idx[rank] for _, idx in sorted(ranked.items()) if rank < len(idx)]
        if limit is not None:
            picks = picks[:limit]
        by_kind: dict[str, int] = {}
        for i in picks:
            by_kind[kinds[i]] = by_kind.get(kinds[i], 0) + 1
        info = {"chosen_by_kind": by_kind, "seconds": time.time() - t0,
                "uncertainty_chosen": float(np.mean(score[picks])) if picks and self.strategy == "uncertainty" else None,
                "uncertainty_pool": float(np.mean(score)) if self.strategy == "uncertainty" else None}
        return [self.pool[i] for i in picks], info

    def accept(self, chosen: Sequence[PreparedKernel]) -> None:
        """The chosen kernels are now the sampler's (measured, or failed: never chosen again)."""
        keys = list(dict.fromkeys(p.key for p in chosen))  # in order: the fits see rows in a fixed order
        owned, taken = set(self.owned), set(keys)
        self.owned += [k for k in keys if k not in owned]
        self.pool = [p for p in self.pool if p.key not in taken]
        self.rounds += 1


def adaptive_sweep(table: LatencyTable, fill: Callable[[Sequence[PreparedKernel]], object],
                   initial: Sequence[PreparedKernel], pool: Sequence[PreparedKernel],
                   heldout: Sequence[PreparedKernel] = (), base_rows: Sequence[dict] = (), rounds: int = 3,
                   per_kind: int = 4, budget: int | None = None, strategy: str = "uncertainty", n_models: int = 8,
                   seed: int = 0, log: Callable[[str], None] | None = None) -> list[RoundReport]:
    """Grow a calibration sweep in ``rounds`` rounds (module docstring); returns one report
    per fitted model (round 0: the initial sweep; round r: after r rounds of choices).

    ``fill(prepared)`` measures prepared kernels into ``table`` (e.g. ``table.fill.fill_table``
    with a runner); it is called once with ``initial`` plus ``heldout`` and once per round.
    ``heldout``: measured kernels the error is reported on, never candidates nor fitted.
    ``budget``: most sweep kernels (initial + chosen) in all; None: ``rounds`` decides."""
    held_keys = {p.key for p in heldout}
    sampler = SweepSampler(table, initial, [p for p in pool if p.key not in held_keys], base_rows, strategy,
                           per_kind, n_models, seed)
    fill(list(initial) + list(heldout))
    held_rows = [r for r in (table.get(p.key) for p in heldout) if r is not None]
    reports = []
    for r in range(rounds + 1):
        t0 = time.time()
        own = sampler.own_rows()
        model = sampler.fit()
        rep = RoundReport(r, len(own), len(own) + len(sampler.base_rows), heldout_error(model, held_rows))
        left = None if budget is None else max(0, budget - len(sampler.owned))
        chosen, info = ([], {}) if r == rounds or left == 0 else sampler.propose(left)
        rep.chosen, rep.chosen_by_kind = len(chosen), info.get("chosen_by_kind", {})
        rep.uncertainty_chosen, rep.uncertainty_pool = info.get("uncertainty_chosen"), info.get("uncertainty_pool")
        rep.seconds = time.time() - t0
        reports.append(rep)
        if log:
            h = rep.heldout
            log(f"adaptive sweep round {r}: {rep.sweep_measured} sweep kernels; held-out "
                + (f"median |log err| {h['median_abs_log_err']:.3f}, bias {h['mean_log_err']:+.3f}, "
                   f"{h['within_10pct'] * 100:.0f} % within +-10 % (n={h['n']})" if h["n"] else "none")
                + (f"; measuring {len(chosen)} more" if chosen else ""))
        if not chosen:
            break
        fill(chosen)
        sampler.accept(chosen)
    return reports


def adaptive_calibration(table: LatencyTable, fill: Callable[[Sequence[PreparedKernel]], object], target,
                         schedules, initial_per_kind: int = 4, pool_per_kind: int = 16, pool_seeds=(1, 2, 3, 4),
                         heldout_per_kind: int = 1, heldout_seed: int = 99, rounds: int = 5, per_kind: int = 6,
                         budget: int | None = None, log: Callable[[str], None] | None = None) -> list[RoundReport]:
    """The real-network sweep grown adaptively on ``target`` (what ``tune --real-calibration
    adaptive`` runs): initial sweep ``real_calibration_kernels(initial_per_kind, seed=0)``,
    candidates from ``pool_seeds``, a held-out uniform sweep (``heldout_seed``) measured too and
    reported on; every row already in the table that is none of these (the space's kernels,
    the grid sweep) is a base row of every fit. With the defaults about as many kernels as the
    uniform sweep (initial ~134 + at most 5 x 6 per kind + held-out ~34)."""
    from ..lower.calibration import real_calibration_kernels, real_sweep_pool
    from ..table.fill import prepare

    t0 = time.time()
    initial_k = real_calibration_kernels(initial_per_kind, seed=0)
    held_k = real_sweep_pool(heldout_per_kind, [heldout_seed], exclude={k.struct_hash for k in initial_k})
    pool_k = real_sweep_pool(pool_per_kind, pool_seeds, exclude={k.struct_hash for k in initial_k + held_k})
    initial, held, pool = (prepare(ks, target, schedules) for ks in (initial_k, held_k, pool_k))
    sweep_keys = {p.key for p in initial + held + pool}
    base = [r for r in table.rows() if r["key"] not in sweep_keys]
    if log:
        log(f"adaptive real-network sweep: {len(initial)} initial kernels, {len(pool)} candidates, {len(held)} "
            f"held out, {len(base)} other table rows ({time.time() - t0:.0f} s to lower)")
    return adaptive_sweep(table, fill, initial, pool, held, base, rounds, per_kind, budget, log=log)

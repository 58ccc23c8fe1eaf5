"""ChamNet's constrained search: a genetic algorithm over a space that maximizes predicted
accuracy subject to predicted latency (and optional FLOPs/parameter/energy limits), plus
the accuracy-latency Pareto front of everything it evaluated.

Candidates are rows of choice indices; both predictors take a batch ``(N, D)`` of them
(see ``batch_predict.BatchLatencyPredictor.predict_ms``), so one generation costs two
vectorized calls. The same seed gives the same result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..space.schema import SearchSpace

BatchFn = Callable[[np.ndarray], np.ndarray]


class SearchError(ValueError):
    """Bad search settings, or no network of the space can meet the constraints."""


@dataclass
class SearchResult:
    """Best feasible candidate, the Pareto front (latency ascending) and search statistics."""

    best_indices: np.ndarray
    best_accuracy: float
    best_latency_ms: float
    pareto_indices: np.ndarray
    pareto_accuracy: np.ndarray
    pareto_latency_ms: np.ndarray
    evaluated: int
    feasible: int
    history: list[dict] = field(default_factory=list)
    runner_up_indices: np.ndarray | None = None  # best feasible distinct candidate after the best
    runner_up_accuracy: float | None = None


def pareto_front(acc: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated points (higher accuracy, lower latency), latency ascending."""
    order = np.lexsort((-acc, lat))
    front, best = [], -np.inf
    for i in order:
        if acc[i] > best:
            front.append(i)
            best = acc[i]
    return np.array(front, dtype=np.int64)


def genetic_search(space: SearchSpace, accuracy: BatchFn, latency_ms: BatchFn, budget_ms: float,
                   rng: np.random.Generator, population: int = 200, generations: int = 60,
                   mutation_prob: float = 0.1, elite_frac: float = 0.25,
                   constraints: dict[str, tuple[BatchFn, float]] | None = None) -> SearchResult:
    """Maximize ``accuracy`` over the space subject to ``latency_ms <= budget_ms``.

    ``constraints`` adds limits: name -> (batch function, upper bound), e.g. FLOPs. Infeasible
    candidates rank below every feasible one (by how far they exceed, so the population is
    pulled toward the feasible region). Evaluates ``population * (generations + 1)``
    candidates. Raises SearchError if the budget is not positive or nothing met it.
    """
    if not np.isfinite(budget_ms) or budget_ms <= 0:
        raise SearchError(f"latency budget must be a positive number of ms, got {budget_ms}")
    if population < 4 or generations < 0:
        raise SearchError("population must be >= 4 and generations >= 0")
    sizes = np.array([len(c) for _, c in space.dimensions()])
    constraints = dict(constraints or {})

    def evaluate(pop):
        acc = np.asarray(accuracy(pop), dtype=float)
        lat = np.asarray(latency_ms(pop), dtype=float)
        excess = np.maximum(lat / budget_ms - 1.0, 0.0)
        for fn, bound in constraints.values():
            excess += np.maximum(np.asarray(fn(pop), dtype=float) / bound - 1.0, 0.0)
        return acc, lat, excess

    pop = (rng.random((population, len(sizes))) * sizes).astype(np.int64)
    all_idx, all_acc, all_lat, all_ok = [], [], [], []
    history = []
    n_elite = max(2, int(round(elite_frac * population)))
    for gen in range(generations + 1):
        acc, lat, excess = evaluate(pop)
        ok = excess == 0
        all_idx.append(pop)
        all_acc.append(acc)
        all_lat.append(lat)
        all_ok.append(ok)
        history.append({"generation": gen, "feasible": int(ok.sum()),
                        "best_accuracy": float(acc[ok].max()) if ok.any() else None})
        if gen == generations:
            break
        # rank: feasible by accuracy, then infeasible by excess
        score = np.where(ok, acc, -1e9 - excess)
        elite = pop[np.argsort(-score, kind="stable")[:n_elite]]
        n_child = population - n_elite
        pa = elite[rng.integers(n_elite, size=n_child)]
        pb = elite[rng.integers(n_elite, size=n_child)]
        children = np.where(rng.random(pa.shape) < 0.5, pa, pb)
        flip = rng.random(children.shape) < mutation_prob
        shift = 1 + (rng.random(children.shape) * np.maximum(sizes - 1, 1)).astype(np.int64)
        children = np.where(flip & (sizes > 1), (children + shift) % sizes, children)
        pop = np.vstack([elite, children])

    idx = np.vstack(all_idx)
    acc = np.concatenate(all_acc)
    lat = np.concatenate(all_lat)
    ok = np.concatenate(all_ok)
    if not ok.any():
        raise SearchError(
            f"no evaluated network meets the constraints (latency <= {budget_ms} ms"
            + "".join(f", {k} <= {b}" for k, (_, b) in constraints.items())
            + f"); the fastest evaluated one takes {lat.min():.3f} ms"
        )
    feas = np.flatnonzero(ok)
    best = feas[np.argmax(acc[feas])]
    # distinct candidates for the front
    _, uniq = np.unique(idx, axis=0, return_index=True)
    front = uniq[pareto_front(acc[uniq], lat[uniq])]
    others = [i for i in uniq if ok[i] and not np.array_equal(idx[i], idx[best])]
    runner = max(others, key=lambda i: acc[i]) if others else None
    return SearchResult(idx[best], float(acc[best]), float(lat[best]), idx[front], acc[front], lat[front],
                        evaluated=len(idx), feasible=int(ok.sum()), history=history,
                        runner_up_indices=None if runner is None else idx[runner],
                        runner_up_accuracy=None if runner is None else float(acc[runner]))

"""``chamtvm search``: the most accurate network of a space under a latency budget on a target.

Latency: the target's table (kernels the table lacks are priced by the saved kernel
model) corrected by the space's saved residual, for every candidate at once
(``batch_predict``). Accuracy: the Gaussian process of ``chamtvm accuracy``, refitted on
every trained architecture of the space in the accuracy journal, on the same features
(encoding plus log parameters and log MACs, computed in closed form for whole batches).
Then a genetic search, export of the best network (``deploy``), a Pareto plot, and a
measurement of the chosen network on the target: predicted vs measured."""

from __future__ import annotations
from dataclasses import dataclass
from pathlib import Path
import numpy as np
from .genetic import SearchError, SearchResult, genetic_search, pareto_front
from ..space.schema import SearchSpace



def fit_accuracy_predictor(space: SearchSpace, journal_path: Path, seed: int = 0, protocol: dict | None = None):
    """``(gp, n_architectures, protocol)`` from the journal (SearchError when unusable)."""
    from ..accuracy.fit import fit_from_journal

    try:
        return fit_from_journal(space, Path(journal_path), protocol, seed=seed)
    except ValueError as e:
        raise SearchError(str(e)) from None


@dataclass
class SearchContext:
    """Everything a search on one target needs, loaded once: predictors and kernel map."""

    space: SearchSpace
    target: object
    table: object
    schedules: object
    latency: object        # LatencyPredictor (table + saved models)
    batch: object          # BatchLatencyPredictor
    gp: object
    n_trained: int
    protocol: dict
    journal: Path

    def accuracy(self, indices: np.ndarray) -> np.ndarray:
        """Predicted accuracy (fraction) of each row of choice indices, shape (N,)."""
        from ..accuracy.encoding import accuracy_features

        return self.gp.predict(accuracy_features(self.space, indices))

    def mflops(self, indices: np.ndarray) -> np.ndarray:
        """Multiply-accumulates of each row in millions, shape (N,)."""
        from ..accuracy.encoding import arch_costs

        return arch_costs(self.space, indices)[:, 1] / 1e6

    def mparams(self, indices: np.ndarray) -> np.ndarray:
        """Parameters of each row in millions, shape (N,)."""
        from ..accuracy.encoding import arch_costs

        return arch_costs(self.space, indices)[:, 0] / 1e6

    def search(self, budget_ms: float, seed: int = 0, population: int = 200, generations: int = 60,
               max_mflops: float | None = None, max_mparams: float | None = None,
               lcb_kappa: float | None = None) -> SearchResult:
        """Genetic search under ``budget_ms`` (and optional MAC / parameter limits, millions);
        with ``lcb_kappa`` it maximizes the GP's lower confidence bound ``mean - kappa *
        std`` instead of its mean (the result's accuracies are then bounds)."""
        constraints = {}
        for name, fn, bound in (("mflops", self.mflops, max_mflops), ("mparams", self.mparams, max_mparams)):
            if bound is not None:
                if not bound > 0:
                    raise SearchError(f"--max-{name} must be a positive number, got {bound}")
                constraints[name] = (fn, bound)
        accuracy = self.accuracy
        if lcb_kappa is not None:
            from .uncertainty import lcb

            if not lcb_kappa >= 0:
                raise SearchError(f"the LCB kappa must be >= 0, got {lcb_kappa}")
            accuracy = lambda idx: lcb(self.gp, self.space, idx, lcb_kappa)  # noqa: E731
        return genetic_search(self.space, accuracy, self.batch.predict_ms, budget_ms,
                              np.random.default_rng(seed), population=population, generations=generations,
                              constraints=constraints)

    def latency_range_ms(self, n: int = 2000, seed: int = 0) -> np.ndarray:
        """Predicted latencies (ms) of ``n`` seeded uniform samples of the space, shape (n,)."""
        return SpaceLatency(self.space, self.latency, self.batch).latency_range_ms(n, seed)

    def result_for(self, pick_row, budget_ms: float, rows: np.ndarray, accuracy: np.ndarray | None = None,
                   latency_ms: np.ndarray | None = None) -> SearchResult:
        """A ``SearchResult`` for a pick chosen elsewhere (the accuracy loop's best observed
        network under ``budget_ms``), over ``rows`` ``(N, D)``: the whole space, enumerated.
        The Pareto front, feasible count and runner-up (the most accurate other network
        within the budget) are exact over ``rows`` by the GP's mean and the batch latency;
        ``accuracy`` / ``latency_ms`` ``(N,)``: those of ``rows`` when already computed."""
        acc = self.accuracy(rows) if accuracy is None else accuracy
        lat = self.batch.predict_ms(rows) if latency_ms is None else latency_ms
        pick_row = np.asarray(pick_row, dtype=np.int64)
        at = np.flatnonzero((rows == pick_row).all(axis=1))
        if not len(at):
            raise SearchError(f"the pick {pick_row.tolist()} is not among the {len(rows)} rows")
        best = int(at[0])
        ok = lat <= budget_ms
        others = np.flatnonzero(ok & (np.arange(len(rows)) != best))
        runner = int(others[np.argmax(acc[others])]) if len(others) else None
        front = pareto_front(acc, lat)
        return SearchResult(rows[best], float(acc[best]), float(lat[best]), rows[front], acc[front], lat[front],
                            evaluated=len(rows), feasible=int(ok.sum()),
                            runner_up_indices=None if runner is None else rows[runner],
                            runner_up_accuracy=None if runner is None else float(acc[runner]))


@dataclass
class SpaceLatency:
    """A space's predicted latency on a target, from the target's table and saved models:
    ``latency`` (LatencyPredictor: one prepared network) and ``batch``
    (BatchLatencyPredictor: rows of choice indices at once, ms)."""

    space: SearchSpace
    latency: object
    batch: object

    def latency_range_ms(self, n: int = 2000, seed: int = 0) -> np.ndarray:
        """Predicted latencies (ms) of ``n`` seeded uniform samples of the space, shape (n,)."""
        rng = np.random.default_rng(seed)
        sizes = np.array([len(c) for _, c in self.space.dimensions()])
        return self.batch.predict_ms((rng.random((n, len(sizes))) * sizes).astype(np.int64))


def load_space_latency(space: SearchSpace, target, table, schedules) -> SpaceLatency:
    """The latency predictors of ``space`` on ``target``: ``table`` (its LatencyTable) with the
    saved kernel model and the space's saved residual, and the batch predictor over the
    space's kernel map with ``schedules`` (its ScheduleSource). SearchError when the table
    is empty."""
    from ..latency.batch import BatchLatencyPredictor
    from ..latency.loading import load_predictor
    from ..lower.coverage import space_kernel_map

    if len(table) == 0:
        raise SearchError(f"the latency table {table.path} is empty: build it first with "
                          f"python -m chamtvm tune --target {target.name} --space {space.name}")
    models = load_predictor(table, space=space.name)
    batch = BatchLatencyPredictor(space_kernel_map(space, lowering=target.lowering()), table, target, schedules, models.kernel_model,
                                  models.residual)
    return SpaceLatency(space, models, batch)


def search_context(space: SearchSpace, target, luts_dir: Path, schedules_dir: Path | None,
                   journal: Path, seed: int = 0, protocol: dict | None = None) -> SearchContext:
    """Load the table and schedules of ``target`` from their folders, then the rest of a search
    (``load_search_context``)."""
    from ..table.store import LatencyTable
    from ..tuning.schedules import ScheduleSource

    table = LatencyTable.for_target(target.name, luts_dir)
    sched = ScheduleSource.for_target(target, schedules_dir)
    return load_search_context(space, target, table, sched, journal, seed, protocol)


def load_search_context(space: SearchSpace, target, table, schedules, journal: Path, seed: int = 0,
                        protocol: dict | None = None, latency: SpaceLatency | None = None) -> SearchContext:
    """A search on ``table`` (the target's LatencyTable) and ``schedules`` (its ScheduleSource):
    the space's latency predictors (``latency``, else ``load_space_latency``) and the GP
    fitted on the journal's trainings under ``protocol`` (default: the newest record's)."""
    if latency is None:
        latency = load_space_latency(space, target, table, schedules)
    gp, n_trained, protocol = fit_accuracy_predictor(space, journal, seed, protocol)
    return SearchContext(space, target, table, schedules, latency.latency, latency.batch, gp, n_trained, protocol,
                         Path(journal))


def result_dict(ctx: SearchContext, result: SearchResult) -> dict:
    """JSON form of a search result: best and Pareto front with predicted figures."""
    best = ctx.space.from_indices(result.best_indices)
    return {"best": {"architecture": best.to_dict(), "predicted_accuracy": result.best_accuracy,
                     "predicted_latency_ms": result.best_latency_ms},
            "pareto": [{"architecture": ctx.space.from_indices(i).to_dict(), "predicted_accuracy": float(a),
                        "predicted_latency_ms": float(lt)}
                       for i, a, lt in zip(result.pareto_indices, result.pareto_accuracy, result.pareto_latency_ms)]}

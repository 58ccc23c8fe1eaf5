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
from .genetic import SearchError, SearchResult, genetic_search
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
        rng = np.random.default_rng(seed)
        sizes = np.array([len(c) for _, c in self.space.dimensions()])
        return self.batch.predict_ms((rng.random((n, len(sizes))) * sizes).astype(np.int64))


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
                        protocol: dict | None = None) -> SearchContext:
    """A search on ``table`` (the target's LatencyTable) and ``schedules`` (its ScheduleSource):
    the saved latency models, the batch predictor over the space's kernel map, and the GP
    fitted on the journal's trainings under ``protocol`` (default: the newest record's)."""
    from ..latency.batch import BatchLatencyPredictor
    from ..latency.loading import load_predictor
    from ..lower.coverage import space_kernel_map

    if len(table) == 0:
        raise SearchError(f"the latency table {table.path} is empty: build it first with "
                          f"python -m chamtvm tune --target {target.name} --space {space.name}")
    gp, n_trained, protocol = fit_accuracy_predictor(space, journal, seed, protocol)
    models = load_predictor(table, space=space.name)
    batch = BatchLatencyPredictor(space_kernel_map(space), table, target, schedules, models.kernel_model,
                                  models.residual)
    return SearchContext(space, target, table, schedules, models, batch, gp, n_trained, protocol, Path(journal))


def result_dict(ctx: SearchContext, result: SearchResult) -> dict:
    """JSON form of a search result: best and Pareto front with predicted figures."""
    best = ctx.space.from_indices(result.best_indices)
    return {"best": {"architecture": best.to_dict(), "predicted_accuracy": result.best_accuracy,
                     "predicted_latency_ms": result.best_latency_ms},
            "pareto": [{"architecture": ctx.space.from_indices(i).to_dict(), "predicted_accuracy": float(a),
                        "predicted_latency_ms": float(lt)}
                       for i, a, lt in zip(result.pareto_indices, result.pareto_accuracy, result.pareto_latency_ms)]}

"""``chamtvm search``: the most accurate network of a space under a latency budget on a target.

Latency: the target's table (kernels the table lacks are priced by the saved kernel
model) corrected by the space's saved residual, for every candidate at once
(``batch_predict``). Accuracy: the Gaussian process of ``chamtvm accuracy``, refitted on
every trained architecture of the space in the accuracy journal, on the same features
(encoding plus log parameters and log MACs, computed in closed form for whole batches).
Then a genetic search, export of the best network (``deploy``), a Pareto plot, and a
measurement of the chosen network on the target: predicted vs measured.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .search import SearchError, SearchResult, genetic_search
from .space import Arch, SearchSpace


def fit_accuracy_predictor(space: SearchSpace, journal_path: Path, seed: int = 0, protocol: dict | None = None):
    """``(gp, n_architectures, protocol)`` from the journal (SearchError when unusable)."""
    from .accuracy.build import fit_from_journal

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
        from .accuracy.features import accuracy_features

        return self.gp.predict(accuracy_features(self.space, indices))

    def mflops(self, indices: np.ndarray) -> np.ndarray:
        """Multiply-accumulates of each row in millions, shape (N,)."""
        from .accuracy.features import arch_costs

        return arch_costs(self.space, indices)[:, 1] / 1e6

    def mparams(self, indices: np.ndarray) -> np.ndarray:
        """Parameters of each row in millions, shape (N,)."""
        from .accuracy.features import arch_costs

        return arch_costs(self.space, indices)[:, 0] / 1e6

    def search(self, budget_ms: float, seed: int = 0, population: int = 200, generations: int = 60,
               max_mflops: float | None = None, max_mparams: float | None = None) -> SearchResult:
        """Genetic search under ``budget_ms`` (and optional MAC / parameter limits, millions)."""
        constraints = {}
        for name, fn, bound in (("mflops", self.mflops, max_mflops), ("mparams", self.mparams, max_mparams)):
            if bound is not None:
                if not bound > 0:
                    raise SearchError(f"--max-{name} must be a positive number, got {bound}")
                constraints[name] = (fn, bound)
        return genetic_search(self.space, self.accuracy, self.batch.predict_ms, budget_ms,
                              np.random.default_rng(seed), population=population, generations=generations,
                              constraints=constraints)

    def latency_range_ms(self, n: int = 2000, seed: int = 0) -> np.ndarray:
        """Predicted latencies (ms) of ``n`` seeded uniform samples of the space, shape (n,)."""
        rng = np.random.default_rng(seed)
        sizes = np.array([len(c) for _, c in self.space.dimensions()])
        return self.batch.predict_ms((rng.random((n, len(sizes))) * sizes).astype(np.int64))


def search_context(space: SearchSpace, target, luts_dir: Path, schedules_dir: Path | None,
                   journal: Path, seed: int = 0, protocol: dict | None = None) -> SearchContext:
    """Load the table, saved latency models, schedules and accuracy journal of a search
    (the journal's trainings under ``protocol``, default: the newest record's)."""
    from .batch_predict import BatchLatencyPredictor
    from .cli import load_predictor
    from .coverage import space_kernel_map
    from .lut import LatencyTable
    from .schedules import ScheduleSource

    table = LatencyTable.for_target(target.name, luts_dir)
    if len(table) == 0:
        raise SearchError(f"the latency table {table.path} is empty: build it first with "
                          f"python -m chamtvm tune --target {target.name} --space {space.name}")
    gp, n_trained, protocol = fit_accuracy_predictor(space, journal, seed, protocol)
    sched = ScheduleSource(target, schedules_dir and Path(schedules_dir) / target.name)
    models = load_predictor(table, space=space.name)
    batch = BatchLatencyPredictor(space_kernel_map(space), table, target, sched, models.kernel_model,
                                  models.residual)
    return SearchContext(space, target, table, sched, models, batch, gp, n_trained, protocol, Path(journal))


def result_dict(ctx: SearchContext, result: SearchResult) -> dict:
    """JSON form of a search result: best and Pareto front with predicted figures."""
    best = ctx.space.from_indices(result.best_indices)
    return {"best": {"architecture": best.to_dict(), "predicted_accuracy": result.best_accuracy,
                     "predicted_latency_ms": result.best_latency_ms},
            "pareto": [{"architecture": ctx.space.from_indices(i).to_dict(), "predicted_accuracy": float(a),
                        "predicted_latency_ms": float(lt)}
                       for i, a, lt in zip(result.pareto_indices, result.pareto_accuracy, result.pareto_latency_ms)]}


def run_search(args, target, runner) -> dict:
    from .accuracy.build import default_journal
    from .deploy import export_network
    from .lut import LUTS_DIR
    from .network import lower_arch, measure_network
    from .table_builder import prepare

    t0 = time.time()
    space = SearchSpace.load(args.space)
    journal = args.journal or default_journal("fashion-mnist", space)
    ctx = search_context(space, target, args.luts_dir or LUTS_DIR, args.schedules_dir, journal, args.seed)
    t_search = time.time()
    result = ctx.search(args.latency_ms, args.seed, args.population, args.generations, args.max_mflops,
                        args.max_mparams)
    search_s = time.time() - t_search
    best = space.from_indices(result.best_indices)
    out = Path(args.out or Path("runs") / f"search-{target.name}-{args.latency_ms:g}ms")
    paths = export_network(space, best, target, out, ctx.schedules, space_ref=str(args.space))

    report = {
        "target": target.name, "space": space.name, "latency_budget_ms": args.latency_ms,
        "device_label": runner.label if runner else None, "emulated": bool(runner and runner.emulated),
        **result_dict(ctx, result),
        "accuracy_predictor": {"trained_architectures": ctx.n_trained, "journal": str(journal), **ctx.protocol},
        "latency_predictor": {"residual": ctx.latency.residual.mode if ctx.latency.residual else "none",
                              "estimated_kernels": ctx.batch.estimated_kernels},
        "search": {"evaluated": result.evaluated, "feasible": result.feasible, "seconds": round(search_s, 2),
                   "population": args.population, "generations": args.generations, "seed": args.seed},
        "artifacts": paths,
    }
    if runner is not None and not args.no_measure:
        net = lower_arch(space, best, "best")
        full = ctx.latency.predict(prepare(net.kernels, target, ctx.schedules))
        res = measure_network(net, target, runner, ctx.schedules)
        report["measured"] = {"latency_ms": res.median_us / 1e3 if res.ok else None, "error": res.error,
                              "predicted_latency_ms": full.latency_ms,
                              "error_pct": 100 * (full.latency_ms * 1e3 / res.median_us - 1) if res.ok else None}
    pareto_plot(report, out / "pareto.png")
    report["artifacts"]["pareto_plot"] = str(out / "pareto.png")
    report["seconds"] = round(time.time() - t0, 1)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    return report


def pareto_plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    lat = [p["predicted_latency_ms"] for p in report["pareto"]]
    acc = [100 * p["predicted_accuracy"] for p in report["pareto"]]
    ax.step(lat, acc, where="post", marker="o", ms=3, label="Pareto front (predicted)")
    ax.axvline(report["latency_budget_ms"], color="grey", ls="--", label="latency budget")
    b = report["best"]
    ax.scatter([b["predicted_latency_ms"]], [100 * b["predicted_accuracy"]], c="red", zorder=3, label="chosen")
    m = report.get("measured") or {}
    if m.get("latency_ms"):
        ax.scatter([m["latency_ms"]], [100 * b["predicted_accuracy"]], marker="x", c="black", zorder=3,
                   label="chosen, measured latency" + (" (EMULATED)" if report["emulated"] else ""))
    ax.set(xlabel=f"latency on {report['target']} (ms)", ylabel="predicted accuracy (%)",
           title=f"space {report['space']}: accuracy vs latency")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def format_search(report: dict) -> str:
    b = report["best"]
    lines = [f"best network for {report['target']} under {report['latency_budget_ms']} ms "
             f"(space {report['space']}, {report['search']['evaluated']} candidates in {report['search']['seconds']} s):",
             f"  predicted accuracy {100 * b['predicted_accuracy']:.2f}%, predicted latency {b['predicted_latency_ms']:.3f} ms",
             f"  {json.dumps(b['architecture'])}"]
    m = report.get("measured")
    if m:
        if m["latency_ms"] is not None:
            emu = " (EMULATED: not a device timing)" if report["emulated"] else ""
            lines.append(f"  measured {m['latency_ms']:.3f} ms on {report['device_label']}{emu}; predicted "
                         f"{m['predicted_latency_ms']:.3f} ms ({m['error_pct']:+.1f}%)")
        else:
            lines.append(f"  measuring failed: {m['error']}")
    lines.append(f"  Pareto front: {len(report['pareto'])} networks; artefacts in {Path(report['artifacts']['arch']).parent}")
    for k, v in report["artifacts"].items():
        lines.append(f"    {k}: {v}")
    return "\n".join(lines)

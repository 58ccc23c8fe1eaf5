"""``chamtvm search``: the most accurate network of a space under a latency budget on a target.

Latency: the target's table (kernels the table lacks are priced by the saved kernel
model) corrected by the saved residual, for every candidate at once
(``batch_predict``). Accuracy: a Gaussian process fitted on the trained architectures of
the space in the accuracy journal (``chamtvm accuracy``), on the architecture encoding.
Then a genetic search, export of the best network (``deploy``), a Pareto plot, and a
measurement of the chosen network on the target: predicted vs measured.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from .search import SearchError, genetic_search
from .space import Arch, SearchSpace


def fit_accuracy_predictor(space: SearchSpace, journal_path: Path, seed: int = 0):
    """GP on ``space.encode`` of the journal's trained architectures of ``space``."""
    from .accuracy.journal import Journal
    from .accuracy.predictor import GPPredictor

    if not journal_path.exists():
        raise SearchError(f"no accuracy journal at {journal_path}: train some architectures of space "
                          f"{space.name!r} first, e.g. python -m chamtvm accuracy --space {space.name} --samples 20")
    X, y = [], []
    for rec in Journal(journal_path).records():
        if rec.get("space", space.name) != space.name:
            continue
        arch = Arch.from_dict(rec["architecture"])
        X.append(space.encode(arch))
        y.append(float(rec["accuracy"]))
    if len(y) < 3:
        raise SearchError(f"{journal_path} holds {len(y)} trained architectures of space {space.name!r}; "
                          f"the accuracy predictor needs at least 3")
    return GPPredictor(random_state=seed).fit(np.array(X), np.array(y)), len(y)


def run_search(args, target, runner) -> dict:
    from .batch_predict import BatchLatencyPredictor
    from .cli import load_predictor
    from .coverage import space_kernel_map
    from .deploy import export_network
    from .lut import LUTS_DIR, LatencyTable
    from .network import lower_arch, measure_network
    from .schedules import ScheduleSource
    from .table_builder import prepare

    t0 = time.time()
    space = SearchSpace.load(args.space)
    table = LatencyTable.for_target(target.name, args.luts_dir or LUTS_DIR)
    if len(table) == 0:
        raise SearchError(f"the latency table {table.path} is empty: build it first with "
                          f"python -m chamtvm tune --target {target.name} --space {args.space}")
    journal = args.journal or Path("runs") / f"accuracy-fashion-mnist-{space.name}.jsonl"
    gp, n_trained = fit_accuracy_predictor(space, Path(journal), args.seed)
    sched = ScheduleSource(target, args.schedules_dir and args.schedules_dir / target.name)
    models = load_predictor(table)
    kmap = space_kernel_map(space)
    batch = BatchLatencyPredictor(kmap, table, target, sched, models.kernel_model, models.residual)
    sizes = np.array([len(c) for _, c in space.dimensions()])
    scale = np.maximum(sizes - 1, 1)

    def accuracy(idx):
        return gp.predict(idx / scale)

    constraints = {}
    if args.max_mflops:
        def mflops(idx):
            from .features import NETWORK_FEATURES

            X, _ = batch.features(idx)
            return np.expm1(X[:, NETWORK_FEATURES.index("log_flops")]) / 1e6

        constraints["mflops"] = (mflops, args.max_mflops)
    t_search = time.time()
    result = genetic_search(space, accuracy, batch.predict_ms, args.latency_ms, np.random.default_rng(args.seed),
                            population=args.population, generations=args.generations, constraints=constraints)
    search_s = time.time() - t_search
    best = space.from_indices(result.best_indices)
    out = Path(args.out or Path("runs") / f"search-{target.name}-{args.latency_ms:g}ms")
    paths = export_network(space, best, target, out, sched, space_ref=str(args.space))

    report = {
        "target": target.name, "space": space.name, "latency_budget_ms": args.latency_ms,
        "device_label": runner.label if runner else None, "emulated": bool(runner and runner.emulated),
        "best": {"architecture": best.to_dict(), "predicted_accuracy": result.best_accuracy,
                 "predicted_latency_ms": result.best_latency_ms},
        "accuracy_predictor": {"trained_architectures": n_trained, "journal": str(journal)},
        "latency_predictor": {"residual": models.residual.mode if models.residual else "none",
                              "estimated_kernels": batch.estimated_kernels},
        "search": {"evaluated": result.evaluated, "feasible": result.feasible, "seconds": round(search_s, 2),
                   "population": args.population, "generations": args.generations, "seed": args.seed},
        "pareto": [{"architecture": space.from_indices(i).to_dict(), "predicted_accuracy": float(a),
                    "predicted_latency_ms": float(lt)}
                   for i, a, lt in zip(result.pareto_indices, result.pareto_accuracy, result.pareto_latency_ms)],
        "artifacts": paths,
    }
    if runner is not None and not args.no_measure:
        net = lower_arch(space, best, "best")
        full = models.predict(prepare(net.kernels, target, sched))
        res = measure_network(net, target, runner, sched)
        report["measured"] = {"latency_ms": res.median_us / 1e3 if res.ok else None, "error": res.error,
                              "predicted_latency_ms": full.latency_ms,
                              "error_pct": 100 * (full.latency_ms * 1e3 / res.median_us - 1) if res.ok else None}
    _pareto_plot(report, out / "pareto.png")
    report["artifacts"]["pareto_plot"] = str(out / "pareto.png")
    report["seconds"] = round(time.time() - t0, 1)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    return report


def _pareto_plot(report: dict, path: Path) -> None:
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

"""``chamtvm search``'s job: search a space under a latency budget on a target, export the best
network, measure it, and write ``report.json`` and ``pareto.png``.

In: a ``SearchConfig``, a ``TargetSpec``, an optional runner. Out: the report dict."""

from __future__ import annotations
import json
import time
from dataclasses import dataclass
from pathlib import Path
from ..space.schema import SearchSpace
from .report import pareto_plot
from .context import result_dict, search_context



@dataclass
class SearchConfig:
    """What ``chamtvm search`` is asked: a space, a budget in ms, optional limits (millions of
    multiply-accumulates / parameters), the GA's size and seed, folders (``None``: under the
    working folder) and whether to measure the chosen network."""

    space: str = "fashion"
    latency_ms: float = 0.0
    journal: Path | None = None
    max_mflops: float | None = None
    max_mparams: float | None = None
    population: int = 200
    generations: int = 60
    seed: int = 0
    out: Path | None = None
    luts_dir: Path | None = None
    schedules_dir: Path | None = None
    measure: bool = True


def _uncertainty(ctx, result) -> dict:
    """The GP's P(best beats the runner-up) and the front's flatness (``search.uncertainty``)."""
    from .uncertainty import beats_runner_up, front_flatness

    return {"p_beats_runner_up": beats_runner_up(ctx.gp, ctx.space, result.best_indices, result.runner_up_indices),
            "front_flatness": front_flatness(ctx.gp, ctx.space, result.pareto_indices)}


def run_search(cfg: SearchConfig, target, runner) -> dict:
    """Search, export, measure (when ``runner`` is given); returns the report dict."""
    from ..accuracy.fit import default_journal
    from ..deploy.export import export_network
    from ..core.atomic import atomic_dir, atomic_write_text, relocate
    from ..core.workdir import runs_dir
    from ..lower.network import lower_arch
    from ..measure.network import measure_network
    from ..table.fill import prepare

    t0 = time.time()
    space = SearchSpace.load(cfg.space)
    from ..accuracy.tasks import default_space

    # the journal of the task whose default space this is (macro: nas-bench-macro lookups)
    task = "nas-bench-macro" if default_space("nas-bench-macro") == space.name else "fashion-mnist"
    journal = cfg.journal or default_journal(task, space)
    ctx = search_context(space, target, cfg.luts_dir, cfg.schedules_dir, journal, cfg.seed)
    t_search = time.time()
    result = ctx.search(cfg.latency_ms, cfg.seed, cfg.population, cfg.generations, cfg.max_mflops,
                        cfg.max_mparams)
    search_s = time.time() - t_search
    best = space.from_indices(result.best_indices)
    out = Path(cfg.out or runs_dir() / f"search-{target.name}-{cfg.latency_ms:g}ms")
    # everything is written into a temporary folder renamed to ``out`` at the end: an
    # interrupted search leaves no half-written output folder
    with atomic_dir(out) as stage:
        paths = export_network(space, best, target, stage, ctx.schedules, space_ref=str(cfg.space))

        report = {
            "target": target.name, "space": space.name, "latency_budget_ms": cfg.latency_ms,
            "device_label": runner.label if runner else None, "emulated": bool(runner and runner.emulated),
            **result_dict(ctx, result),
            "accuracy_predictor": {"trained_architectures": ctx.n_trained, "journal": str(journal), **ctx.protocol},
            "latency_predictor": {"residual": ctx.latency.residual.mode if ctx.latency.residual else "none",
                                  "estimated_kernels": ctx.batch.estimated_kernels},
            "search": {"evaluated": result.evaluated, "feasible": result.feasible, "seconds": round(search_s, 2),
                       "population": cfg.population, "generations": cfg.generations, "seed": cfg.seed},
            "artifacts": relocate(paths, stage, out),
            "uncertainty": _uncertainty(ctx, result),
        }
        if runner is not None and cfg.measure:
            net = lower_arch(space, best, "best")
            full = ctx.latency.predict(prepare(net.kernels, target, ctx.schedules))
            res = measure_network(net, target, runner, ctx.schedules)
            report["measured"] = {"latency_ms": res.median_us / 1e3 if res.ok else None, "error": res.error,
                                  "predicted_latency_ms": full.latency_ms,
                                  "error_pct": 100 * (full.latency_ms * 1e3 / res.median_us - 1) if res.ok else None}
        pareto_plot(report, stage / "pareto.png")
        report["artifacts"]["pareto_plot"] = str(out / "pareto.png")
        report["seconds"] = round(time.time() - t0, 1)
        atomic_write_text(stage / "report.json", json.dumps(report, indent=1))
    return report

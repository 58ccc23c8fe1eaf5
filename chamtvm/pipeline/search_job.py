"""The ``search`` command's job (``SEARCH_STEPS``): its own first step (``search open``: the
space, the accuracy journal, the budget, the staging folder), the main job's steps 13-14
and 16-20 (``job.SHARED_STEPS``: space latency, budgets, search context, search, tune picks,
export, measure picks) and its own report (``search report``: report.json and pareto.png).

In: a ``SearchConfig``, a ``TargetSpec``, an optional runner. Out: the report dict, and the
output folder (``--out``) written whole (staged, then renamed into place).
"""

from __future__ import annotations

import time
from pathlib import Path

from ..measure.base import Runner
from ..targets.spec import TargetSpec
from . import adapt
from .config import SearchConfig
from .instruments import StepTimer
from .job import SHARED_STEPS, STORES, open_stores
from .state import JobState, SearchSettings
from .steps import Step, StepInstrument, run_steps


def search_out_dir(cfg: SearchConfig, target: TargetSpec) -> Path:
    """The search command's output folder (``--out``, default ``runs/search-<target>-<budget>ms``)."""
    from ..core.workdir import runs_dir

    return Path(cfg.out or runs_dir() / f"search-{target.name}-{cfg.latency_ms:g}ms")


def search_journal(cfg: SearchConfig, space) -> Path:
    """The accuracy journal the search fits its GP on: ``--journal``, else the one of the task
    whose default space this is (macro: nas-bench-macro lookups; else fashion-mnist)."""
    from ..accuracy.fit import default_journal
    from ..accuracy.tasks import default_space
    from ..search.genetic import SearchError
    from .config import DEFAULT_SPACE

    if cfg.journal:
        return Path(cfg.journal)
    task = "nas-bench-macro" if default_space("nas-bench-macro") == space.name else "fashion-mnist"
    journal = default_journal(task, space)
    if cfg.space is None and not journal.exists():
        from ..space.schema import SearchSpace

        old = default_journal("fashion-mnist", SearchSpace.load("fashion"))
        if old.exists():  # a user of the old default space
            raise SearchError(f"search's default space is now {DEFAULT_SPACE!r}, as for tune (it was 'fashion'), "
                              f"and there is no accuracy journal at {journal}; to search the fashion space as "
                              f"before (journal {old}), pass --space fashion")
    return journal


def step_search_open(s) -> None:
    """Load the space, the target's table, network journal and schedules; the journal, the budget."""
    from .config import DEFAULT_SPACE

    cfg = s.cfg
    open_stores(s, cfg.space or DEFAULT_SPACE, cfg.luts_dir, cfg.schedules_dir)  # arch.json names the space as given
    s.search_settings = SearchSettings(cfg.seed, cfg.population, cfg.generations, None, cfg.max_mflops,
                                       cfg.max_mparams, measure=cfg.measure, strict=True)
    s.budgets_given = (cfg.latency_ms,)
    stage = s.stage_dir
    s.pick_dir = lambda budget: stage
    s.journal_path = search_journal(cfg, s.space)


def step_search_report(s) -> None:
    """The search command's report (best network, Pareto front, measurement) and pareto.png."""
    from ..core.atomic import relocate
    from ..search.context import result_dict
    from ..search.report import pareto_plot

    cfg, target, runner, ctx = s.cfg, s.target, s.runner, s.search_ctx
    [pick], [export] = s.picks, s.exports
    stage, out = s.stage_dir, search_out_dir(cfg, target)
    result = pick.result
    report = {
        "target": target.name, "space": s.space.name, "latency_budget_ms": cfg.latency_ms,
        "device_label": runner.label if runner else None, "emulated": bool(runner and runner.emulated),
        **result_dict(ctx, result),
        "accuracy_predictor": {"trained_architectures": ctx.n_trained, "journal": str(s.journal_path),
                               **ctx.protocol},
        "latency_predictor": {"residual": ctx.latency.residual.mode if ctx.latency.residual else "none",
                              "estimated_kernels": ctx.batch.estimated_kernels},
        "search": {"evaluated": result.evaluated, "feasible": result.feasible,
                   "seconds": None,  # the search step's time (run_search)
                   "population": cfg.population, "generations": cfg.generations, "seed": cfg.seed},
        "artifacts": relocate(export.paths, stage, out),
        "uncertainty": adapt.uncertainty(ctx, result),
    }
    price = (s.get("pick_prices") or [None])[0]
    if price is not None:
        report["measured"] = {"latency_ms": price.measured_ms, "error": price.measure_error,
                              "predicted_latency_ms": price.predicted_ms, "error_pct": price.error_pct}
    tuning = (s.get("pick_tunings") or [None])[0]
    if tuning is not None:
        report["tuning"] = adapt.tuning_report(pick, tuning, (s.get("pick_prices_before") or [None])[0])
        report["tuning"]["residual_after_tuning"] = s.get("pick_residual")
    pareto_plot(report, stage / "pareto.png")
    report["artifacts"]["pareto_plot"] = str(out / "pareto.png")
    s.report = report


SEARCH_STEPS: list[Step] = [
    Step("search open", step_search_open, reads=("cfg", "target", "stage_dir"),
         writes=(*STORES, "search_settings", "budgets_given", "pick_dir", "journal_path")),
    *SHARED_STEPS,
    Step("search report", step_search_report,
         reads=("cfg", "target", "runner", "space", "search_ctx", "picks", "exports", "journal_path", "stage_dir"),
         optional_reads=("pick_prices", "pick_tunings", "pick_prices_before", "pick_residual"), writes=("report",)),
]


def run_search(cfg: SearchConfig, target: TargetSpec, runner: Runner | None, log=print,
               instruments: list[StepInstrument] | None = None) -> dict:
    """The ``search`` command's job (``SEARCH_STEPS``): search under ``cfg.latency_ms``, export the
    best network, measure it (when ``runner`` is given and ``cfg.measure``), and write
    ``report.json`` and ``pareto.png``. Everything is written into a temporary folder renamed
    to the output folder at the end: an interrupted search leaves no half-written folder."""
    import json

    from ..core.atomic import atomic_dir, atomic_write_text

    t0 = time.time()
    timer = StepTimer()
    instruments = [timer] if instruments is None else [timer, *instruments]
    out = search_out_dir(cfg, target)
    with atomic_dir(out) as stage:
        state = JobState(target, runner, cfg, log, stage_dir=stage)
        report = run_steps(SEARCH_STEPS, state, instruments).report
        report["search"]["seconds"] = timer.seconds.get("search")
        report["seconds"] = round(time.time() - t0, 1)
        atomic_write_text(stage / "report.json", json.dumps(report, indent=1))
    return report

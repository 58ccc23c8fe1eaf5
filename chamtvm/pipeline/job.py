"""The main job (``python -m chamtvm tune``): the latency steps, then the adaptation steps,
as one list of ``Step`` values (``TUNE_STEPS``); returns the report dict.

Steps, each resumable or skipped when up to date or disabled by the config:
  coverage      every fused kernel of the space (probe lowering, ``lower.coverage``)
  table         measure the kernels the table lacks with the current schedules
  calibration   a fixed sweep of operators outside the space (for the unseen-kernel model)
  tuning        MetaSchedule within ``trials``, most expensive kernels first; then the tuned
                kernels are measured too (new keys: ``ms-<trace hash>``)
  models        the unseen-kernel model (table rows) and the residual model (a few measured
                training networks), saved next to the table
  heldout       seeded networks predicted (table sum; table + residual) and measured end to end
  adapt         accuracy predictor, search at budgets, export and measure (``pipeline.adapt``)
  report        the report dict (``state["report"]``) and the plot of the picks
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..core.metrics import fidelity, spread_pct
from ..core.progress import progress_bar
from ..core.versions import tvm_version
from ..measure.base import Runner
from ..measure.runners import runner_tracker
from ..space.schema import SearchSpace
from ..table.fill import fill_table, prepare
from ..table.networks import network_table
from ..table.store import LatencyTable
from ..targets.spec import TargetSpec
from ..tuning.schedules import DEFAULT_TAG, ScheduleSource
from .config import TuneConfig
from .latency import fit_models, measure_archs, tune_schedules
from .steps import JobState, Step, run_steps


def _fill(state: JobState, prepared, desc: str):
    """Measure the prepared kernels the table lacks (progress bar); the fill summary."""
    table, cfg = state["table"], state.cfg
    missing = sum(1 for p in prepared if p.key not in table and table.failed(p.key) is None)
    bar = progress_bar(missing, desc, cfg.progress)
    summary = fill_table(prepared, table, state.runner, state.target, cfg.batch_size, progress=bar.update)
    bar.close()
    return summary


def step_open(state: JobState) -> None:
    """Load the space, the table and the schedules; say what will run."""
    from .adapt import trainer_for

    cfg, target, runner = state.cfg, state.target, state.runner
    space = SearchSpace.load(cfg.space)
    table = LatencyTable.for_target(target.name, cfg.luts_dir)
    state["space"], state["table"] = space, table
    state["schedules"] = ScheduleSource.for_target(target, cfg.schedules_dir)
    state["nets_table"] = network_table(target, cfg.luts_dir)
    state["measured_now"], state["failed_now"] = 0, 0
    state.log(f"target {target.name} ({runner.label}{', EMULATED timings' if runner.emulated else ''}); "
              f"space {space.name} ({space.size():.3g} architectures); table {table.path} ({len(table)} rows)")
    skip = trainer_for(cfg.task, space, cfg.train_command)[1]
    if skip:
        state.log(f"note: the accuracy predictor and the search will be {skip}")


def step_coverage(state: JobState) -> None:
    from ..lower.coverage import probe_group_count, space_kernels

    space = state["space"]
    bar = progress_bar(probe_group_count(space), "lowering probe modules", state.cfg.progress)
    state["kernels"] = space_kernels(space, progress=bar.update)
    bar.close()


def _count(state: JobState, summary) -> None:
    state["measured_now"] += summary.measured
    state["failed_now"] += summary.failed


def step_table(state: JobState) -> None:
    state["prepared"] = prepare(state["kernels"], state.target, state["schedules"])
    _count(state, _fill(state, state["prepared"], f"measuring kernels ({len(state['kernels'])} in space)"))


def step_calibration(state: JobState) -> None:
    from ..lower.calibration import calibration_kernels, real_calibration_kernels

    calib, mode = calibration_kernels(), state.cfg.real_calibration
    if mode and mode != "adaptive":
        calib = calib + real_calibration_kernels()
    summary = _fill(state, prepare(calib, state.target, state["schedules"]), f"measuring calibration kernels ({len(calib)})")
    state["calibration_measured_now"] = summary.measured  # reported apart from the space's kernels
    if mode == "adaptive":  # the real-network sweep grown where the kernel model is least sure
        from ..latency.adaptive import adaptive_calibration

        def fill(prepared):
            state["calibration_measured_now"] += _fill(state, prepared, "adaptive sweep").measured

        state["adaptive_calibration"] = [r.to_dict() for r in adaptive_calibration(
            state["table"], fill, state.target, state["schedules"], log=state.log)]


def step_tuning(state: JobState) -> None:
    state["tuned_now"] = tune_schedules(state["kernels"], state["table"], state.target, state["schedules"],
                                        state.cfg, state.log, runner_tracker(state.runner),
                                        runner=state.runner)
    state["prepared"] = prepare(state["kernels"], state.target, state["schedules"])  # with the new schedules
    _count(state, _fill(state, state["prepared"], "measuring tuned kernels"))


def step_models(state: JobState) -> None:
    state["models"] = fit_models(state["space"], state["table"], state["nets_table"], state.target, state.runner,
                                 state["schedules"], state.cfg)


def step_heldout(state: JobState) -> None:
    cfg, space = state.cfg, state["space"]
    rng = np.random.default_rng(cfg.heldout_seed)
    archs = [space.sample(rng) for _ in range(cfg.heldout)]
    measured = measure_archs(space, archs, state.target, state.runner, state["schedules"], state["table"],
                             state["nets_table"], "held-out networks (predict + measure)", cfg, "heldout")
    results = []
    for m in measured:
        row = m.row
        if row is not None and row.get("status") == "ok":
            full = state["models"].predictor.predict(m.prepared)
            results.append({"name": m.net.name, "key": row["key"], "arch": m.arch.to_dict(),
                            "predicted_ms": full.latency_ms, "table_sum_ms": m.table_sum.latency_ms,
                            "measured_ms": row["runtime_us_p50"] / 1e3,
                            "measured_spread_pct": spread_pct(row),
                            "error_pct": 100 * (full.latency_ms * 1e3 - row["runtime_us_p50"]) / row["runtime_us_p50"],
                            "kernels": len(m.prepared)})
    state["heldout"] = results


def step_adapt(state: JobState) -> None:
    from .adapt import run_adapt

    state["adapt"] = run_adapt(state["space"], state.target, state.runner, state["table"], state["nets_table"],
                               state["schedules"], state.cfg, state.timer, state.log)


def step_report(state: JobState) -> None:
    from .report import picks_plot

    cfg, target, runner, space = state.cfg, state.target, state.runner, state["space"]
    results, models = state.values.get("heldout", []), state["models"]
    prepared = state["prepared"]  # the space's kernels with the schedules they were timed with
    report = {
        "target": target.name,
        "device_label": runner.label,
        "emulated": runner.emulated,
        "runtime_threads": target.runtime_threads,
        "space": space.name,
        "tvm_version": tvm_version(),
        "statistic": cfg.statistic,
        "table": {"path": str(state["table"].path), "rows": len(state["table"]), "space_kernels": len(state["kernels"]),
                  "measured_now": state["measured_now"], "failed": state["failed_now"],
                  "calibration_measured_now": state.values.get("calibration_measured_now", 0),
                  "adaptive_calibration_rounds": state.values.get("adaptive_calibration", [])},
        "tuning": {"trials_budget": cfg.trials, "trials_per_kernel": cfg.trials_per_kernel,
                   "tuned_now": state.values.get("tuned_now", []),
                   "kernels_with_tuned_schedule": sum(1 for p in prepared if p.schedule != DEFAULT_TAG)},
        "predictor": {"residual_mode": models.residual.mode if models.residual else "none",
                      "residual_selection": models.residual_selection,
                      "training_networks": models.n_train, "kernel_model_rows": models.kernel_rows,
                      "models": models.paths},
        "networks": results,
        "fidelity": fidelity([r["predicted_ms"] for r in results], [r["measured_ms"] for r in results])
        if results else None,
        "fidelity_table_sum": fidelity([r["table_sum_ms"] for r in results], [r["measured_ms"] for r in results])
        if results else None,
        "skipped_steps": dict(state.skipped),
    }
    report.update(state.values.get("adapt") or {"accuracy": None, "picks": []})
    if report["picks"]:
        plot = Path(cfg.runs_dir) / f"tune-{target.name}" / f"{space.name}-picks.png"
        picks_plot(report, plot)
        report["picks_plot"] = str(plot)
    state["report"] = report


TUNE_STEPS: list[Step] = [
    Step("open", step_open, timer_name="coverage"),
    Step("coverage", step_coverage),
    Step("table", step_table),
    Step("calibration", step_calibration, enabled=lambda s: None if s.cfg.calibration else "--no-calibration"),
    Step("tuning", step_tuning),
    Step("models", step_models),
    Step("heldout", step_heldout, enabled=lambda s: None if s.cfg.heldout > 0 else "--heldout 0"),
    Step("adapt", step_adapt, timed=False),  # times accuracy, search, export, measure picks
    Step("report", step_report, timed=False),
]


def run_tune(target: TargetSpec, runner: Runner, cfg: TuneConfig, log=print, steps: list[Step] | None = None) -> dict:
    """Run the main job's ``steps`` (default ``TUNE_STEPS``, module docstring); the report dict."""
    t_start = time.time()
    state = run_steps(list(steps or TUNE_STEPS), JobState(target, runner, cfg, log))
    report = state["report"]
    report["seconds"] = {**state.timer.seconds, "total": round(time.time() - t_start, 1)}
    return report

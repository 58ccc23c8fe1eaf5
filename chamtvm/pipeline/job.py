"""The main job: chain the latency steps and the adaptation steps and return the report."""

from __future__ import annotations
import time
from pathlib import Path
import numpy as np
from ..table.store import LatencyTable
from ..measure.base import Runner
from ..core.metrics import fidelity
from ..tuning.schedules import DEFAULT_TAG, ScheduleSource
from ..space.schema import SearchSpace
from ..table.fill import fill_table, prepare
from ..core.versions import tvm_version
from ..targets.spec import TargetSpec
from .steps import StepTimer
from .config import TuneConfig
from .latency import fit_models, measure_archs, tune_schedules
from ..table.networks import network_table
from ..core.progress import progress_bar
from ..measure.runners import runner_tracker
from ..core.metrics import spread_pct



def run_tune(target: TargetSpec, runner: Runner, cfg: TuneConfig, log=print) -> dict:
    """Run the main job (see the module docstring) and return the report dict."""
    from ..lower.coverage import probe_group_count, space_kernels

    t_start = time.time()
    timer = StepTimer()
    space = SearchSpace.load(cfg.space)
    table = LatencyTable(Path(cfg.luts_dir) / f"{target.name}.jsonl").load()
    schedules = ScheduleSource(target, cfg.schedules_dir and Path(cfg.schedules_dir) / target.name)
    log(f"target {target.name} ({runner.label}{', EMULATED timings' if runner.emulated else ''}); "
        f"space {space.name} ({space.size():.3g} architectures); table {table.path} ({len(table)} rows)")
    from .adapt import trainer_for

    skip = trainer_for(cfg.task, space, cfg.train_command)[1]
    if skip:
        log(f"note: the accuracy predictor and the search will be {skip}")

    # 1. coverage
    bar = progress_bar(probe_group_count(space), "lowering probe modules", cfg.progress)
    kernels = timer.run("coverage", space_kernels, space, progress=bar.update)
    bar.close()

    # 2. table with the current schedules
    def fill(prepared, desc):
        missing = sum(1 for p in prepared if p.key not in table and table.failed(p.key) is None)
        bar = progress_bar(missing, desc, cfg.progress)
        s = fill_table(prepared, table, runner, target, cfg.batch_size, progress=bar.update)
        bar.close()
        return s

    prepared = prepare(kernels, target, schedules)
    table_summary = timer.run("table", fill, prepared, f"measuring kernels ({len(kernels)} in space)")

    # 2b. calibration sweep: operator kinds outside the space, for the unseen-kernel model
    if cfg.calibration:
        from ..lower.calibration import calibration_kernels

        calib = timer.run("calibration", calibration_kernels)
        timer.run("calibration", fill, prepare(calib, target, schedules),
                  f"measuring calibration kernels ({len(calib)})")

    # 3. tuning, then measure the tuned kernels
    tuned = timer.run("tuning", tune_schedules, kernels, table, target, schedules, cfg, log,
                      runner_tracker(runner))
    prepared = prepare(kernels, target, schedules)
    tuned_summary = timer.run("table", fill, prepared, "measuring tuned kernels")
    n_tuned = sum(1 for p in prepared if p.schedule != DEFAULT_TAG)

    # 4. learned models: unseen kernels (table rows), residual (a few measured networks)
    nets_table = network_table(target, cfg.luts_dir)
    models = timer.run("models", fit_models, space, table, nets_table, target, runner, schedules, cfg)

    # 5. held-out networks
    rng = np.random.default_rng(cfg.heldout_seed)
    archs = [space.sample(rng) for _ in range(cfg.heldout)]
    results = []
    measured = timer.run("heldout", measure_archs, space, archs, target, runner, schedules, table, nets_table,
                         "held-out networks (predict + measure)", cfg, "heldout")
    for m in measured:
        row = m.row
        if row is not None and row.get("status") == "ok":
            full = models.predictor.predict(m.prepared)
            results.append({"name": m.net.name, "key": row["key"], "arch": m.arch.to_dict(),
                            "predicted_ms": full.latency_ms, "table_sum_ms": m.table_sum.latency_ms,
                            "measured_ms": row["runtime_us_p50"] / 1e3,
                            "measured_spread_pct": spread_pct(row),
                            "error_pct": 100 * (full.latency_ms * 1e3 - row["runtime_us_p50"]) / row["runtime_us_p50"],
                            "kernels": len(m.prepared)})

    report = {
        "target": target.name,
        "device_label": runner.label,
        "emulated": runner.emulated,
        "space": space.name,
        "tvm_version": tvm_version(),
        "statistic": cfg.statistic,
        "table": {"path": str(table.path), "rows": len(table), "space_kernels": len(kernels),
                  "measured_now": table_summary.measured + tuned_summary.measured,
                  "failed": table_summary.failed + tuned_summary.failed},
        "tuning": {"trials_budget": cfg.trials, "trials_per_kernel": cfg.trials_per_kernel,
                   "tuned_now": tuned, "kernels_with_tuned_schedule": n_tuned},
        "predictor": {"residual_mode": cfg.residual_mode if models.residual else "none",
                      "training_networks": models.n_train, "kernel_model_rows": models.kernel_rows,
                      "models": models.paths},
        "networks": results,
        "fidelity": fidelity([r["predicted_ms"] for r in results], [r["measured_ms"] for r in results])
        if results else None,
        "fidelity_table_sum": fidelity([r["table_sum_ms"] for r in results], [r["measured_ms"] for r in results])
        if results else None,
    }
    # 7-10. accuracy predictor, search at budgets, export and measure the picks
    from .report import picks_plot
    from .adapt import run_adapt

    report.update(run_adapt(space, target, runner, table, nets_table, schedules, cfg, timer, log))
    if report["picks"]:
        plot = Path(cfg.runs_dir) / f"tune-{target.name}" / f"{space.name}-picks.png"
        picks_plot(report, plot)
        report["picks_plot"] = str(plot)
    report["seconds"] = {**timer.seconds, "total": round(time.time() - t_start, 1)}
    return report

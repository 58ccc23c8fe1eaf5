"""The main job: build (or resume) a target's latency table, schedules and latency
predictor for a space and check them on held-out networks measured end to end; then
(``adapt``) build the accuracy predictor on the task, search at a few latency budgets
and export and measure the chosen networks.

Steps, each resumable:
  1. coverage   every fused kernel of the space (probe lowering, ``coverage``)
  2. table      measure the kernels the table lacks (default schedules), plus a fixed
                calibration sweep of operators outside the space (``calibration``)
  3. tuning     MetaSchedule within ``trials``, most expensive kernels first; the tuned
                kernels are then measured too (new keys: ``ms-<trace hash>``)
  4. models     the unseen-kernel model (table rows) and the residual model (a few
                measured training networks), saved next to the table
  5. held-out   sample networks (seeded), predict them (table sum, and table + residual),
                measure them end to end (appended to ``luts/<target>.networks.jsonl``)
  7-10.         accuracy predictor, search, export, measure: see ``adapt``
  report        predicted vs measured, fidelity metrics, the chosen networks, time spent;
                printed and JSON
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .lut import LUTS_DIR, LatencyTable, failed_row, ok_row
from .measure.base import Runner
from .metrics import fidelity
from .network import lower_arch, measure_network
from .predict import table_sum
from .schedules import DEFAULT_TAG, ScheduleSource, tune_kernel, tuned_hashes
from .space import SearchSpace
from .table_builder import fill_table, prepare, tvm_version
from .targets import TargetSpec


def progress_bar(total: int, desc: str, enabled: bool = True):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="it", disable=not enabled, dynamic_ncols=True, leave=True)


@dataclass
class TuneConfig:
    space: str = "fashion"
    trials: int = 64
    trials_per_kernel: int = 16
    heldout: int = 20
    heldout_seed: int = 2026
    train_networks: int = 10
    train_seed: int = 101
    residual_mode: str = "scale"
    calibration: bool = True
    statistic: str = "runtime_us_p50"
    batch_size: int = 48
    luts_dir: Path = LUTS_DIR
    schedules_dir: Path | None = None
    progress: bool = True
    # steps 7-10 (adapt.py)
    task: str = "fashion-mnist"       # built-in proxy task, "digits", "command" or "none"
    train_command: str | None = None  # with task "command"
    accuracy_samples: int = 20
    accuracy_pool: int = 200
    accuracy_seed: int = 0
    budgets_ms: tuple | None = None   # None: quantiles of the space's predicted latencies
    search_seed: int = 0
    population: int = 200
    generations: int = 60
    runs_dir: Path = Path("runs")


@dataclass
class StepTimer:
    seconds: dict = field(default_factory=dict)

    def run(self, name, fn, *a, **kw):
        t0 = time.time()
        try:
            return fn(*a, **kw)
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.time() - t0, 2)


def network_table(target: TargetSpec, luts_dir: Path) -> LatencyTable:
    """End-to-end network measurements of a target (same append-only format as kernels)."""
    return LatencyTable(Path(luts_dir) / f"{target.name}.networks.jsonl").load()


def network_key(target: TargetSpec, arch_json: str, kernel_keys: list[str]) -> str:
    """Identity of a network build: the architecture and the exact kernels it compiles to."""
    blob = json.dumps({"arch": arch_json, "kernels": sorted(kernel_keys)}, sort_keys=True)
    return f"{target.fingerprint}/net/{hashlib.sha1(blob.encode()).hexdigest()[:16]}"


def ensure_measured(net, prepared, target: TargetSpec, runner: Runner, schedules: ScheduleSource,
                    nets_table: LatencyTable, identity: dict, table_sum_us: float) -> dict | None:
    """The end-to-end measurement row of ``net`` (measured now unless the journal has it).

    ``identity`` (e.g. the architecture and space, or the model name) is stored in the row
    and, with the exact kernel keys, forms the row key. Returns None if measuring failed
    (the failure is journaled too).
    """
    # an architecture is identified by its JSON alone (any space gives the same kernels)
    ident = identity["arch"] if "arch" in identity else identity
    key = network_key(target, json.dumps(ident, sort_keys=True), [p.key for p in prepared])
    row = nets_table.get(key)
    if row is not None:
        return row
    res = measure_network(net, target, runner, schedules)
    base = {**identity, "target": target.name, "target_fingerprint": target.fingerprint,
            "tvm_version": tvm_version(), "device_label": runner.label, "emulated": runner.emulated,
            "kernel_keys": [p.key for p in prepared], "kernel_counts": [p.kernel.count for p in prepared],
            "table_sum_us": table_sum_us}
    if res.ok:
        nets_table.append([ok_row(key, base, res.samples_us, res.number)])
    else:
        nets_table.append([failed_row(key, base, res.error)])
    return nets_table.get(key)


def spread_pct(row: dict) -> float:
    """Repeat spread of a measured row: (max - min) / median, in percent."""
    return 100 * (row["runtime_us_max"] - row["runtime_us_min"]) / row["runtime_us_p50"]


@dataclass
class MeasuredArch:
    """One architecture lowered, predicted from the table and measured end to end."""

    arch: object
    net: object
    prepared: list
    table_sum: object  # predict.Prediction
    row: dict | None   # the network row (status ok or failed), None if never measured


def measure_archs(space, archs, target: TargetSpec, runner: Runner, schedules: ScheduleSource,
                  table: LatencyTable, nets_table: LatencyTable, desc: str, cfg: "TuneConfig",
                  prefix: str = "net") -> list[MeasuredArch]:
    """Lower each architecture, measure any kernel the table lacks (never guess), and
    measure the network end to end unless the journal has it."""
    out = []
    bar = progress_bar(len(archs), desc, cfg.progress)
    for i, arch in enumerate(archs):
        net = lower_arch(space, arch, f"{prefix}{i}")
        prep = prepare(net.kernels, target, schedules)
        pred = table_sum(prep, table, cfg.statistic)
        if pred.missing:
            fill_table(prep, table, runner, target, cfg.batch_size)
            pred = table_sum(prep, table, cfg.statistic)
        row = ensure_measured(net, prep, target, runner, schedules, nets_table,
                              {"arch": arch.to_dict(), "space": space.name}, pred.latency_ms * 1e3)
        out.append(MeasuredArch(arch, net, prep, pred, row))
        bar.update(1)
    bar.close()
    return out


@dataclass
class FittedModels:
    predictor: object
    residual: object
    n_train: int
    kernel_rows: int
    paths: dict


def fit_models(space, table: LatencyTable, nets_table: LatencyTable, target: TargetSpec, runner: Runner,
               schedules: ScheduleSource, cfg: TuneConfig) -> FittedModels:
    """Fit (and save next to the table) the unseen-kernel model on the table's rows and the
    residual model on ``cfg.train_networks`` measured networks (measured now if missing)."""
    from .latency_model import KernelCostModel, LatencyPredictor, ResidualModel, model_paths, network_training_set

    kernel_path, residual_path = model_paths(table, space.name)
    rows = list(table.rows())
    kernel_model = KernelCostModel().fit(rows) if len(rows) >= 5 else None
    if kernel_model is not None:
        kernel_model.save(kernel_path, table)
    residual, n_train = None, 0
    if cfg.train_networks >= 2:
        rng = np.random.default_rng(cfg.train_seed)
        archs = [space.sample(rng) for _ in range(cfg.train_networks)]
        measured = measure_archs(space, archs, target, runner, schedules, table, nets_table,
                                 "training networks for the residual (measure)", cfg, "train")
        keys = [m.row["key"] for m in measured if m.row is not None and m.row.get("status") == "ok"]
        X, sums, meas, all_keys = network_training_set(nets_table, table, target.fingerprint)
        pick = [i for i, k in enumerate(all_keys) if k in set(keys)]
        if len(pick) >= 2:
            residual = ResidualModel(cfg.residual_mode).fit(X[pick], sums[pick], meas[pick])
            residual.save(residual_path, table, [all_keys[i] for i in pick])
            n_train = len(pick)
    return FittedModels(LatencyPredictor(table, kernel_model, residual), residual, n_train, len(rows),
                        {"kernel_model": str(kernel_path), "residual": str(residual_path) if residual else None})


def runner_tracker(runner: Runner) -> tuple[str, int, str] | None:
    """``(host, port, key)`` of an RPC runner's tracker, None for a local runner."""
    if all(hasattr(runner, a) for a in ("host", "port", "key")):
        return runner.host, int(runner.port), runner.key
    return None


def tune_schedules(kernels, table: LatencyTable, target: TargetSpec, schedules: ScheduleSource,
                   cfg: TuneConfig, log=print, tracker: tuple[str, int, str] | None = None) -> list[dict]:
    """Spend ``cfg.trials`` MetaSchedule trials on the most expensive untuned kernels
    (timed on the devices under ``tracker`` for a remote target)."""
    if cfg.trials <= 0 or (not target.local and tracker is None):
        return []
    done = tuned_hashes(target, schedules.work_dir)
    ranked = []
    for p in prepare(kernels, target, ScheduleSource(target, use_database=False)):
        row = table.get(p.key)
        if row is not None and p.kernel.struct_hash not in done:
            ranked.append((row["runtime_us_p50"] * p.kernel.count, p))
    ranked.sort(key=lambda x: -x[0])
    n = min(len(ranked), cfg.trials // max(cfg.trials_per_kernel, 1))
    lines = []
    bar = progress_bar(n, f"tuning {n} kernels x {cfg.trials_per_kernel} trials", cfg.progress)
    for cost_us, p in ranked[:n]:
        line = tune_kernel(p.kernel.func, p.kernel.struct_hash, p.kernel.name, target,
                           cfg.trials_per_kernel, schedules.work_dir, tracker=tracker)
        line["default_us"] = cost_us / p.kernel.count
        lines.append(line)
        bar.update(1)
    bar.close()
    schedules.reload()
    return lines


def run_tune(target: TargetSpec, runner: Runner, cfg: TuneConfig, log=print) -> dict:
    """Run the main job (see the module docstring) and return the report dict."""
    from .coverage import probe_group_count, space_kernels

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
        from .calibration import calibration_kernels

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
    from .adapt import picks_plot, run_adapt

    report.update(run_adapt(space, target, runner, table, nets_table, schedules, cfg, timer, log))
    if report["picks"]:
        plot = Path(cfg.runs_dir) / f"tune-{target.name}" / f"{space.name}-picks.png"
        picks_plot(report, plot)
        report["picks_plot"] = str(plot)
    report["seconds"] = {**timer.seconds, "total": round(time.time() - t_start, 1)}
    return report


def format_report(report: dict) -> str:
    """Human-readable report (the JSON holds the same figures)."""
    lines = []
    emu = " — EMULATION timings, not device timings" if report["emulated"] else ""
    lines.append(f"chamtvm tune report: target {report['target']} on {report['device_label']}{emu}")
    t = report["table"]
    lines.append(f"table: {t['rows']} rows ({t['space_kernels']} kernels in space {report['space']}, "
                 f"{t['measured_now']} measured this run, {t['failed']} failed)")
    tu = report["tuning"]
    lines.append(f"tuning: {len(tu['tuned_now'])} kernels tuned this run, "
                 f"{tu['kernels_with_tuned_schedule']} kernels use a tuned schedule")
    for line in tu["tuned_now"]:
        sp = f"{line['default_us'] / line['best_us']:.1f}x" if line.get("best_us") else "n/a"
        lines.append(f"  {line['name']:<36} {line['trials']:>3} trials {line['tuning_s']:>6.1f} s  "
                     f"default {line['default_us']:.1f} us -> tuned {line['best_us'] or float('nan'):.1f} us ({sp})")
    lines.append("")
    lines.append(f"{'network':<10} {'table sum ms':>12} {'predicted ms':>12} {'measured ms':>12} {'error %':>8} {'spread %':>9}")
    for r in report["networks"]:
        lines.append(f"{r['name']:<10} {r['table_sum_ms']:>12.3f} {r['predicted_ms']:>12.3f} {r['measured_ms']:>12.3f} "
                     f"{r['error_pct']:>+8.1f} {r['measured_spread_pct']:>9.1f}")
    lines.append("")
    pr = report.get("predictor", {})
    for label, f in (("table sum alone", report.get("fidelity_table_sum")),
                     (f"table + {pr.get('residual_mode')} residual ({pr.get('training_networks')} training networks)",
                      report.get("fidelity"))):
        if not f:
            continue
        lines.append(f"held-out fidelity, {label} (n={f['n']}): "
                     f"within ±5%: {100 * f['within_5pct']:.0f}%  within ±10%: {100 * f['within_10pct']:.0f}%  "
                     f"median APE: {f['median_ape_pct']:.2f}%  MAPE: {f['mape_pct']:.2f}%  "
                     f"Kendall tau: {f.get('kendall_tau', float('nan')):.3f}")
    from .adapt import format_adapt

    lines += format_adapt(report)
    if report.get("picks_plot"):
        lines.append(f"plot: {report['picks_plot']}")
    s = report["seconds"]
    lines.append("time (s): " + ", ".join(f"{k} {v}" for k, v in s.items()))
    return "\n".join(lines)

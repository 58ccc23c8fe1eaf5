"""The main job: build (or resume) a target's latency table and schedules for a space,
then check the table-sum predictor on held-out networks measured end to end.

Steps, each resumable:
  1. coverage   every fused kernel of the space (probe lowering, ``coverage``)
  2. table      measure the kernels the table lacks (default schedules)
  3. tuning     MetaSchedule within ``trials``, most expensive kernels first; the tuned
                kernels are then measured too (new keys: ``ms-<trace hash>``)
  4. held-out   sample networks (seeded), predict them from the table, measure them end
                to end (results appended to ``luts/<target>.networks.jsonl``)
  5. report     predicted vs measured, fidelity metrics, time spent; printed and JSON
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
    space: str = "small"
    trials: int = 64
    trials_per_kernel: int = 16
    heldout: int = 20
    heldout_seed: int = 2026
    statistic: str = "runtime_us_p50"
    batch_size: int = 48
    luts_dir: Path = LUTS_DIR
    schedules_dir: Path | None = None
    progress: bool = True


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


def tune_schedules(kernels, table: LatencyTable, target: TargetSpec, schedules: ScheduleSource,
                   cfg: TuneConfig, log=print) -> list[dict]:
    """Spend ``cfg.trials`` MetaSchedule trials on the most expensive untuned kernels."""
    if cfg.trials <= 0 or not target.local:
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
                           cfg.trials_per_kernel, schedules.work_dir)
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

    # 3. tuning, then measure the tuned kernels
    tuned = timer.run("tuning", tune_schedules, kernels, table, target, schedules, cfg, log)
    prepared = prepare(kernels, target, schedules)
    tuned_summary = timer.run("table", fill, prepared, "measuring tuned kernels")
    n_tuned = sum(1 for p in prepared if p.schedule != DEFAULT_TAG)

    # 4. held-out networks
    rng = np.random.default_rng(cfg.heldout_seed)
    archs = [space.sample(rng) for _ in range(cfg.heldout)]
    nets_table = network_table(target, cfg.luts_dir)
    results = []
    bar = progress_bar(len(archs), "held-out networks (predict + measure)", cfg.progress)
    for i, arch in enumerate(archs):
        net = timer.run("heldout_lower", lower_arch, space, arch, f"heldout{i}")
        prep = prepare(net.kernels, target, schedules)
        pred = table_sum(prep, table, cfg.statistic)
        if pred.missing:  # kernels outside the covered set: measure them now, never guess
            timer.run("table", fill_table, prep, table, runner, target, cfg.batch_size)
            pred = table_sum(prep, table, cfg.statistic)
        key = network_key(target, arch.to_json(), [p.key for p in prep])
        row = nets_table.get(key)
        if row is None:
            res = timer.run("heldout_measure", measure_network, net, target, runner, schedules)
            base = {"arch": arch.to_dict(), "space": space.name, "target": target.name,
                    "target_fingerprint": target.fingerprint, "tvm_version": tvm_version(),
                    "device_label": runner.label, "emulated": runner.emulated,
                    "kernel_keys": [p.key for p in prep], "kernel_counts": [p.kernel.count for p in prep],
                    "table_sum_us": pred.latency_ms * 1e3}
            if res.ok:
                nets_table.append([ok_row(key, base, res.samples_us, res.number)])
            else:
                nets_table.append([failed_row(key, base, res.error)])
            row = nets_table.get(key)
        if row is not None:
            results.append({"name": net.name, "arch": arch.to_dict(),
                            "predicted_ms": pred.latency_ms,
                            "measured_ms": row["runtime_us_p50"] / 1e3,
                            "measured_spread_pct": 100 * (row["runtime_us_max"] - row["runtime_us_min"]) / row["runtime_us_p50"],
                            "error_pct": 100 * (pred.latency_ms * 1e3 - row["runtime_us_p50"]) / row["runtime_us_p50"],
                            "kernels": len(prep), "missing_kernels": len(pred.missing)})
        bar.update(1)
    bar.close()

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
        "networks": results,
        "fidelity": fidelity([r["predicted_ms"] for r in results], [r["measured_ms"] for r in results])
        if results else None,
        "seconds": {**timer.seconds, "total": round(time.time() - t_start, 1)},
    }
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
    lines.append(f"{'network':<10} {'predicted ms':>12} {'measured ms':>12} {'error %':>8} {'spread %':>9}")
    for r in report["networks"]:
        lines.append(f"{r['name']:<10} {r['predicted_ms']:>12.3f} {r['measured_ms']:>12.3f} "
                     f"{r['error_pct']:>+8.1f} {r['measured_spread_pct']:>9.1f}")
    f = report.get("fidelity")
    if f:
        lines.append("")
        lines.append(f"held-out fidelity (n={f['n']}, table sum of {report['statistic']}): "
                     f"within ±5%: {100 * f['within_5pct']:.0f}%  within ±10%: {100 * f['within_10pct']:.0f}%  "
                     f"median APE: {f['median_ape_pct']:.2f}%  MAPE: {f['mape_pct']:.2f}%  "
                     f"Kendall tau: {f.get('kendall_tau', float('nan')):.3f}")
    s = report["seconds"]
    lines.append("time (s): " + ", ".join(f"{k} {v}" for k, v in s.items()))
    return "\n".join(lines)

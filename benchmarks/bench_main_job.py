"""The main job from an empty latency table and an empty schedule database.

Runs ``python -m chamtvm tune --target T`` with a fresh ``--luts-dir`` and
``--schedules-dir`` (temporary folders), so every kernel is measured and tuned again, and
reports what it printed: held-out fidelity (table sum alone and with the residual), the
chosen networks' predicted vs measured latency, and the time of each step. Trainings of
the accuracy step come from the journal in ``runs/`` when it holds them (said in the
output: ``trained_now``); delete it to time them too.

    python benchmarks/bench_main_job.py [--target x86] [--results-name NAME] [--keep DIR] [extra tune arguments...]

Writes ``benchmarks/results/main_job_<target>.json`` (or ``NAME.json``), with the load
average before and after, the TVM thread count, and how many of the space's kernels ran
with a tuned, transferred or default schedule. Measure on an idle machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, RESULTS, write_results


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    name, keep = None, None
    if "--keep" in argv:  # keep the run's luts/, schedules/ and report there (e.g. runs/main_job)
        i = argv.index("--keep")
        keep = Path(argv[i + 1]).resolve()
        del argv[i:i + 2]
    if "--results-name" in argv:
        i = argv.index("--results-name")
        name = argv[i + 1]
        del argv[i:i + 2]
    target = argv[argv.index("--target") + 1] if "--target" in argv else "x86"
    extra = [a for i, a in enumerate(argv) if a != "--target" and (i == 0 or argv[i - 1] != "--target")]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="chamtvm-bench-main-") as tmp:
        tmp = Path(tmp)
        if keep is not None:
            tmp = keep
            tmp.mkdir(parents=True, exist_ok=False)
        t0 = time.time()
        proc = subprocess.run([sys.executable, "-m", "chamtvm", "tune", "--target", target,
                               "--luts-dir", str(tmp / "luts"), "--schedules-dir", str(tmp / "schedules"),
                               "--out", str(tmp / "report.json"), "--no-progress", *extra],
                              cwd=REPO, capture_output=True, text=True)
        wall = time.time() - t0
        load_after = os.getloadavg()
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return proc.returncode
        report = json.loads((tmp / "report.json").read_text())
    picks = [{k: p.get(k) for k in ("budget_ms", "predicted_latency_ms", "measured_ms", "measured_spread_pct",
                                    "error_pct", "predicted_accuracy")} for p in report.get("picks", [])]
    acc = report.get("accuracy", {})
    result = {
        "target": target, "space": report["space"], "device_label": report["device_label"],
        "emulated": report["emulated"], "extra_args": extra, "wall_seconds": round(wall, 1),
        "seconds": report["seconds"], "table": {k: report["table"][k] for k in ("rows", "space_kernels", "measured_now")},
        "tuned_now": len(report["tuning"]["tuned_now"]),
        "runtime_threads": report.get("runtime_threads"),
        "load_average_1_5_15": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in load_after]},
        "tuning": {
            "tuned_jointly": sum(1 for t in report["tuning"]["tuned_now"] if t.get("policy") == "joint"),
            "transferred": sum(1 for t in report["tuning"]["tuned_now"] if t.get("policy") == "transfer"),
            "kernels_with_tuned_schedule": report["tuning"]["kernels_with_tuned_schedule"],
            "speedups_over_default": sorted(round(t["default_us"] / t["best_us"], 2) for t in report["tuning"]["tuned_now"]
                                            if t.get("best_us") and t.get("default_us")),
        },
        "fidelity_table_sum": report["fidelity_table_sum"], "fidelity": report["fidelity"],
        "residual": report["predictor"]["residual_mode"],
        "accuracy": {k: acc.get(k) for k in ("status", "samples", "trained_now", "resumed_from_journal", "cv",
                                             "measured_accuracy", "protocol")},
        "picks": picks,
        "heldout_spread_pct_median": sorted(n["measured_spread_pct"] for n in report["networks"])[len(report["networks"]) // 2]
        if report["networks"] else None,
    }
    fs, f = result["fidelity_table_sum"], result["fidelity"]
    emu = " (EMULATED timings)" if result["emulated"] else ""
    print(f"main job on {target}{emu}, space {result['space']}, empty table and schedule database: "
          f"{wall / 60:.1f} min wall; steps (s): {result['seconds']}")
    print(f"  held-out n={f['n']}: table sum within ±10 % {100 * fs['within_10pct']:.0f} %, MAPE {fs['mape_pct']:.2f} %; "
          f"with the {result['residual']} residual within ±5 % {100 * f['within_5pct']:.0f} %, "
          f"MAPE {f['mape_pct']:.2f} %, tau {f['kendall_tau']:.3f}; median repeat spread "
          f"{result['heldout_spread_pct_median']:.1f} %")
    if acc.get("status") == "ok":
        cv = acc["cv"]
        print(f"  accuracy predictor: {acc['samples']} networks ({acc['trained_now']} trained now), "
              f"LOO Kendall tau {cv['kendall_tau']}, RMSE {100 * cv['rmse']:.2f} points")
    for p in picks:
        print(f"  budget {p['budget_ms']} ms: predicted {p['predicted_latency_ms']:.3f} ms, measured "
              f"{p['measured_ms']:.3f} ms (spread {p['measured_spread_pct']:.1f} %), error {p['error_pct']:+.1f} %")
    write_results(result, RESULTS / f"{name or 'main_job_' + target}.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

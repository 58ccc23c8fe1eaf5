"""The main job from an empty latency table and an empty schedule database.

Runs ``python -m chamtvm tune --target T`` with a fresh ``--luts-dir`` and
``--schedules-dir`` (temporary folders), so every kernel is measured and tuned again, and
reports what it printed: held-out fidelity (table sum alone and with the residual), the
chosen networks' predicted vs measured latency, and the time of each step. Trainings of
the accuracy step come from the journal in ``runs/`` when it holds them (said in the
output: ``trained_now``); delete it to time them too.

    python benchmarks/bench_main_job.py [--target x86] [--results-name NAME] [--keep DIR] [extra tune arguments...]

Writes ``benchmarks/results/main_job_<target>.json`` (or ``NAME.json``), with the TVM
thread count and how many of the space's kernels ran with a tuned, transferred or default
schedule (the load and other processes' CPU are in its provenance block). Measure on an
idle machine.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from common import RESULTS, argument_parser, parse_args, run_chamtvm, write_results


def main(argv=None) -> int:
    ap = argument_parser(__doc__)
    ap.add_argument("--target", default="x86")
    ap.add_argument("--results-name", default=None, help="results file NAME.json (default main_job_<target>)")
    ap.add_argument("--keep", type=Path, default=None,
                    help="keep the run's luts/, schedules/ and report in this new folder (e.g. runs/main_job)")
    args, extra = parse_args(ap, argv, rest=True)  # the rest goes to tune
    target, name = args.target, args.results_name
    with tempfile.TemporaryDirectory(prefix="chamtvm-bench-main-") as tmp:
        tmp = Path(tmp)
        if args.keep is not None:
            tmp = args.keep.resolve()
            tmp.mkdir(parents=True, exist_ok=False)
        proc = run_chamtvm(["tune", "--target", target, "--luts-dir", str(tmp / "luts"),
                            "--schedules-dir", str(tmp / "schedules"), "--out", str(tmp / "report.json"),
                            "--no-progress", *extra], ok_codes=None)
        if proc["exit"] != 0:
            print(proc["stderr"][-3000:], file=sys.stderr)
            return proc["exit"]
        wall = proc["wall_s"]
        report = json.loads((tmp / "report.json").read_text())
    picks = [{**{k: p.get(k) for k in ("budget_ms", "predicted_latency_ms", "measured_ms", "measured_spread_pct",
                                       "error_pct", "predicted_accuracy")},
              # step "tune picks": the pick's own kernels tuned before export; its latency before
              "tuning": {k: v for k, v in p["tuning"].items() if k != "kernels"} if p.get("tuning") else None,
              "tuned_kernels": [{k: t.get(k) for k in ("name", "policy", "trials", "best_us", "default_us", "kept")}
                                for t in p["tuning"]["kernels"]] if p.get("tuning") else []}
             for p in report.get("picks", [])]
    acc = report.get("accuracy", {})
    result = {
        "target": target, "space": report["space"], "device_label": report["device_label"],
        "emulated": report["emulated"], "extra_args": extra, "wall_seconds": round(wall, 1),
        "seconds": report["seconds"], "table": {k: report["table"][k] for k in ("rows", "space_kernels", "measured_now")},
        "tuned_now": len(report["tuning"]["tuned_now"]),
        "runtime_threads": report.get("runtime_threads"),
        "tuning": {
            "tuned_jointly": sum(1 for t in report["tuning"]["tuned_now"] if t.get("policy") == "joint"),
            "transferred": sum(1 for t in report["tuning"]["tuned_now"] if t.get("policy") == "transfer"),
            "kernels_with_tuned_schedule": report["tuning"]["kernels_with_tuned_schedule"],
            "speedups_over_default": sorted(round(t["default_us"] / t["best_us"], 2) for t in report["tuning"]["tuned_now"]
                                            if t.get("best_us") and t.get("default_us")),
        },
        "fidelity_table_sum": report["fidelity_table_sum"], "fidelity": report["fidelity"],
        "residual": report["predictor"]["residual_mode"],
        "residual_selection": report["predictor"].get("residual_selection"),
        "measurement_noise": report.get("measurement_noise"),
        "heldout": [{k: n.get(k) for k in ("name", "table_sum_ms", "predicted_ms", "measured_ms", "measured_spread_pct")}
                    for n in report["networks"]],
        "accuracy": {k: acc.get(k) for k in ("status", "samples", "trained_now", "resumed_from_journal", "cv",
                                             "measured_accuracy", "protocol")},
        "picks": picks,
        # step "measure picks": the residual refitted on the tuning networks after the picks' tuning
        "residual_after_pick_tuning": report.get("residual_after_pick_tuning"),
        "heldout_spread_pct_median": sorted(n["measured_spread_pct"] for n in report["networks"])[len(report["networks"]) // 2]
        if report["networks"] else None,
    }
    fs, f = result["fidelity_table_sum"], result["fidelity"]
    emu = " (EMULATED timings)" if result["emulated"] else ""
    print(f"main job on {target}{emu}, space {result['space']}, empty table and schedule database: "
          f"{wall / 60:.1f} min wall; steps (s): {result['seconds']}")
    if f and fs:  # none with --heldout 0
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
        t = p["tuning"]
        if t:
            print(f"    own kernels tuned ({t['trials_spent']} trials, {t['seconds']} s): predicted "
                  f"{t['predicted_before_ms']:.3f} -> {p['predicted_latency_ms']:.3f} ms, measured "
                  f"{t['measured_before_ms']} -> {p['measured_ms']:.3f} ms")
    write_results(result, RESULTS / f"{name or 'main_job_' + target}.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""How much do kernel timings drift on this shared machine between when they were measured
and now? Re-measures a seeded sample of the calibration sweep's kernels and the kernels of
two zoo models from bench_real_models' table into a scratch table, and reports the ratio
now/then per group (median and IQR/median). A group-dependent drift biases any model fitted
on one group and judged on the other.

    python benchmarks/bench_remeasure_drift.py     # after bench_real_models.py

Writes benchmarks/results/remeasure_drift_x86.json.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
from common import RESULTS, RUNS, argument_parser, parse_args, write_results

warnings.filterwarnings("ignore")

WORK = RUNS / "bench_real_models"


def main(argv=None) -> int:
    parse_args(argument_parser(__doc__), argv)
    from chamtvm.core.metrics import iqr_spread_pct
    from chamtvm.lower.calibration import calibration_kernels, real_calibration_kernels
    from chamtvm.lower.network import lower_onnx
    from chamtvm.measure.local import LocalRunner
    from chamtvm.table.fill import fill_table, prepare
    from chamtvm.table.store import LatencyTable
    from chamtvm.targets.spec import get_target
    from chamtvm.tuning.schedules import ScheduleSource

    target = get_target("x86")
    sched = ScheduleSource(target, use_database=False)
    then = LatencyTable(WORK / "x86.jsonl").load()
    rng = np.random.default_rng(0)
    groups = {
        "sweep_grid": prepare(calibration_kernels(), target, sched),
        "sweep_real": prepare(real_calibration_kernels(16), target, sched),
        "zoo_mobilenet_v2_128": prepare(lower_onnx(WORK / "onnx" / "mobilenet_v2_128.onnx").kernels, target, sched),
        "zoo_regnet_y_400mf_128": prepare(lower_onnx(WORK / "onnx" / "regnet_y_400mf_128.onnx").kernels, target,
                                          sched),
    }
    out = {"benchmark": "bench_remeasure_drift", "device": "local x86 CPU (2 cores, SHARED: contended timings)",
           "groups": {}}
    with tempfile.TemporaryDirectory() as tmp, LocalRunner(target) as runner:
        now = LatencyTable(Path(tmp) / "x86.jsonl")
        for name, prepared in groups.items():
            prepared = [p for p in prepared if then.get(p.key)]
            if len(prepared) > 40:
                prepared = [prepared[i] for i in sorted(rng.choice(len(prepared), 40, replace=False))]
            fill_table(prepared, now, runner, target)
            ratio = [now.get(p.key)["runtime_us_p50"] / then.get(p.key)["runtime_us_p50"] for p in prepared
                     if now.get(p.key)]
            out["groups"][name] = {"n": len(ratio), "median_ratio_now_over_then": float(np.median(ratio)),
                                   "ratio_iqr_spread_pct": iqr_spread_pct(ratio),
                                   "then_measured_at": sorted({then.get(p.key)["measured_at"][:16] for p in prepared})[::8]}
            print(f"{name:<24} n={len(ratio):3d} now/then median {np.median(ratio):.3f} "
                  f"(IQR/median {iqr_spread_pct(ratio):.1f} %)", flush=True)
    write_results(out, RESULTS / "remeasure_drift_x86.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

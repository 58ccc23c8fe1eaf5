"""The noise floor of end-to-end network timings here: the same networks timed twice, apart.

Re-times the held-out networks of a kept main-job run (``bench_main_job.py --keep DIR``)
with the same protocol (the target's network evaluator: rounds, nominal tolerance, fastest
state), the same builds (the run's kernel table and schedules, set-asides included: each
network's build key must equal the run's) into a scratch network table, in one batch, and
compares each timing with the run's row:

* ``now_over_then``: per network, the second timing over the first; its median is the drift
  common to the whole batch (the machine's state then and now), its IQR the scatter;
* ``repeat_fidelity``: the first timing taken as a "prediction" of the second (within
  ±5 % / ±10 %, MAPE): what a perfect predictor, fitted to one timing, scores against another;
* ``repeat_fidelity_drift_removed``: the same once the batch's common drift is divided out
  (the per-network scatter alone);
* ``table_sum_vs_now`` / ``predicted_vs_now``: the run's own predictions judged against the
  second timing, beside the run's figures against the first.

No model is fitted here: this bounds what any predictor can reach against a single timing
on this machine.

    python benchmarks/bench_noise_floor.py --run runs/main_job_rounds20 [--results-name NAME]

Writes ``benchmarks/results/noise_floor_<target>.json`` (or ``NAME.json``) and a plot.
Measure on an idle machine (quiet-run).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
from common import RESULTS, argument_parser, parse_args, pyplot, save_figure, write_results


def _ratio_summary(r: np.ndarray) -> dict:
    q1, med, q3 = np.percentile(r, [25, 50, 75])
    return {"median": float(med), "iqr_over_median_pct": float((q3 - q1) / med * 100), "min": float(r.min()),
            "max": float(r.max())}


def main(argv=None) -> int:
    ap = argument_parser(__doc__)
    ap.add_argument("--run", type=Path, required=True, help="a kept main-job folder (luts/, schedules/, report.json)")
    ap.add_argument("--results-name", default=None, help="results file NAME.json (default noise_floor_<target>)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N held-out networks (a smoke check)")
    args = parse_args(ap, argv)
    from chamtvm.core.metrics import fidelity
    from chamtvm.latency.models import LatencyPredictor
    from chamtvm.measure.runners import make_runner
    from chamtvm.pipeline.latency import price_archs
    from chamtvm.space.schema import Arch, SearchSpace
    from chamtvm.table.networks import network_table
    from chamtvm.table.store import LatencyTable
    from chamtvm.targets.spec import get_target
    from chamtvm.tuning.schedules import ScheduleSource

    run = args.run.resolve()
    report = json.loads((run / "report.json").read_text())
    target = get_target(report["target"])
    space = SearchSpace.load(report["space"])
    then_nets = network_table(target, run / "luts")
    schedules = ScheduleSource.for_target(target, run / "schedules")
    nets = [n for n in report["networks"] if n.get("measured_ms")][:args.limit]
    then_rows = {n["key"]: then_nets.get(n["key"]) for n in nets}
    archs = [Arch.from_dict(n["arch"]) for n in nets]

    class Bar:
        def __init__(self, total):
            self.done, self.total = 0, total

        def update(self, k):
            self.done += k
            print(f"  re-timed {self.done}/{self.total}", flush=True)

    with tempfile.TemporaryDirectory(prefix="chamtvm-noise-floor-") as tmp:
        shutil.copy(run / "luts" / f"{target.name}.jsonl", tmp)  # the run's table, never written to
        table = LatencyTable.for_target(target.name, tmp)
        now_nets = network_table(target, Path(tmp))
        priced = price_archs(space, archs, LatencyPredictor(table), target, make_runner(target), schedules, table,
                             now_nets, Bar(len(archs)), "again", 48, report.get("statistic", "runtime_us_p50"))
    rows = []
    for n, (_arch, p) in zip(nets, priced):
        then = then_rows[n["key"]]
        rows.append({"name": n["name"], "key": n["key"], "same_build": p.row is not None and p.row["key"] == n["key"],
                     "then_ms": n["measured_ms"], "then_at": then.get("measured_at") if then else None,
                     "now_ms": p.measured_ms, "now_at": p.row.get("measured_at") if p.ok else None,
                     "now_spread_pct": p.spread_pct, "table_sum_ms": n["table_sum_ms"], "predicted_ms": n["predicted_ms"]})
    ok = [r for r in rows if r["now_ms"] and r["same_build"]]
    then_ms = np.array([r["then_ms"] for r in ok])
    now_ms = np.array([r["now_ms"] for r in ok])
    ratio = now_ms / then_ms
    drift = float(np.median(ratio))
    t0 = min(datetime.datetime.fromisoformat(r["then_at"].replace("Z", "+00:00")) for r in ok if r["then_at"])
    t1 = min(datetime.datetime.fromisoformat(r["now_at"].replace("Z", "+00:00")) for r in ok if r["now_at"])
    result = {
        "run": str(run), "target": target.name, "space": space.name, "device_label": report["device_label"],
        "emulated": report["emulated"], "protocol": dataclasses.asdict(target.network_evaluator),
        "networks": len(nets), "retimed": len(ok), "builds_differ": sum(not r["same_build"] for r in rows),
        "hours_apart": round((t1 - t0).total_seconds() / 3600, 2),
        "now_over_then": _ratio_summary(ratio),
        "repeat_fidelity": fidelity(then_ms, now_ms),
        "repeat_fidelity_drift_removed": fidelity(then_ms * drift, now_ms),
        "table_sum_vs_then": fidelity([r["table_sum_ms"] for r in ok], then_ms),
        "table_sum_vs_now": fidelity([r["table_sum_ms"] for r in ok], now_ms),
        "predicted_vs_then": fidelity([r["predicted_ms"] for r in ok], then_ms),
        "predicted_vs_now": fidelity([r["predicted_ms"] for r in ok], now_ms),
        "rows": rows,
    }
    rf, rd = result["repeat_fidelity"], result["repeat_fidelity_drift_removed"]
    print(f"{len(ok)} networks re-timed {result['hours_apart']} h apart: now/then median {drift:.3f} "
          f"(IQR/median {result['now_over_then']['iqr_over_median_pct']:.1f} %); first timing as prediction of the "
          f"second: {rf['within_10pct']:.0%} within ±10 %, {rf['within_5pct']:.0%} within ±5 %, MAPE "
          f"{rf['mape_pct']:.2f} %; drift removed: {rd['within_10pct']:.0%} / {rd['within_5pct']:.0%}, MAPE "
          f"{rd['mape_pct']:.2f} %")
    for k in ("table_sum", "predicted"):
        a, b = result[f"{k}_vs_then"], result[f"{k}_vs_now"]
        print(f"  {k}: against the first timing {a['within_10pct']:.0%} within ±10 % (MAPE {a['mape_pct']:.2f} %), "
              f"against the second {b['within_10pct']:.0%} (MAPE {b['mape_pct']:.2f} %)")

    name = args.results_name or f"noise_floor_{target.name}"
    write_results(result, RESULTS / f"{name}.json", figure=plot)
    return 0


def plot(result: dict, png: Path) -> None:
    """The second timing against the first, per network, with the ±10 % band."""
    plt = pyplot()
    ok = [r for r in result["rows"] if r["now_ms"] and r["same_build"]]
    then_ms, now_ms = np.array([r["then_ms"] for r in ok]), np.array([r["now_ms"] for r in ok])
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.scatter(then_ms, now_ms, s=18)
    lo, hi = float(min(then_ms.min(), now_ms.min())) * 0.9, float(max(then_ms.max(), now_ms.max())) * 1.1
    xs = np.linspace(lo, hi, 10)
    ax.plot(xs, xs, "k-", lw=0.8, label="same")
    ax.fill_between(xs, xs * 0.9, xs * 1.1, color="grey", alpha=0.15, label="±10 %")
    ax.set_xlabel("first timing (ms, the run's row)")
    ax.set_ylabel(f"second timing (ms, {result['hours_apart']} h later)")
    ax.set_title(f"{result['target']}: the same {len(ok)} networks timed twice")
    ax.legend()
    save_figure(fig, png)


if __name__ == "__main__":
    raise SystemExit(main())

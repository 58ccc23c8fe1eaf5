"""Re-measure, interleaved in one period, held-out networks of the tuned main job and the
table rows of their kernels (fresh table): is the table sum's +15-25 % on low-spread networks
load drift between the table step and the held-out step, or kernels timed alone costing more?

    python benchmarks/bench_tuned_table_remeasure.py RUN_DIR WORK_DIR [ROUNDS] [NETWORKS]

RUN_DIR is a main-job folder kept by ``bench_main_job.py --keep`` (report.json, luts/,
schedules/); WORK_DIR a scratch folder for the fresh tables; ROUNDS (default 2) and
NETWORKS (default 8). Prints per round the table-sum error against the network (MAPE,
share within +-10 %) and how much faster both are now than in the job; writes
benchmarks/results/tuned_table_remeasure_x86.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from common import RESULTS, argument_parser, load_average, parse_args, write_results


def main(argv=None) -> int:
    ap = argument_parser(__doc__)
    ap.add_argument("run_dir", type=Path, help="main-job folder kept by bench_main_job.py --keep")
    ap.add_argument("work_dir", type=Path, help="scratch folder for the fresh tables")
    ap.add_argument("rounds", type=int, nargs="?", default=2)
    ap.add_argument("networks", type=int, nargs="?", default=8)
    args = parse_args(ap, argv)

    from chamtvm.core.metrics import fidelity
    from chamtvm.latency.table_sum import table_sum
    from chamtvm.lower.network import lower_arch
    from chamtvm.measure.local import LocalRunner
    from chamtvm.measure.network import measure_network
    from chamtvm.space.schema import Arch, SearchSpace
    from chamtvm.table.fill import fill_table, prepare
    from chamtvm.table.store import LatencyTable
    from chamtvm.targets.spec import get_target
    from chamtvm.tuning.schedules import ScheduleSource

    run, out = args.run_dir, args.work_dir
    rep = json.loads((run / "report.json").read_text())
    space = SearchSpace.load(rep["space"])
    x86 = get_target("x86")
    sched = ScheduleSource(x86, run / "schedules" / "x86")
    old = LatencyTable(run / "luts" / "x86.jsonl").load()
    runner = LocalRunner(x86)
    nets = rep["networks"][:args.networks]
    res = []
    for rnd in range(args.rounds):
        fresh = LatencyTable(out / f"round{rnd}.jsonl")
        for n in nets:
            net = lower_arch(space, Arch.from_dict(n["arch"]), n["name"])
            prep = prepare(net.kernels, x86, sched)
            fill_table(prep, fresh, runner, x86, 48)
            t_new = table_sum(prep, fresh, "runtime_us_p50").latency_ms
            t_old = table_sum(prep, old, "runtime_us_p50").latency_ms
            m = measure_network(net, x86, runner, sched)
            meas = float(np.median(m.samples_us)) / 1e3 if m.ok else None
            d = {"round": rnd, "name": n["name"], "old_table_sum_ms": t_old, "old_measured_ms": n["measured_ms"],
                 "new_table_sum_ms": t_new, "new_measured_ms": meas, "load_average_1_5_15": load_average(),
                 "prov": sorted(set(p.provenance for p in prep))}
            res.append(d)
            print(json.dumps(d), flush=True)
    summary = {}
    for rnd in range(args.rounds):
        rows = [d for d in res if d["round"] == rnd and d["new_measured_ms"]]
        fid = fidelity([d["new_table_sum_ms"] for d in rows], [d["new_measured_ms"] for d in rows])
        summary[f"round{rnd}"] = {
            "fidelity_table_sum": fid,
            "errors_pct": [round(100 * (d["new_table_sum_ms"] / d["new_measured_ms"] - 1), 1) for d in rows],
            "old_over_new_table_sum": [round(d["old_table_sum_ms"] / d["new_table_sum_ms"], 2) for d in rows],
            "old_over_new_measured": [round(d["old_measured_ms"] / d["new_measured_ms"], 2) for d in rows]}
        print(f"round {rnd}: table sum vs network MAPE {fid['mape_pct']:.1f} %, "
              f"{100 * fid['within_10pct']:.0f} % of {fid['n']} within 10 %; job/now table sums "
              f"{summary[f'round{rnd}']['old_over_new_table_sum']}")
    result = {"what": "held-out networks of a kept tuned main job: their kernels re-measured into a fresh table and "
                      "the networks end to end, network after network, ROUNDS rounds (2 TVM threads). old = the job's "
                      "table sum / measurement, new = this re-measurement.", "summary": summary, "rows": res}
    write_results(result, RESULTS / "tuned_table_remeasure_x86.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

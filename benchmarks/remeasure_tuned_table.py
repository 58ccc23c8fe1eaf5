"""Re-measure, interleaved in one period, held-out networks of the tuned main job and the
table rows of their kernels (fresh table): is the table sum's +15-25 % on low-spread networks
load drift between the table step and the held-out step, or kernels timed alone costing more?

    python benchmarks/remeasure_tuned_table.py RUN_DIR WORK_DIR [ROUNDS=2] [NETWORKS=8]

RUN_DIR is a main-job folder kept by ``bench_main_job.py --keep`` (report.json, luts/,
schedules/). Prints per round the table-sum error against the network (MAPE, share within
+-10 %) and how much faster both are now than in the job; writes
benchmarks/results/tuned_table_remeasure_x86.json."""
import json, os, sys
from pathlib import Path
import numpy as np
sys.path.insert(0, os.getcwd())
from chamtvm.space.schema import Arch, SearchSpace
from chamtvm.targets.spec import get_target
from chamtvm.tuning.schedules import ScheduleSource
from chamtvm.table.store import LatencyTable
from chamtvm.table.fill import prepare, fill_table
from chamtvm.latency.table_sum import table_sum
from chamtvm.lower.network import lower_arch
from chamtvm.measure.local import LocalRunner
from chamtvm.measure.network import measure_network

run = Path(sys.argv[1]); out = Path(sys.argv[2]); rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 2
rep = json.loads((run / "report.json").read_text())
space = SearchSpace.load(rep["space"])
x86 = get_target("x86")
sched = ScheduleSource(x86, run / "schedules" / "x86")
old = LatencyTable(run / "luts" / "x86.jsonl").load()
runner = LocalRunner(x86)
nets = rep["networks"][:int(sys.argv[4]) if len(sys.argv) > 4 else 8]
res = []
for rnd in range(rounds):
    fresh = LatencyTable(out / f"round{rnd}.jsonl")
    for n in nets:
        net = lower_arch(space, Arch.from_dict(n["arch"]), n["name"])
        prep = prepare(net.kernels, x86, sched)
        fill_table(prep, fresh, runner, x86, 48)
        t_new = table_sum(prep, fresh, "runtime_us_p50").latency_ms
        t_old = table_sum(prep, old, "runtime_us_p50").latency_ms
        m = measure_network(net, x86, runner, sched)
        meas = float(np.median(m.samples_us)) / 1e3 if m.ok else None
        load = os.getloadavg()[0]
        d = {"round": rnd, "name": n["name"], "old_table_sum_ms": t_old, "old_measured_ms": n["measured_ms"],
             "new_table_sum_ms": t_new, "new_measured_ms": meas, "load1": load,
             "prov": sorted(set(p.provenance for p in prep))}
        res.append(d)
        print(json.dumps(d), flush=True)
import statistics as st
summary = {}
for rnd in range(rounds):
    rows = [d for d in res if d["round"] == rnd]
    e = [100 * (d["new_table_sum_ms"] / d["new_measured_ms"] - 1) for d in rows]
    summary[f"round{rnd}"] = {
        "errors_pct": [round(x, 1) for x in e], "mape_pct": round(st.mean(map(abs, e)), 1),
        "within_10pct": sum(abs(x) <= 10 for x in e), "n": len(e),
        "old_over_new_table_sum": [round(d["old_table_sum_ms"] / d["new_table_sum_ms"], 2) for d in rows],
        "old_over_new_measured": [round(d["old_measured_ms"] / d["new_measured_ms"], 2) for d in rows],
        "load1": [round(d["load1"], 2) for d in rows]}
    print(f"round {rnd}: table sum vs network MAPE {summary[f'round{rnd}']['mape_pct']} %, "
          f"{summary[f'round{rnd}']['within_10pct']}/{len(e)} within 10 %; job/now table sums "
          f"{summary[f'round{rnd}']['old_over_new_table_sum']}")
result = {"what": "held-out networks of a kept tuned main job: their kernels re-measured into a fresh table and "
                  "the networks end to end, network after network, ROUNDS rounds (2 TVM threads). old = the job's "
                  "table sum / measurement, new = this re-measurement.", "summary": summary, "rows": res}
Path("benchmarks/results/tuned_table_remeasure_x86.json").write_text(json.dumps(result, indent=1))

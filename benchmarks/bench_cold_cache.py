"""Warm vs cold-cache kernel timings against the end-to-end network, interleaved, one process
per contender avoided for speed (all in this process, 2 TVM threads). Cold: TVM's
``cache_flush_cpu_non_first_arg`` before every call (number=1), so weights and outputs come
from memory as in a network where each kernel's weights were evicted by the previous ones.

    python benchmarks/bench_cold_cache.py RUN_DIR WORK_DIR [NETWORKS=6]

RUN_DIR: a main-job folder kept by ``bench_main_job.py --keep``. 3 rounds per network (warm
kernels, cold kernels, network, interleaved); medians of the rounds. Writes
benchmarks/results/cold_cache_x86.json."""
import json, os, sys
from pathlib import Path
import numpy as np
os.environ["TVM_NUM_THREADS"] = str(os.cpu_count())
sys.path.insert(0, os.getcwd())
import tvm
from tvm import relax
from chamtvm.space.schema import Arch, SearchSpace
from chamtvm.targets.spec import get_target
from chamtvm.tuning.schedules import ScheduleSource
from chamtvm.table.fill import prepare
from chamtvm.lower.network import lower_arch
from chamtvm.measure.compile import build_kernel_library, compile_network, export
from chamtvm.measure.timing import random_tensor

run = Path(sys.argv[1]); out = Path(sys.argv[2]); n_nets = int(sys.argv[3])
rep = json.loads((run / "report.json").read_text())
space = SearchSpace.load(rep["space"]); x86 = get_target("x86")
sched = ScheduleSource(x86, run / "schedules" / "x86")
dev = tvm.cpu(0); rng = np.random.default_rng(0)
res = []
for n in rep["networks"][:n_nets]:
    net = lower_arch(space, Arch.from_dict(n["arch"]), n["name"])
    prep = prepare(net.kernels, x86, sched)
    lib = tvm.runtime.load_module(str(build_kernel_library([(p.symbol, p.func) for p in prep], x86, out / f"{n['name']}_k.so")))
    ex = tvm.runtime.load_module(str(export(compile_network(net.fused, x86, sched), x86, out / f"{n['name']}_net.so")))
    vm = relax.VirtualMachine(ex, dev)
    inputs = [random_tensor(a, dev, rng) for a in net.inputs]
    vm["main"](*inputs)
    rounds = []
    for r in range(3):
        warm = cold = 0.0
        for p in prep:
            args = [random_tensor(a, dev, rng) for a in p.kernel.args]
            tw = lib.time_evaluator(p.symbol, dev, number=1, repeat=9, min_repeat_ms=10)(*args).median
            tc = lib.time_evaluator(p.symbol, dev, number=1, repeat=15, min_repeat_ms=0,
                                    f_preproc="cache_flush_cpu_non_first_arg")(*args).median
            warm += tw * p.kernel.count; cold += tc * p.kernel.count
        tn = vm.time_evaluator("main", dev, number=1, repeat=15, min_repeat_ms=50)(*inputs).median
        rounds.append({"warm_sum_ms": warm * 1e3, "cold_sum_ms": cold * 1e3, "network_ms": tn * 1e3, "load1": os.getloadavg()[0]})
    med = {k: float(np.median([x[k] for x in rounds])) for k in rounds[0]}
    d = {"name": n["name"], **med, "warm_err_pct": 100 * (med["warm_sum_ms"] / med["network_ms"] - 1),
         "cold_err_pct": 100 * (med["cold_sum_ms"] / med["network_ms"] - 1), "rounds": rounds}
    res.append(d); print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in d.items() if k != "rounds"}), flush=True)
def share(key, lim):
    return sum(abs(d[key]) <= lim for d in res) / len(res)


summary = {k: {"mape_pct": sum(abs(d[k]) for d in res) / len(res), "within_5pct": share(k, 5),
               "within_10pct": share(k, 10), "mean_error_pct": sum(d[k] for d in res) / len(res)}
           for k in ("warm_err_pct", "cold_err_pct")}
print(json.dumps(summary, indent=1))
Path("benchmarks/results/cold_cache_x86.json").write_text(json.dumps(
    {"what": "kernel sums timed warm (as table rows are) and cold (cache_flush_cpu_non_first_arg, number 1) "
             "against the network, tuned database of a kept main job, 2 TVM threads, one process",
     "summary": summary, "networks": res}, indent=1))

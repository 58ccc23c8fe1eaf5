"""Warm vs cold-cache kernel timings against the end-to-end network, interleaved, all in
this process (2 TVM threads; no process per contender, for speed). Cold: TVM's
``cache_flush_cpu_non_first_arg`` before every call (number=1), so weights and outputs come
from memory as in a network where each kernel's weights were evicted by the previous ones.

    python benchmarks/bench_cold_cache.py RUN_DIR WORK_DIR [NETWORKS]

RUN_DIR: a main-job folder kept by ``bench_main_job.py --keep``; WORK_DIR: a scratch folder
for the built libraries; NETWORKS: how many of the run's held-out networks (default 6).
3 rounds per network (warm kernels, cold kernels, network, interleaved); medians of the
rounds. Writes benchmarks/results/cold_cache_x86.json.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from common import RESULTS, argument_parser, load_average, parse_args, write_results


def main(argv=None) -> int:
    ap = argument_parser(__doc__)
    ap.add_argument("run_dir", type=Path, help="main-job folder kept by bench_main_job.py --keep")
    ap.add_argument("work_dir", type=Path, help="scratch folder for the built libraries")
    ap.add_argument("networks", type=int, nargs="?", default=6, help="held-out networks to time (default 6)")
    args = parse_args(ap, argv)
    os.environ["TVM_NUM_THREADS"] = str(os.cpu_count())  # before TVM's thread pool starts

    import tvm
    from tvm import relax

    from chamtvm.core.metrics import fidelity
    from chamtvm.lower.network import lower_arch
    from chamtvm.measure.compile import build_kernel_library, compile_network, export
    from chamtvm.measure.timing import random_tensor
    from chamtvm.space.schema import Arch, SearchSpace
    from chamtvm.table.fill import prepare
    from chamtvm.targets.spec import get_target
    from chamtvm.tuning.schedules import ScheduleSource

    run, out = args.run_dir, args.work_dir
    out.mkdir(parents=True, exist_ok=True)
    rep = json.loads((run / "report.json").read_text())
    space = SearchSpace.load(rep["space"])
    x86 = get_target("x86")
    sched = ScheduleSource(x86, run / "schedules" / "x86")
    dev = tvm.cpu(0)
    rng = np.random.default_rng(0)
    res = []
    for n in rep["networks"][:args.networks]:
        net = lower_arch(space, Arch.from_dict(n["arch"]), n["name"])
        prep = prepare(net.kernels, x86, sched)
        lib = tvm.runtime.load_module(str(build_kernel_library([(p.symbol, p.func) for p in prep], x86,
                                                               out / f"{n['name']}_k.so")))
        ex = tvm.runtime.load_module(str(export(compile_network(net.fused, x86, sched), x86,
                                                out / f"{n['name']}_net.so")))
        vm = relax.VirtualMachine(ex, dev)
        inputs = [random_tensor(a, dev, rng) for a in net.inputs]
        vm["main"](*inputs)
        rounds = []
        for _ in range(3):
            warm = cold = 0.0
            for p in prep:
                kargs = [random_tensor(a, dev, rng) for a in p.kernel.args]
                tw = lib.time_evaluator(p.symbol, dev, number=1, repeat=9, min_repeat_ms=10)(*kargs).median
                tc = lib.time_evaluator(p.symbol, dev, number=1, repeat=15, min_repeat_ms=0,
                                        f_preproc="cache_flush_cpu_non_first_arg")(*kargs).median
                warm += tw * p.kernel.count
                cold += tc * p.kernel.count
            tn = vm.time_evaluator("main", dev, number=1, repeat=15, min_repeat_ms=50)(*inputs).median
            rounds.append({"warm_sum_ms": warm * 1e3, "cold_sum_ms": cold * 1e3, "network_ms": tn * 1e3,
                           "load_average_1_5_15": load_average()})
        med = {k: float(np.median([x[k] for x in rounds])) for k in ("warm_sum_ms", "cold_sum_ms", "network_ms")}
        d = {"name": n["name"], **med, "warm_err_pct": 100 * (med["warm_sum_ms"] / med["network_ms"] - 1),
             "cold_err_pct": 100 * (med["cold_sum_ms"] / med["network_ms"] - 1), "rounds": rounds}
        res.append(d)
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in d.items() if k != "rounds"}),
              flush=True)
    measured = [d["network_ms"] for d in res]
    summary = {"warm": fidelity([d["warm_sum_ms"] for d in res], measured),
               "cold": fidelity([d["cold_sum_ms"] for d in res], measured)}
    print(json.dumps(summary, indent=1))
    write_results({"what": "kernel sums timed warm (as table rows are) and cold (cache_flush_cpu_non_first_arg, "
                           "number 1) against the network, tuned database of a kept main job, 2 TVM threads, "
                           "one process",
                   "summary": summary, "networks": res}, RESULTS / "cold_cache_x86.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

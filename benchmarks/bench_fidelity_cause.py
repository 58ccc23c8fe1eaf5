"""Why the tuned table misses the network: every kernel timed inside its network next to its
table row, per thread count.

    python benchmarks/bench_fidelity_cause.py --workdir WD [--networks 12] [--picks] [--threads 1,2] [--rounds 3]

WD is a main job's working folder (``luts/``, ``schedules/``). The held-out networks of its
network journal are compiled once here; then, for each thread count, one child process
(``TVM_NUM_THREADS``) times each network ``--rounds`` times, interleaving per network:

* ``e2e``       the network, ``vm.time_evaluator`` as the network rows are timed;
* ``insitu``    every call inside the network (``chamtvm.measure.insitu``: the VM instrument,
                its own per-call cost measured on the VM builtins and subtracted);
* ``loo``       leave-one-kernel-out: the network with every call of one kernel skipped
                (``SKIP_RUN``) against the same instrument doing nothing; the difference is
                what that kernel costs the network;
* ``warm``      each kernel alone, as the table times it (number 1, repeat 9, 10 ms);
* ``cold``      each kernel alone, caches of its weights and output flushed before each call;
* ``batchnet``  the network's kernels in a batch network (``chamtvm.lower.batchnet``: each
                kernel after a producer of its input, no network order), timed call by call;
* ``union``     every network's kernels of this run together in one batch network (as the
                table times the kernels of several networks at once), timed call by call.

``--picks`` takes the main job's picks (``report.json``) instead of its held-out networks: their
kernels are the ones the job tuned last, with the most trials.

The table rows themselves (timed when the job ran) are read from ``luts/``. The report
attributes the gap (sum of a protocol's kernel times against the network) per kernel kind,
schedule provenance and thread count. Writes benchmarks/results/fidelity_cause_x86.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import RESULTS, argument_parser, load_average, parse_args, write_results


# ------------------------------------------------------------------ child: device side
def child(request_path: str) -> None:
    import numpy as np
    import tvm
    from tvm import relax
    from tvm.relax import VMInstrumentReturnKind

    from chamtvm.measure.insitu import time_calls
    from chamtvm.measure.timing import random_tensor
    from chamtvm.lower.kernels import ArgSpec

    req = json.loads(Path(request_path).read_text())
    dev = tvm.cpu(0)
    rng = np.random.default_rng(0)
    skip, noop = int(VMInstrumentReturnKind.SKIP_RUN), int(VMInstrumentReturnKind.NO_OP)
    out = {"threads": int(tvm.get_global_func("runtime.NumThreads")()), "networks": []}
    nets = req["networks"]
    loaded = []
    union = req.get("union")
    uvm = relax.VirtualMachine(tvm.runtime.load_module(union["lib"]), dev) if union else None
    uinputs = [random_tensor(ArgSpec(tuple(s), t), dev, rng) for s, t in union["inputs"]] if union else None
    for n in nets:
        ex = tvm.runtime.load_module(n["network_lib"])
        lib = tvm.runtime.load_module(n["kernel_lib"])
        vm = relax.VirtualMachine(ex, dev)
        inputs = [random_tensor(ArgSpec(tuple(s), t), dev, rng) for s, t in n["inputs"]]
        kargs = {k["symbol"]: [random_tensor(ArgSpec(tuple(s), t), dev, rng) for s, t in k["args"]]
                 for k in n["kernels"]}
        bvm = relax.VirtualMachine(tvm.runtime.load_module(n["batch_lib"]), dev)
        binputs = [random_tensor(ArgSpec(tuple(s), t), dev, rng) for s, t in n["batch_inputs"]]
        loaded.append((vm, inputs, lib, kargs, bvm, binputs))
        out["networks"].append({"name": n["name"], "rounds": []})
    for r in range(req["rounds"]):
        for (vm, inputs, lib, kargs, bvm, binputs), n, o in zip(loaded, nets, out["networks"]):
            vm.set_instrument(None)
            e2e = vm.time_evaluator("main", dev, number=1, repeat=15, min_repeat_ms=50)(*inputs)
            calls = time_calls(vm, inputs, runs=req["insitu_runs"])

            def timed(skip_symbol):
                def instrument(func, symbol, before, ret, *a):
                    return skip if (before and symbol == skip_symbol) else noop
                vm.set_instrument(instrument)
                res = vm.time_evaluator("main", dev, number=1, repeat=11, min_repeat_ms=30)(*inputs)
                vm.set_instrument(None)
                return res.median * 1e6

            base = timed(None)
            loo = {}
            for sym in sorted(set(n["network_symbols"])):
                loo[sym] = base - timed(sym)
            warm, cold = {}, {}
            for k in n["kernels"]:
                a = kargs[k["symbol"]]
                warm[k["symbol"]] = lib.time_evaluator(k["symbol"], dev, number=1, repeat=9, min_repeat_ms=10)(*a).median * 1e6
                cold[k["symbol"]] = lib.time_evaluator(k["symbol"], dev, number=1, repeat=30, min_repeat_ms=0,
                                                       f_preproc="cache_flush_cpu_non_first_arg")(*a).median * 1e6
            batch = time_calls(bvm, binputs, runs=req["insitu_runs"])
            ucalls = time_calls(uvm, uinputs, runs=req["insitu_runs"]).to_dict() if uvm else None
            o["rounds"].append({"union": ucalls, "e2e_us": e2e.median * 1e6, "e2e_spread_pct": _spread(e2e.results),
                                "insitu": calls.to_dict(), "batchnet": batch.to_dict(), "loo_base_us": base, "loo_us": loo,
                                "warm_us": warm, "cold_us": cold, "load_average_1_5_15": load_average()})
        print(f"round {r + 1} done", file=sys.stderr, flush=True)
    Path(req["out"]).write_text(json.dumps(out))


def _spread(samples) -> float:
    from chamtvm.core.metrics import iqr_spread_pct

    return iqr_spread_pct([float(s) for s in samples])


# ------------------------------------------------------------------ parent
def prepare_networks(workdir: Path, n_networks: int, tmp: Path, target_name: str = "x86",
                     picks: bool = False):
    from chamtvm.lower.kernels import kernel_hash
    from chamtvm.lower.network import lower_arch
    from chamtvm.measure.compile import build_kernel_library, compile_network, export
    from chamtvm.space.schema import Arch, SearchSpace
    from chamtvm.table.fill import prepare
    from chamtvm.table.store import LatencyTable
    from chamtvm.targets.spec import get_target
    from chamtvm.tuning.schedules import ScheduleSource
    from chamtvm.latency.features import kernel_kind

    target = get_target(target_name)
    table = LatencyTable(workdir / "luts" / f"{target.name}.jsonl").load()
    nets_table = LatencyTable(workdir / "luts" / f"{target.name}.networks.jsonl").load()
    schedules = ScheduleSource(target, workdir / "schedules" / target.name)
    if picks:  # the main job's picks, with the latency it measured for each
        report = json.loads((workdir / "report.json").read_text())
        rows = [{"name": f"pick-{p['budget_ms']}ms", "arch": p["architecture"], "space": report["space"],
                 "runtime_us_p50": 1000.0 * p["measured_ms"]} for p in report["picks"]]
    else:
        rows = [r for r in nets_table.rows() if "arch" in r and str(r.get("name", "")).startswith("heldout")]
        if not rows:  # journals without names: take the last measured networks
            rows = [r for r in nets_table.rows() if "arch" in r]
    rows = rows[-n_networks:]
    union: dict = {}
    nets = []
    for i, row in enumerate(rows):
        space = SearchSpace.load(row.get("space", "macro"))
        net = lower_arch(space, Arch.from_dict(row["arch"]), f"net{i}")
        prep = prepare(net.kernels, target, schedules)
        by_hash = {p.kernel.struct_hash: p for p in prep}
        symbols = {}
        import tvm
        for gv, f in net.fused.functions.items():
            if isinstance(f, tvm.tirx.PrimFunc) and kernel_hash(f) in by_hash:  # uncalled functions: none
                symbols[gv.name_hint] = by_hash[kernel_hash(f)].symbol
        lib = build_kernel_library([(p.symbol, p.func) for p in prep], target, tmp / f"k{i}.so")
        ex = export(compile_network(net.fused, target, schedules), target, tmp / f"n{i}.so")
        from tvm import relax as _relax
        from chamtvm.lower.batchnet import batch_network
        bmod, binputs = batch_network([(p.symbol, p.func, p.kernel) for p in prep])
        tvm_t = target.tvm()
        bex = export(tvm.compile(bmod, tvm_t, relax_pipeline=_relax.get_default_pipeline(tvm_t)), target, tmp / f"b{i}.so")
        kernels = []
        for p in prep:
            union.setdefault(p.symbol, p)
            r = table.get(p.key)
            kernels.append({"symbol": p.symbol, "name": p.kernel.name, "key": p.key, "count": p.kernel.count,
                            "args": [a.to_list() for a in p.kernel.args], "flops": p.kernel.flops,
                            "bytes": p.kernel.bytes, "provenance": p.provenance,
                            "kind": kernel_kind(p.kernel.name, [a.to_list() for a in p.kernel.args]),
                            "table_us": r["runtime_us_p50"] if r else None})
        nets.append({"name": row.get("name", f"net{i}"), "arch": row["arch"], "network_lib": str(ex),
                     "batch_lib": str(bex), "batch_inputs": [a.to_list() for a in binputs],
                     "kernel_lib": str(lib), "inputs": [a.to_list() for a in net.inputs],
                     "kernels": kernels, "symbol_of": symbols, "network_symbols": list(symbols),
                     "journal_us": row["runtime_us_p50"], "fingerprint": target.fingerprint})
        print(f"compiled {nets[-1]['name']}: {len(prep)} kernels", flush=True)
    umod, uinputs = batch_network([(p.symbol, p.func, p.kernel) for p in union.values()])
    uex = export(tvm.compile(umod, tvm_t, relax_pipeline=_relax.get_default_pipeline(tvm_t)), target, tmp / "union.so")
    print(f"compiled the union batch network: {len(union)} kernels", flush=True)
    return nets, {"lib": str(uex), "inputs": [a.to_list() for a in uinputs], "kernels": len(union)}


def analyse(nets: list[dict], runs_by_threads: dict) -> dict:
    import numpy as np

    from chamtvm.core.metrics import fidelity

    out = {}
    for threads, res in runs_by_threads.items():
        per_net, per_kernel = [], []
        for n, m in zip(nets, res["networks"]):
            rounds = m["rounds"]
            e2e = float(np.median([r["e2e_us"] for r in rounds]))
            ks = {k["symbol"]: k for k in n["kernels"]}
            # in-situ per kernel symbol: sum over its calls, median over rounds
            ins_by_round = []
            for r in rounds:
                ct = r["insitu"]
                acc: dict = {}
                for s, w in zip(ct["symbols"], ct["window_us"]):
                    if s.startswith("vm.builtin."):
                        continue
                    ksym = n["symbol_of"].get(s)
                    if ksym is None:
                        continue
                    acc.setdefault(ksym, []).append(max(w - ct["overhead_us"], 0.0))
                ins_by_round.append(acc)
            uni_by_round = []
            for r in rounds:
                ct = r.get("union")
                if ct is None:
                    continue
                from chamtvm.measure.insitu import instrument_overhead_us
                ov = instrument_overhead_us(ct["symbols"], ct["window_us"])
                uni_by_round.append({s: w - ov for s, w in zip(ct["symbols"], ct["window_us"]) if s in ks})
            bat_by_round = []
            for r in rounds:
                ct = r["batchnet"]
                from chamtvm.measure.insitu import instrument_overhead_us
                ov = instrument_overhead_us(ct["symbols"], ct["window_us"])
                bat_by_round.append({s: w - ov for s, w in zip(ct["symbols"], ct["window_us"]) if s in ks})
            loo_by_kernel: dict = {}
            for r in rounds:
                for s, v in r["loo_us"].items():
                    loo_by_kernel.setdefault(n["symbol_of"][s], []).append(v)
            sums = {"table": 0.0, "warm": 0.0, "cold": 0.0, "insitu": 0.0, "loo": 0.0, "batchnet": 0.0,
                    "union": 0.0}
            for sym, k in ks.items():
                c = k["count"]
                warm = float(np.median([r["warm_us"][sym] for r in rounds]))
                cold = float(np.median([r["cold_us"][sym] for r in rounds]))
                ins_calls = [float(np.median(x)) for x in zip(*[a[sym] for a in ins_by_round])] if sym in ins_by_round[0] else []
                ins = float(np.mean(ins_calls)) if ins_calls else float("nan")
                bat = float(np.median([b[sym] for b in bat_by_round]))
                uni = float(np.median([b[sym] for b in uni_by_round])) if uni_by_round else float("nan")
                loo = float(np.median([sum(v) for v in zip(*[loo_by_kernel.get(sym, [0.0])])])) if sym in loo_by_kernel else float("nan")
                # loo: all calls of the symbol(s) skipped together; several GlobalVars may share one kernel
                per_kernel.append({"network": n["name"], "name": k["name"], "kind": k["kind"],
                                   "provenance": k["provenance"], "count": c, "flops": k["flops"],
                                   "bytes": k["bytes"], "table_us": k["table_us"], "warm_us": warm,
                                   "cold_us": cold, "insitu_us": ins, "loo_total_us": loo,
                                   "batchnet_us": bat, "union_us": uni})
                sums["table"] += (k["table_us"] or float("nan")) * c
                sums["warm"] += warm * c
                sums["cold"] += cold * c
                sums["insitu"] += ins * c
                sums["loo"] += loo
                sums["batchnet"] += bat * c
                sums["union"] += uni * c
            ct = rounds[0]["insitu"]
            n_calls = sum(1 for s in ct["symbols"] if not s.startswith("vm.builtin."))
            n_builtin = sum(1 for s in ct["symbols"] if s.startswith("vm.builtin."))
            per_net.append({"name": n["name"], "e2e_us": e2e, "journal_us": n["journal_us"],
                            "e2e_spread_pct": float(np.median([r["e2e_spread_pct"] for r in rounds])),
                            "round_spread_pct": 100 * float(np.ptp([r["e2e_us"] for r in rounds]) / e2e),
                            "kernel_calls": n_calls, "builtin_calls": n_builtin,
                            "insitu_overhead_us": float(np.median([r["insitu"]["overhead_us"] for r in rounds])),
                            "e2e_instrumented_us": float(np.median([r["insitu"]["e2e_instrumented_us"] for r in rounds])),
                            "e2e_plain_python_us": float(np.median([r["insitu"]["e2e_plain_us"] for r in rounds])),
                            **{f"{k}_sum_us": v for k, v in sums.items()},
                            **{f"{k}_err_pct": 100 * (v / e2e - 1) for k, v in sums.items()}})
        e2e = [p["e2e_us"] for p in per_net]
        def fid(k):
            pairs = [(p[f"{k}_sum_us"], e) for p, e in zip(per_net, e2e) if p[f"{k}_sum_us"] == p[f"{k}_sum_us"]]
            out = fidelity([a for a, _ in pairs], [b for _, b in pairs]) if pairs else {}
            out["networks_without_figure"] = len(per_net) - len(pairs)
            return out

        summary = {k: fid(k)
                   for k in ("table", "warm", "cold", "insitu", "loo", "batchnet", "union")}
        by_kind: dict = {}
        for k in per_kernel:
            key = f"{k['kind']}|{k['provenance']}"
            by_kind.setdefault(key, []).append(k)
        kinds = {}
        for key, ks in sorted(by_kind.items()):
            def med_ratio(a, b):
                v = [x[a] / x[b] for x in ks if x[a] and x[b] and x[b] > 0 and x[a] == x[a]]
                return float(np.median(v)) if v else None
            kinds[key] = {"kernels": len(ks), "insitu_over_warm": med_ratio("insitu_us", "warm_us"),
                          "insitu_over_cold": med_ratio("insitu_us", "cold_us"),
                          "insitu_over_batchnet": med_ratio("insitu_us", "batchnet_us"),
                          "insitu_over_union": med_ratio("insitu_us", "union_us"),
                          "insitu_over_table": med_ratio("insitu_us", "table_us"),
                          "warm_over_table": med_ratio("warm_us", "table_us"),
                          "insitu_share_of_network": float(sum(x["insitu_us"] * x["count"] for x in ks
                                                               if x["insitu_us"] == x["insitu_us"]) / sum(e2e))}
        out[str(threads)] = {"runtime_threads": res["threads"], "summary": summary, "by_kind_and_provenance": kinds,
                             "networks": per_net, "kernels": per_kernel}
    return out


def main(argv=None) -> int:
    ap = argument_parser(__doc__)
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--networks", type=int, default=12)
    ap.add_argument("--picks", action="store_true", help="the main job's picks (report.json), not its held-out networks")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--insitu-runs", type=int, default=30)
    ap.add_argument("--out", type=Path, default=RESULTS / "fidelity_cause_x86.json")
    ap.add_argument("--child", help=argparse_suppress())
    a = parse_args(ap, argv)
    if a.child:
        child(a.child)
        return 0
    with tempfile.TemporaryDirectory(prefix="chamtvm-cause-") as tmp:
        tmp = Path(tmp)
        nets, union = prepare_networks(a.workdir, a.networks, tmp, picks=a.picks)
        runs = {}
        for th in [int(x) for x in a.threads.split(",")]:
            req = {"networks": nets, "union": union, "rounds": a.rounds, "insitu_runs": a.insitu_runs, "out": str(tmp / f"out{th}.json")}
            (tmp / f"req{th}.json").write_text(json.dumps(req))
            env = dict(os.environ, TVM_NUM_THREADS=str(th))
            subprocess.run([sys.executable, __file__, "--workdir", str(a.workdir), "--child", str(tmp / f"req{th}.json")],
                           env=env, check=True)
            runs[th] = json.loads((tmp / f"out{th}.json").read_text())
        result = {"workdir_networks": len(nets), "source": "picks" if a.picks else "held-out networks",
                  "union_kernels": union["kernels"], "rounds": a.rounds, "analysis": analyse(nets, runs),
                  "raw": {str(k): v for k, v in runs.items()},
                  "networks": [{k: v for k, v in n.items() if k not in ("network_lib", "kernel_lib", "batch_lib")}
                               for n in nets]}
    write_results(result, a.out)
    for th, r in result["analysis"].items():
        print(f"threads {th}:")
        for k, f in r["summary"].items():
            if "within_10pct" not in f:
                print(f"  {k:7s} no figure")
                continue
            print(f"  {k:7s} within10 {f['within_10pct']:.2f} within5 {f['within_5pct']:.2f} mape {f['mape_pct']:.1f} bias {f['bias_pct']:+.1f}")
    return 0


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    raise SystemExit(main())

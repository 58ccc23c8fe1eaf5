"""What else decides deployed speed on this CPU: code generation (``mcpu``), threads,
layout and the Relax VM's per-call overhead. Measured on the local x86 CPU, every
variant timed in its own process, interleaved over rounds, with spread (IQR/median).

1. mcpu: LLVM's name of the host CPU (``"mcpu": "host"``, e.g. AVX-512 on this machine)
   vs ``skylake`` (AVX2): one ``fashion`` network (seeded sample) with the default
   schedules, and its most expensive kernel tuned (MetaSchedule, ``--trials``) and
   built with either code generation (same schedule, only the codegen differs);
2. threads: 1 vs all cores (``TVM_NUM_THREADS``), the same network and tuned kernel;
3. layout: Relax ``ConvertLayout`` to NHWC (weights OHWI) before fusion vs NCHW;
4. VM per-call overhead: a chain of N tiny ``add`` kernels, time vs N (slope = per
   kernel call, intercept = per network call).

    python benchmarks/bench_codegen.py [--rounds 5] [--trials 16]

Writes benchmarks/results/codegen_x86.json. Figures are from a shared, contended 2-core
machine: read them with their spread.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from common import RESULTS, argument_parser, parse_args, write_results
from common.timing import paired_ratio, paired_rounds

warnings.filterwarnings("ignore")

from chamtvm.lower.kernels import extract_kernels, from_torch, fuse  # noqa: E402
from chamtvm.measure.compile import build_kernel_library, compile_network, export  # noqa: E402
from chamtvm.space.model import build_model, input_shape  # noqa: E402
from chamtvm.space.schema import SearchSpace  # noqa: E402
from chamtvm.targets.host import cpu_flags, host_cpu, vector_isa  # noqa: E402
from chamtvm.targets.spec import get_target  # noqa: E402
from chamtvm.tuning.policy import tune_kernel  # noqa: E402
from chamtvm.tuning.schedules import ScheduleSource  # noqa: E402


def with_mcpu(target, mcpu: str):
    return dataclasses.replace(target, tvm_target={**target.tvm_target, "mcpu": mcpu})


def net_job(fused, target, path: Path, inputs) -> dict:
    export(compile_network(fused, target), target, path)
    return {"kind": "tvm", "lib": str(path), "inputs": [[list(a.shape), a.dtype] for a in inputs]}


def vm_chain(n: int):
    """Relax module: x (1x16 float32) through ``n`` separate ``add`` kernels."""
    from tvm import relax

    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, 16), "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            y = x
            for _ in range(n):
                y = bb.emit(relax.op.add(y, relax.const(1.0, "float32")))
            out = bb.emit_output(y)
        bb.emit_func_output(out)
    import tvm

    return tvm.transform.Sequential([relax.transform.LegalizeOps()])(bb.get())


def vector_registers(func, targets: dict) -> dict:
    """Per target variant: how many 512-bit (zmm) and 256-bit (ymm) register uses the
    kernel's assembly has: whether the host codegen really emits AVX-512 code."""
    import tvm

    out = {}
    for name, tgt in targets.items():
        lib = tvm.tirx.build(tvm.IRModule({"main": func.with_attr("global_symbol", "main")}), target=tgt.tvm())
        asm = lib.inspect_source("asm")
        out[name] = {"mcpu": tgt.target_json().get("mcpu"), "mattr": tgt.target_json().get("mattr"),
                     "zmm": asm.count("zmm"), "ymm": asm.count("ymm")}
    return out


def main(argv=None) -> int:
    ap = argument_parser(__doc__)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--trials", type=int, default=16, help="MetaSchedule trials for the tuned kernel")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=15, help="alternated repeats per round")
    ap.add_argument("--asm-only", action="store_true",
                    help="only add the register counts of the tuned kernel to the existing JSON (needs --work)")
    ap.add_argument("--work", default=None, help="folder for the tuning database (reused when it has one)")
    ap.add_argument("--out", default=str(RESULTS / "codegen_x86.json"))
    args = parse_args(ap, argv)

    import os

    from tvm import relax

    t_start = time.time()
    base = get_target("x86")
    host = with_mcpu(base, "host")
    avx2 = with_mcpu(base, "skylake")
    threads_all = os.cpu_count() or 1
    out = {"machine": {"llvm_host_cpu": host_cpu(), "vector_isa": vector_isa(),
                       "avx512_flags": sorted(f for f in cpu_flags() if f.startswith("avx512")),
                       "cores": threads_all},
           "note": "shared 2-core machine under load from other work; each figure with its IQR/median spread",
           "rounds": args.rounds}
    print(out["machine"])

    space = SearchSpace.load("fashion")
    arch = space.sample(np.random.default_rng(args.seed))
    relax_mod = from_torch(build_model(space, arch), input_shape(space, arch))
    fused = fuse(relax_mod)
    kernels = extract_kernels(fused)
    from chamtvm.lower.network import network_inputs

    inputs = network_inputs(fused)
    convs = [k for k in kernels if "conv2d" in k.name]
    top = max(convs, key=lambda k: k.flops * k.count)
    out["network"] = {"space": "fashion", "seed": args.seed, "arch": arch.to_dict(), "kernels": len(kernels),
                      "tuned_kernel": top.describe()}

    with tempfile.TemporaryDirectory(prefix="bench-codegen-") as tmp:
        tmp = Path(tmp)
        ms_dir = Path(args.work) if args.work else tmp / "ms"
        sched = ScheduleSource(host, ms_dir)
        if sched.apply(top.func)[1] == "default":
            t0 = time.time()
            line = tune_kernel(top.func, top.struct_hash, top.name, host, args.trials, ms_dir)
            out["tuning"] = {"trials": args.trials, "tuning_s": round(time.time() - t0, 1), "best_us": line["best_us"]}
            sched.reload()
        else:
            out["tuning"] = {"reused_database": str(ms_dir)}
        tuned_func, tag = sched.apply(top.func)
        assert tag != "default", "tuning produced no record"
        kargs = [[list(a.shape), a.dtype] for a in top.args]
        no256 = dataclasses.replace(host, tvm_target={**host.tvm_target, "mattr": ["-prefer-256-bit"]})
        out["vector_registers_tuned_kernel"] = vector_registers(
            tuned_func, {"host": host, "skylake": avx2, "host_no_prefer_256": no256})
        print(out["vector_registers_tuned_kernel"])
        if args.asm_only:
            old = json.loads(Path(args.out).read_text())
            old["vector_registers_tuned_kernel"] = out["vector_registers_tuned_kernel"]
            write_results(old, args.out, measurements_from=args.out)
            return 0

        jobs = {}
        for name, tgt in (("host", host), ("skylake", avx2)):
            jobs[f"net_default_{name}"] = net_job(fused, tgt, tmp / f"net_{name}.so", inputs)
            lib = build_kernel_library([("k", tuned_func)], tgt, tmp / f"ktuned_{name}.so")
            jobs[f"kernel_tuned_{name}"] = {"kind": "kernel", "lib": str(lib), "symbol": "k", "args": kargs}
            lib = build_kernel_library([("k", top.func)], tgt, tmp / f"kdefault_{name}.so")
            jobs[f"kernel_default_{name}"] = {"kind": "kernel", "lib": str(lib), "symbol": "k", "args": kargs}
        nhwc = fuse(relax.transform.ConvertLayout({"relax.nn.conv2d": ["NHWC", "OHWI"]})(relax_mod))
        out["layout"] = {"nchw_kernels": len(kernels), "nhwc_kernels": len(extract_kernels(nhwc)),
                         "nhwc_transposes": sum(1 for k in extract_kernels(nhwc) if "transpose" in k.name)}
        jobs["net_default_host_nhwc"] = net_job(nhwc, host, tmp / "net_nhwc.so", inputs)
        chain_n = (1, 16, 64)
        for n in chain_n:
            ex = relax.build(vm_chain(n), host.tvm())
            p = tmp / f"chain{n}.so"
            ex.export_library(str(p))
            jobs[f"vm_chain_{n}"] = {"kind": "tvm", "lib": str(p), "inputs": [[[1, 16], "float32"]]}
        out["build_s"] = round(time.time() - t_start, 1)

        # every variant in one process per round, alternated repeat by repeat, so that
        # the load from other work on this machine hits all of them alike
        variants = {f"{k}@{threads_all}t": {**j, "threads": threads_all} for k, j in jobs.items()}
        for k in ("net_default_host", "kernel_tuned_host"):
            variants[f"{k}@1t"] = {**jobs[k], "threads": 1}
        print(f"measuring {len(variants)} variants x {args.rounds} rounds (paired, one process per round)")
        res = paired_rounds(variants, args.rounds, repeat=args.repeat)

    T = f"@{threads_all}t"
    out["variants"] = {k: {kk: vv for kk, vv in v.items()} for k, v in res["variants"].items()}
    out["errors"] = res["errors"]
    xs = np.array(chain_n, float)
    ys = np.array([res["variants"][f"vm_chain_{n}{T}"]["median_us"] for n in chain_n])
    slope, icpt = np.polyfit(xs, ys, 1)
    out["summary"] = {
        "mcpu_host_over_skylake_network_default": paired_ratio(res, "net_default_host" + T, "net_default_skylake" + T),
        "mcpu_host_over_skylake_kernel_tuned": paired_ratio(res, "kernel_tuned_host" + T, "kernel_tuned_skylake" + T),
        "mcpu_host_over_skylake_kernel_default": paired_ratio(res, "kernel_default_host" + T, "kernel_default_skylake" + T),
        "threads_all_over_1_network_default": paired_ratio(res, "net_default_host" + T, "net_default_host@1t"),
        "threads_all_over_1_kernel_tuned": paired_ratio(res, "kernel_tuned_host" + T, "kernel_tuned_host@1t"),
        "nchw_over_nhwc_network_default": paired_ratio(res, "net_default_host" + T, "net_default_host_nhwc" + T),
        "vm_per_kernel_call_us": float(slope),
        "vm_per_network_call_us": float(icpt),
    }
    out["wall_s"] = round(time.time() - t_start, 1)
    print(json.dumps(out["summary"], indent=1))
    write_results(out, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

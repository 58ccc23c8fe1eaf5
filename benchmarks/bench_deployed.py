"""Deployed speed: TVM default vs TVM tuned (chamtvm's tuning policy) vs ONNX Runtime vs
torch, on the same machine, at the same thread count, interleaved in separate processes.

Networks: ``--picks`` networks of the ``fashion`` space (seeded samples, like the main
job's picks) and two real architectures of the model zoo (``chamtvm.zoo.real``: MobileNetV2
and ResNet-18, 1000 classes, ``--res`` px). One joint tuning run (``tuning.policy``, ``--trials`` in all, the
kernels weighted by their share of their network's default time) plus trace transfer
(``tuning.transfer``) gives the tuned schedules; the tuned table then predicts each
network (table sum) beside its measured exported library. Per network: the share of time
in its top kernels and their achieved GFLOP/s and GB/s (bytes = arguments read/written
once) against this machine's peak from a small probe (numpy matmul and copy).

    python benchmarks/bench_deployed.py [--trials 96] [--rounds 5] [--threads N]

Writes benchmarks/results/deployed_x86.json and deployed_x86.png. The machine is a shared
2-core VM under load from other work: read every figure with its spread.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import numpy as np

from common import RESULTS, RUNS, argument_parser, parse_args, pyplot, save_figure, write_results

warnings.filterwarnings("ignore")


REAL = {"mobilenetv2": "mobilenet_v2", "resnet18": "resnet18"}  # --real name -> chamtvm.zoo.real member


def real_models(res: int, wanted) -> dict:
    """``{"<name>@<res>": (torch module, input shape)}`` of the ``wanted`` real architectures
    (``REAL``: the model zoo's MobileNetV2 and ResNet-18, 1000 classes, seeded weights and
    randomized BN statistics, eval mode)."""
    from chamtvm.zoo import real

    return {f"{name}@{res}": (real.build(REAL[name]), (1, 3, res, res)) for name in wanted}


def export_torch(model, shape, out_dir: Path) -> dict:
    import torch

    out_dir.mkdir(parents=True, exist_ok=True)
    x = torch.zeros(*shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(out_dir / "model.onnx"), input_names=["x"], opset_version=17, dynamo=False)
        torch.export.save(torch.export.export(model, (x,)), str(out_dir / "model.pt2"))
    return {"onnx": str(out_dir / "model.onnx"), "pt2": str(out_dir / "model.pt2")}


def probe_job() -> dict:
    return {"kind": "probe"}


def main(argv=None) -> int:
    ap = argument_parser(__doc__)
    ap.add_argument("--picks", type=int, default=2)
    ap.add_argument("--pick-seed", type=int, default=2026)
    ap.add_argument("--res", type=int, default=128)
    ap.add_argument("--real", default="mobilenetv2,resnet18", help="real architectures ('' for none)")
    ap.add_argument("--trials", type=int, default=96, help="MetaSchedule trials in all (joint tuning)")
    ap.add_argument("--round-trials", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--work", default=str(RUNS / "bench-deployed"),
                    help="resumable working folder (tables, schedules; default: runs/bench-deployed, git-ignored)")
    ap.add_argument("--out", default=str(RESULTS / "deployed_x86.json"))
    args = parse_args(ap, argv)
    os.environ["TVM_NUM_THREADS"] = str(args.threads)  # kernel rows measured at the same thread count

    from common.timing import interleaved, measure

    from chamtvm.latency.table_sum import table_sum
    from chamtvm.lower.network import lower_arch, lower_torch
    from chamtvm.measure.compile import compile_network, export
    from chamtvm.measure.local import LocalRunner
    from chamtvm.space.model import build_model, input_shape
    from chamtvm.space.schema import SearchSpace
    from chamtvm.table.fill import fill_table, prepare
    from chamtvm.table.store import LatencyTable
    from chamtvm.targets.spec import get_target
    from chamtvm.tuning.policy import TuningTask, tune_tasks
    from chamtvm.tuning.schedules import ScheduleSource
    from chamtvm.tuning.transfer import transfer_schedules

    t_start = time.time()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    target = get_target("x86")
    runner = LocalRunner(target)
    table = LatencyTable(work / "x86.jsonl").load()
    ms_dir = work / "schedules" / "x86"
    out = {"target": target.name, "tvm_target": target.target_json(), "threads": args.threads,
           "note": "shared 2-core VM, contended by other work; median of round medians, spread = IQR/median of all samples",
           "trials_budget": args.trials, "networks": {}}

    nets = {}
    space = SearchSpace.load("fashion")
    rng = np.random.default_rng(args.pick_seed)
    for i in range(args.picks):
        arch = space.sample(rng)
        nets[f"fashion_pick{i}"] = (build_model(space, arch), tuple(input_shape(space, arch)), lower_arch(space, arch, f"pick{i}"))
    wanted = [x for x in args.real.split(",") if x]
    unknown = sorted(set(wanted) - set(REAL))
    if unknown:
        raise SystemExit(f"bench_deployed: unknown --real {unknown}; choose from {sorted(REAL)}")
    for name, (m, shape) in real_models(args.res, wanted).items():
        nets[name] = (m, shape, lower_torch(m, shape, name))
    files = {n: export_torch(m, shape, work / "models" / n.replace("@", "_")) for n, (m, shape, _) in nets.items()}
    print(f"{len(nets)} networks lowered in {time.time() - t_start:.0f} s")

    # default table, the ranking for tuning
    default_src = ScheduleSource(target, use_database=False)
    for n, (_, _, net) in nets.items():
        fill_table(prepare(net.kernels, target, default_src), table, runner, target)
    weights = {}
    for n, (_, _, net) in nets.items():
        pred = table_sum(prepare(net.kernels, target, default_src), table)
        for e in pred.kernels:
            h = e["key"].split("/")[-1]
            weights[h] = weights.get(h, 0.0) + e["total_us"] / max(pred.latency_ms * 1e3, 1e-9)
    kernels = {k.struct_hash: k for _, (_, _, net) in nets.items() for k in net.kernels}
    sched = ScheduleSource(target, ms_dir)
    untuned = [h for h in weights if sched.apply(kernels[h].func)[1] == "default"]
    ranked = sorted(untuned, key=lambda h: -weights[h])[: max(1, args.trials // args.round_trials)]
    t0 = time.time()
    if ranked and args.trials > 0:
        rep = tune_tasks([TuningTask(kernels[h].func, h, kernels[h].name, weights[h]) for h in ranked], target,
                         args.trials, ms_dir, round_trials=args.round_trials, log=print)
        out["tuning"] = {**rep.to_dict(), "kernels": len(ranked)}
    out["tuning_s"] = round(time.time() - t0, 1)
    t0 = time.time()
    tr = transfer_schedules(list(kernels.values()), target, runner, ms_dir, log=print)
    out["transfers"] = [t.to_dict() for t in tr]
    out["transfer_s"] = round(time.time() - t0, 1)
    sched = ScheduleSource(target, ms_dir)

    jobs = {}
    for n, (_, shape, net) in nets.items():
        prep = prepare(net.kernels, target, sched)
        fill_table(prep, table, runner, target)
        pred = table_sum(prep, table)
        dflt = table_sum(prepare(net.kernels, target, default_src), table)
        ins = [[list(a.shape), a.dtype] for a in net.inputs]
        d = work / "libs"
        d.mkdir(exist_ok=True)
        key = n.replace("@", "_")
        export(compile_network(net.fused, target, None), target, d / f"{key}_default.so")
        export(compile_network(net.fused, target, sched), target, d / f"{key}_tuned.so")
        jobs[f"{n}|tvm_default"] = {"kind": "tvm", "lib": str(d / f"{key}_default.so"), "inputs": ins}
        jobs[f"{n}|tvm_tuned"] = {"kind": "tvm", "lib": str(d / f"{key}_tuned.so"), "inputs": ins}
        jobs[f"{n}|onnxruntime"] = {"kind": "ort", "onnx": files[n]["onnx"], "shape": list(shape)}
        jobs[f"{n}|torch"] = {"kind": "torch", "pt2": files[n]["pt2"], "shape": list(shape)}
        prov = {}
        for p in prep:
            prov[p.provenance] = prov.get(p.provenance, 0) + 1
        top = []
        for e in pred.kernels[:5]:
            lat = e["latency_us"]
            top.append({"name": e["name"], "schedule": e["schedule"], "count": e["count"], "latency_us": lat,
                        "share_pct": 100 * e["total_us"] / (pred.latency_ms * 1e3),
                        "gflops": e["flops"] / lat / 1e3 if lat else None,
                        "gbytes_s": e["bytes"] / lat / 1e3 if lat else None})
        out["networks"][n] = {"kernels": len(prep), "provenance": prov, "table_sum_tuned_ms": pred.latency_ms,
                              "table_sum_default_ms": dflt.latency_ms, "missing": len(pred.missing),
                              "top_kernels": top, "flops": float(np.nansum([k.flops * k.count for k in net.kernels]))}
    out["build_s"] = round(time.time() - t_start, 1)

    probe = measure({"kind": "probe"}, args.threads, repeat=5, min_repeat_ms=100)
    out["peak"] = probe
    print("peak probe:", probe)
    print(f"measuring {len(jobs)} jobs x {args.rounds} rounds at {args.threads} threads")
    res = interleaved(jobs, args.threads, args.rounds, repeat=args.repeat)
    for k, v in res.items():
        n, kind = k.split("|")
        out["networks"][n].setdefault("measured", {})[kind] = {kk: v.get(kk) for kk in (
            "median_us", "min_us", "spread_pct", "round_spread_pct", "round_medians_us", "errors", "version")}
    for n, d in out["networks"].items():
        m = {k: v.get("median_us") for k, v in d["measured"].items()}
        if m.get("tvm_tuned") and m.get("onnxruntime"):
            d["tuned_over_ort"] = m["tvm_tuned"] / m["onnxruntime"]
        if m.get("tvm_tuned") and m.get("tvm_default"):
            d["tuning_speedup"] = m["tvm_default"] / m["tvm_tuned"]
        if m.get("tvm_tuned"):
            d["predicted_vs_measured_tuned_pct"] = 100 * (d["table_sum_tuned_ms"] * 1e3 - m["tvm_tuned"]) / m["tvm_tuned"]
        peak = probe.get("gflops")
        if peak:
            for t in d["top_kernels"]:
                t["pct_of_peak_flops"] = 100 * t["gflops"] / peak if t["gflops"] else None
                t["pct_of_peak_bw"] = 100 * t["gbytes_s"] / probe["copy_gbytes_s"] if t["gbytes_s"] else None
        print(f"{n:20s} " + "  ".join(f"{k} {v / 1e3:.3f} ms" for k, v in m.items() if v))
    out["wall_s"] = round(time.time() - t_start, 1)
    write_results(out, args.out, figure=plot)
    return 0


def plot(out: dict, path: Path) -> None:
    plt = pyplot()
    kinds = ["tvm_default", "tvm_tuned", "onnxruntime", "torch"]
    nets = list(out["networks"])
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(nets), 4))
    w = 0.2
    for i, k in enumerate(kinds):
        med = [out["networks"][n]["measured"].get(k, {}).get("median_us") or np.nan for n in nets]
        sp = [out["networks"][n]["measured"].get(k, {}).get("spread_pct") or 0 for n in nets]
        x = np.arange(len(nets)) + (i - 1.5) * w
        ax.bar(x, np.array(med) / 1e3, w, yerr=np.array(med) / 1e3 * np.array(sp) / 200, label=k, capsize=2)
    ax.set_yscale("log")
    ax.set_xticks(np.arange(len(nets)), nets, rotation=15)
    ax.set_ylabel("latency, ms (log; error bar = IQR/2)")
    ax.set_title(f"x86, {out['threads']} threads, contended shared VM")
    ax.legend(fontsize=8)
    save_figure(fig, path, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())

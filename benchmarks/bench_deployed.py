"""Deployed speed: the exported TVM library against ONNX Runtime and torch, on the main
job's picks and on real models, at the target's thread count, interleaved rounds, every
measurement in its own process.

Two phases, so that only timings run on a quiet machine:

  prepare   (CPU-heavy, resumable: run it under a heavy-work wrapper (not beside a timing)) lowers every network for
            the target (its ``conv_layout``), builds three TVM libraries per network and the
            ONNX / torch.export files:
              tvm_default   TVM's default schedules (no database),
              tvm_main      the main job's schedules (``--main-schedules``: its database,
                            tuned and transferred records),
              tvm_tuned     after ``tune-model`` (``deploy.tune_network``: transfer first,
                            then ``--trials`` MetaSchedule trials on the network's costliest
                            kernels) on a copy of the main job's database;
            the table sums before and after, and the top kernels' rows, into the manifest.
  collect   (instead of prepare; cheap, builds nothing) takes the main job's exported pick
            folders as they are (``export.json``: the library, model.onnx, model.pt2, the
            input shape, each kernel's schedule tag), copied into the working folder:
            ``tvm_main`` is then the exported library itself.
  measure   (the timing: run it under ../shared/tools/quiet-run) times every library, ONNX
            Runtime (CPU EP, all graph optimisations) and torch (torch.export program,
            eager) in ``--rounds`` interleaved rounds of separate processes, probes this
            machine's peak (numpy matmul GFLOP/s, copy GB/s) and writes the results JSON and
            plot (its provenance block holds the harness's own quiet-run-style noise record).

    python benchmarks/bench_deployed.py prepare --picks runs/tune-x86/*/arch.json \\
        --main-schedules WORKDIR/schedules/x86 [--real mobilenet_v2,resnet18] [--res 128,224] [--trials 256]
    python benchmarks/bench_deployed.py collect --exports WORKDIR/runs/tune-x86/*/export.json
    ../shared/tools/quiet-run --wait 3600 --record runs/quiet.jsonl -- \\
        python benchmarks/bench_deployed.py measure [--rounds 5] [--threads 1]

Writes benchmarks/results/deployed_<target>.json and .png (``--out``).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from pathlib import Path

import numpy as np

from common import (RESULTS, RUNS, argument_parser, git_state, latency_bars, parse_args, pyplot, save_figure, utc_now,
                    write_results)

warnings.filterwarnings("ignore")
KINDS = ("tvm_default", "tvm_main", "tvm_tuned", "onnxruntime", "torch")


# ------------------------------------------------------------------------ prepare
def _networks(args, target, work: Path) -> dict:
    """name -> (LoweredNetwork, {"onnx", "pt2", "shape"}) for the picks and the real models."""
    import torch

    from chamtvm.lower.network import lower_arch, lower_onnx, read_arch
    from chamtvm.space.model import build_model, input_shape
    from chamtvm.zoo import real

    nets = {}
    for i, path in enumerate(args.picks):
        path = Path(path)
        space, arch = read_arch(path)
        name = f"pick_{path.parent.name or i}"
        files = {"onnx": path.parent / "model.onnx", "pt2": path.parent / "model.pt2",
                 "shape": list(input_shape(space, arch))}
        if not (files["onnx"].exists() and files["pt2"].exists()):
            out = work / "models" / name
            files.update(_export_torch(build_model(space, arch), files["shape"], out))
        nets[name] = (lower_arch(space, arch, name, **target.lowering()), files)
    for model in [m for m in args.real.split(",") if m]:
        for res in args.res:
            name = f"{model}@{res}"
            out = work / "models" / name.replace("@", "_")
            files = {"onnx": out / "model.onnx", "pt2": out / "model.pt2", "shape": [1, 3, res, res]}
            if not (files["onnx"].exists() and files["pt2"].exists()):
                real.export_onnx(model, res, files["onnx"])
                with torch.no_grad():
                    torch.export.save(torch.export.export(real.build(model), (torch.zeros(*files["shape"]),)),
                                      str(files["pt2"]))
            net = lower_onnx(files["onnx"], **target.lowering())
            net.name = name
            nets[name] = (net, files)
    return nets


def _export_torch(model, shape, out: Path) -> dict:
    import torch

    out.mkdir(parents=True, exist_ok=True)
    x = torch.zeros(*shape)
    torch.onnx.export(model, (x,), str(out / "model.onnx"), input_names=["x"], opset_version=17, dynamo=False)
    torch.export.save(torch.export.export(model, (x,)), str(out / "model.pt2"))
    return {"onnx": out / "model.onnx", "pt2": out / "model.pt2"}


def _top_kernels(prepared, table, n: int = 5) -> list[dict]:
    from chamtvm.latency.table_sum import table_sum

    pred = table_sum(prepared, table)
    total = max(pred.latency_ms * 1e3, 1e-9)
    out = []
    for e in pred.kernels[:n]:
        lat = e["latency_us"]
        out.append({"name": e["name"], "schedule": e["schedule"], "count": e["count"], "latency_us": lat,
                    "share_pct": 100 * e["total_us"] / total, "gflops": e["flops"] / lat / 1e3 if lat else None,
                    "gbytes_s": e["bytes"] / lat / 1e3 if lat else None})
    return out


def prepare(args) -> dict:
    from chamtvm.deploy.tune_network import tune_network
    from chamtvm.measure.compile import compile_network, export
    from chamtvm.measure.runners import make_runner
    from chamtvm.table.fill import prepare as prepare_kernels
    from chamtvm.table.store import LatencyTable
    from chamtvm.targets.spec import get_target
    from chamtvm.tuning.schedules import ScheduleSource

    target = get_target(args.target)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    manifest_path = work / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"networks": {}}
    manifest.update(target=target.name, conv_layout=target.conv_layout, fast_math=target.fast_math,
                    schedule_rules=target.schedule_rules,
                    lanes=target.lanes, threads=target.runtime_threads, main_schedules=str(args.main_schedules),
                    trials=args.trials, prepared_at=utc_now(), prepared_git=git_state())
    table = LatencyTable(work / "luts" / f"{target.name}.jsonl").load()
    tm_dir = work / "schedules-tune-model" / target.name
    if not tm_dir.exists():
        tm_dir.parent.mkdir(parents=True, exist_ok=True)
        if args.main_schedules and Path(args.main_schedules).exists():
            shutil.copytree(args.main_schedules, tm_dir, ignore=shutil.ignore_patterns("*.lock", "logs"))
        else:
            tm_dir.mkdir()
    sources = {"tvm_default": ScheduleSource(target, use_database=False),
               "tvm_main": ScheduleSource(target, args.main_schedules) if args.main_schedules else None,
               "tvm_tuned": ScheduleSource(target, tm_dir)}
    nets = _networks(args, target, work)
    with make_runner(target) as runner:
        for name, (net, files) in nets.items():
            entry = manifest["networks"].get(name)
            libs = work / "libs"
            if entry and all(Path(p).exists() for p in entry["libs"].values()):
                print(f"{name}: prepared already")
                continue
            t0 = time.time()
            tuning = tune_network(net, target, args.trials, table, sources["tvm_tuned"], runner,
                                  args.trials_per_kernel, args.population, log=print)
            entry = {"onnx": str(files["onnx"]), "pt2": str(files["pt2"]), "shape": files["shape"],
                     "inputs": [[list(a.shape), a.dtype] for a in net.inputs], "kernels": len(net.kernels),
                     "flops": float(np.nansum([k.flops * k.count for k in net.kernels])),
                     "kernel_calls": sum(k.count for k in net.kernels), "tune_model": tuning.to_dict(), "libs": {}}
            for kind, src in sources.items():
                if src is None:
                    continue
                path = libs / f"{name.replace('@', '_')}_{kind}.so"
                export(compile_network(net.fused, target, src), target, path)
                entry["libs"][kind] = str(path)
            entry["top_kernels_tuned"] = _top_kernels(prepare_kernels(net.kernels, target, sources["tvm_tuned"]), table)
            entry["prepare_s"] = round(time.time() - t0, 1)
            manifest["networks"][name] = entry
            manifest_path.write_text(json.dumps(manifest, indent=1))
            print(f"{name}: table sum default {tuning.default_ms:.3f} ms, main {tuning.before_ms:.3f} ms, "
                  f"after tune-model {tuning.after_ms:.3f} ms ({tuning.trials_spent} trials, {tuning.seconds:.0f} s)")
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return manifest


def collect(args) -> dict:
    """Manifest entries for the main job's exported picks, as exported (nothing built)."""
    work = Path(args.work)
    manifest_path = work / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"networks": {}}
    manifest.update(collected_at=utc_now(), collected_git=git_state(), exports=[Path(p).parent.name for p in args.exports])
    for path in map(Path, args.exports):
        exp = json.loads(path.read_text())
        name = f"pick_{path.parent.name}"
        dest = work / "picks" / path.parent.name
        dest.mkdir(parents=True, exist_ok=True)
        files = {}
        for kind in ("library", "onnx", "torch_export", "arch"):
            src = Path(exp["paths"][kind])
            shutil.copy2(src, dest / src.name)
            files[kind] = str(dest / src.name)
        tags = [k.split("/")[1] for k in exp["stamp"]["kernel_keys"]]
        shape = exp["paths"]["input_shape"]
        manifest["threads"] = exp["paths"].get("runtime_threads")
        manifest["networks"][name] = {
            "onnx": files["onnx"], "pt2": files["torch_export"], "shape": shape, "inputs": [[shape, "float32"]],
            "kernels": len(tags), "schedule_tags": {t: tags.count(t) for t in sorted(set(tags))},
            "exported_from": path.parent.name, "libs": {"tvm_main": files["library"]}}
        print(f"{name}: {len(tags)} kernels, schedules {manifest['networks'][name]['schedule_tags']}")
    work.mkdir(parents=True, exist_ok=True)
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return manifest


# ------------------------------------------------------------------------ measure
def measure(args) -> dict:
    from common.timing import interleaved, manifest_jobs, measure as measure_job, per_network

    work = Path(args.work)
    manifest = json.loads((work / "manifest.json").read_text())
    threads = args.threads or manifest["threads"] or os.cpu_count()
    jobs = manifest_jobs(manifest["networks"])
    out = {"prepared": {k: manifest.get(k) for k in (
        "target", "conv_layout", "fast_math", "schedule_rules", "lanes", "main_schedules", "trials", "prepared_at", "prepared_git",
        "collected_at", "collected_git", "exports") if k in manifest},
           "threads": threads, "rounds": args.rounds, "repeat": args.repeat,
           "how": "median of round medians; spread = IQR/median of all samples; each job a fresh process, "
                  "jobs in a rotating order each round", "networks": {}}
    t0 = time.time()
    probe = measure_job({"kind": "probe"}, threads, repeat=5, min_repeat_ms=100)
    out["peak"] = probe
    print("peak probe:", probe)
    print(f"measuring {len(jobs)} jobs x {args.rounds} rounds at {threads} threads")
    res = interleaved(jobs, threads, args.rounds, repeat=args.repeat)
    out["networks"] = per_network(res, ("median_us", "min_us", "spread_pct", "round_spread_pct", "round_medians_us",
                                        "errors", "version"))
    for name, d in out["networks"].items():
        e = manifest["networks"][name]
        d.update({k: e[k] for k in ("kernels", "kernel_calls", "flops", "schedule_tags", "exported_from") if k in e})
        tm = e.get("tune_model")  # absent for collected (exported, not built here) picks
        if tm:
            d.update(table_sum_ms={"default": tm["default_ms"], "main": tm["before_ms"], "tuned": tm["after_ms"]},
                     tune_model={k: tm[k] for k in ("trials_budget", "trials_spent", "seconds", "provenance_before",
                                                     "provenance_after")})
        d["top_kernels"] = e.get("top_kernels_tuned", [])
        m = {k: (v or {}).get("median_us") for k, v in d["measured"].items()}
        ort = m.get("onnxruntime")
        d["over_ort"] = {k: m[k] / ort for k in ("tvm_default", "tvm_main", "tvm_tuned") if m.get(k) and ort}
        if m.get("tvm_tuned") and tm:
            d["predicted_vs_measured_tuned_pct"] = 100 * (tm["after_ms"] * 1e3 - m["tvm_tuned"]) / m["tvm_tuned"]
        for t in d["top_kernels"]:
            t["pct_of_peak_flops"] = 100 * t["gflops"] / probe["gflops"] if t.get("gflops") and "gflops" in probe else None
            t["pct_of_peak_bw"] = (100 * t["gbytes_s"] / probe["copy_gbytes_s"]
                                   if t.get("gbytes_s") and "copy_gbytes_s" in probe else None)
        print(f"{name:28s} " + "  ".join(f"{k} {v / 1e3:.3f} ms" for k, v in m.items() if v))
    out["wall_s"] = round(time.time() - t0, 1)
    write_results(out, args.out, figure=plot)
    return out


def plot(out: dict, path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(2.2 + 1.5 * len(out["networks"]), 4.2))
    latency_bars(ax, out["networks"], KINDS, "latency, ms (log; error bar = IQR/2)")
    ax.set_title(f"{out['prepared'].get('target') or 'x86'}, {out['threads']} threads, conv layout "
                 f"{out['prepared'].get('conv_layout') or 'NCHW'}")
    save_figure(fig, path, dpi=120)


def main(argv=None) -> int:
    ap = argument_parser(__doc__)
    sub = ap.add_subparsers(dest="phase", required=True)
    p = sub.add_parser("prepare", help="lower, tune, build (CPU-heavy, resumable)")
    p.add_argument("--target", default="x86")
    p.add_argument("--picks", nargs="*", default=[], help="the main job's exported arch.json files")
    p.add_argument("--main-schedules", default=None, help="the main job's schedules/<target> folder")
    p.add_argument("--real", default="mobilenet_v2,resnet18,efficientnet_b0,mobilenet_v4_conv_small")
    p.add_argument("--res", type=lambda s: [int(x) for x in s.split(",")], default=[128, 224])
    p.add_argument("--trials", type=int, default=256, help="tune-model's MetaSchedule trials per network")
    p.add_argument("--trials-per-kernel", type=int, default=32)
    p.add_argument("--population", type=int, default=128)
    c = sub.add_parser("collect", help="take the main job's exported picks as they are (builds nothing)")
    c.add_argument("--exports", nargs="+", type=Path, required=True, help="the picks' export.json files")
    sub.add_parser("measure", help="time everything (run under quiet-run)")
    sub.choices["measure"].add_argument("--rounds", type=int, default=5)
    sub.choices["measure"].add_argument("--repeat", type=int, default=10)
    sub.choices["measure"].add_argument("--threads", type=int, default=None, help="default: the target's")
    for q in sub.choices.values():
        q.add_argument("--work", default=str(RUNS / "bench-deployed"), help="working folder (git-ignored)")
        q.add_argument("--out", default=str(RESULTS / "deployed_x86.json"))
    args = parse_args(ap, argv)
    {"prepare": prepare, "collect": collect, "measure": measure}[args.phase](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

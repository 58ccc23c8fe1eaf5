"""Fast math on a target (``"fast_math"`` in ``targets/*.json``, ``lower.fast_math``): the
same network lowered with TVM's exact exponential (one scalar ``expf`` call per element) and
with the fast polynomial, both at TVM's default schedules, timed interleaved in separate
processes at the target's thread count, with ONNX Runtime beside them; per network the
outputs' largest difference (fast against exact, on one random input) and the kernels whose
loop body changed.

Two phases, so that only timings run on a quiet machine:

  prepare   (CPU-heavy: builds) exports each zoo model to ONNX at ``--res`` px, lowers it
            both ways, builds both libraries, runs both on one input and writes the manifest;
  measure   (the timing: run it under ../shared/tools/quiet-run) times every library and
            ONNX Runtime in ``--rounds`` interleaved rounds and writes the results JSON and plot.

    python benchmarks/bench_fast_math.py prepare [--models efficientnet_b0,...] [--res 128]
    ../shared/tools/quiet-run --record runs/quiet_records.jsonl -- \\
        python benchmarks/bench_fast_math.py measure [--rounds 5]

Writes benchmarks/results/fast_math_<target>.json and .png (``--out``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from common import REPO, RESULTS, argument_parser, git_state, one_blas_thread, parse_args, pyplot, save_figure, utc_now, \
    write_results

one_blas_thread()

import numpy as np  # noqa: E402

# zoo models whose activations use exp: SiLU (EfficientNet, MixNet, MobileViT, EfficientNetV2),
# squeeze-excitation sigmoid (RegNetY), GELU (erf) and softmax (the ViT hybrid, ConvNeXt)
MODELS = "efficientnet_b0,efficientnet_v2_s_x0_5,mixnet_s,mobilevit_xxs,regnet_y_400mf,vit_hybrid_tiny,convnext_atto"
RUNS = REPO / "runs" / "bench-fast-math"
KINDS = ("exact", "fast")


def prepare(args) -> dict:
    import tvm

    from chamtvm.lower.network import lower_onnx
    from chamtvm.measure.compile import compile_network, export
    from chamtvm.targets.spec import get_target
    from chamtvm.tuning.schedules import ScheduleSource
    from chamtvm.zoo import real

    target = get_target(args.target)
    work = Path(args.work)
    manifest_path = work / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"networks": {}}
    manifest.update(target=target.name, threads=target.runtime_threads, prepared_at=utc_now(),
                    prepared_git=git_state())
    default = ScheduleSource(target, use_database=False)
    rng = np.random.default_rng(0)
    for model in [m for m in args.models.split(",") if m]:
        name = f"{model}@{args.res}"
        if name in manifest["networks"] and all(Path(p).exists() for p in manifest["networks"][name]["libs"].values()):
            print(f"{name}: prepared already")
            continue
        t0 = time.time()
        onnx = real.export_onnx(model, args.res, work / "models" / f"{model}_{args.res}.onnx")
        nets = {kind: lower_onnx(onnx, layout=target.conv_layout, fast_math=kind == "fast") for kind in KINDS}
        shape = [list(a.shape) for a in nets["exact"].inputs]
        x = [rng.uniform(-1, 1, s).astype("float32") for s in shape]
        entry = {"onnx": str(onnx), "shape": shape[0], "inputs": [[s, "float32"] for s in shape], "libs": {}, "outputs": {}}
        for kind, net in nets.items():
            lib = compile_network(net.fused, target, default)
            path = work / "libs" / f"{model}_{args.res}_{kind}.so"
            export(lib, target, path)
            entry["libs"][kind] = str(path)
            vm = tvm.relax.VirtualMachine(lib, tvm.cpu())
            out = vm["main"](*[tvm.runtime.tensor(a) for a in x])
            entry["outputs"][kind] = (out if hasattr(out, "numpy") else out[0]).numpy().ravel().tolist()
        exact, fast = (np.asarray(entry["outputs"][k]) for k in KINDS)
        entry["max_abs_diff"] = float(np.max(np.abs(fast - exact)))
        entry["max_rel_diff"] = float(np.max(np.abs(fast - exact)) / max(np.max(np.abs(exact)), 1e-30))
        entry["outputs"] = {k: len(v) for k, v in entry["outputs"].items()}  # sizes only: the JSON stays small
        hashes = {kind: {k.struct_hash: k.name for k in net.kernels} for kind, net in nets.items()}
        entry["kernels"] = {"exact": len(hashes["exact"]), "fast": len(hashes["fast"]),
                            "rewritten_exact": sorted(hashes["exact"][h] for h in set(hashes["exact"]) - set(hashes["fast"])),
                            "rewritten_fast": sorted(hashes["fast"][h] for h in set(hashes["fast"]) - set(hashes["exact"]))}
        entry["prepare_s"] = round(time.time() - t0, 1)
        manifest["networks"][name] = entry
        work.mkdir(parents=True, exist_ok=True)
        manifest_path.write_text(json.dumps(manifest, indent=1))
        print(f"{name}: {len(entry['kernels']['rewritten_fast'])} kernels rewritten, outputs differ by "
              f"{entry['max_abs_diff']:.2e} at most ({entry['max_rel_diff']:.2e} of the largest)")
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return manifest


def measure(args) -> dict:
    from common.timing import interleaved, manifest_jobs, per_network

    work = Path(args.work)
    manifest = json.loads((work / "manifest.json").read_text())
    threads = args.threads or manifest["threads"] or os.cpu_count()
    jobs = manifest_jobs(manifest["networks"], torch=False)
    out = {"prepared": {k: manifest.get(k) for k in ("target", "prepared_at", "prepared_git")},
           "threads": threads, "rounds": args.rounds, "repeat": args.repeat, "schedules": "TVM's default (no database)",
           "how": "median of round medians; spread = IQR/median of all samples; each job a fresh process, "
                  "jobs in a rotating order each round", "networks": {}}
    t0 = time.time()
    print(f"measuring {len(jobs)} jobs x {args.rounds} rounds at {threads} threads")
    res = interleaved(jobs, threads, args.rounds, repeat=args.repeat)
    out["networks"] = per_network(res, ("median_us", "spread_pct", "round_spread_pct", "round_medians_us", "errors",
                                        "version"))
    for name, d in out["networks"].items():
        e = manifest["networks"][name]
        d.update({k: e[k] for k in ("kernels", "max_abs_diff", "max_rel_diff")})
        m = {k: (v or {}).get("median_us") for k, v in d["measured"].items()}
        if m.get("exact") and m.get("fast"):
            d["fast_over_exact"] = m["fast"] / m["exact"]
            rounds = [f / x for f, x in zip(d["measured"]["fast"]["round_medians_us"],
                                            d["measured"]["exact"]["round_medians_us"])]
            d["fast_over_exact_rounds"] = rounds
        if m.get("onnxruntime"):
            d["over_ort"] = {k: m[k] / m["onnxruntime"] for k in KINDS if m.get(k)}
        print(f"{name:28s} " + "  ".join(f"{k} {v / 1e3:.3f} ms" for k, v in m.items() if v)
              + (f"  fast/exact {d['fast_over_exact']:.3f}" if "fast_over_exact" in d else ""))
    out["wall_s"] = round(time.time() - t0, 1)
    write_results(out, args.out, figure=plot)
    return out


def plot(out: dict, path: Path) -> None:
    plt = pyplot()
    nets = [n for n in out["networks"] if "fast_over_exact_rounds" in out["networks"][n]]
    fig, ax = plt.subplots(figsize=(2.5 + 1.2 * len(nets), 4.0))
    for i, n in enumerate(nets):
        r = out["networks"][n]["fast_over_exact_rounds"]
        ax.scatter([i] * len(r), r, s=12, color="grey")
        ax.bar(i, out["networks"][n]["fast_over_exact"], 0.6, alpha=0.6)
    ax.axhline(1.0, color="k", lw=0.8)
    lows = [min(out["networks"][n]["fast_over_exact_rounds"]) for n in nets] or [1.0]
    highs = [max(out["networks"][n]["fast_over_exact_rounds"]) for n in nets] or [1.0]
    ax.set_ylim(min(0.9, min(lows) - 0.02), max(1.05, max(highs) + 0.02))  # the ratios differ by a few per cent
    ax.set_xticks(range(len(nets)), nets, rotation=20, ha="right")
    ax.set_ylabel("fast / exact latency (default schedules)\nbar: median; dots: per round")
    ax.set_title(f"{out['prepared'].get('target')}, {out['threads']} threads: fast math against exact exp")
    save_figure(fig, path, dpi=120)


def main(argv=None) -> int:
    ap = argument_parser(__doc__)
    sub = ap.add_subparsers(dest="phase", required=True)
    p = sub.add_parser("prepare", help="lower both ways and build (CPU-heavy)")
    p.add_argument("--target", default="x86")
    p.add_argument("--models", default=MODELS)
    p.add_argument("--res", type=int, default=128)
    m = sub.add_parser("measure", help="time everything (run under quiet-run)")
    m.add_argument("--rounds", type=int, default=5)
    m.add_argument("--repeat", type=int, default=10)
    m.add_argument("--threads", type=int, default=None, help="default: the target's")
    for q in (p, m):
        q.add_argument("--work", default=str(RUNS), help="working folder (git-ignored)")
        q.add_argument("--out", default=str(RESULTS / "fast_math_x86.json"))
    args = parse_args(ap, argv)
    {"prepare": prepare, "measure": measure}[args.phase](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Relax weight pre-packing on x86: MetaSchedule with the weights' layout free, against the
same tuning with the weights as they are.

TVM's way to pre-pack weights for a CPU (``relax.pipeline.static_shape_tuning_pipeline`` with
``cpu_weight_prepack=True``): ``AttachAttrLayoutFreeBuffers`` marks every kernel argument fed by
a constant (the weights) as layout-free, MetaSchedule's ``RewriteLayout`` postprocessor then lets
each tuned schedule read its weights in the layout its loops want (a packed copy), and after
the database is applied ``SplitLayoutRewritePreproc`` moves each layout rewrite into its own
function, which ``FoldConstant`` runs at compile time on the weights, so the deployed library
carries packed weights and does no packing per run.

Two phases, so that only the timing runs on a quiet machine:

  prepare   for each model (an architecture JSON of a space, or an ONNX file), lowered for
            the target as chamtvm lowers it (``TargetSpec.lowering()``), two MetaSchedule
            tunings from an empty database with the same budget, every kernel the same number
            of trials (``--trials-per-kernel``, one round each, so the two tunings cover the
            same kernels): ``plain`` (weights as they are, chamtvm's deployed flow) and
            ``prepack`` (the three passes above); both exported. The best measured time of
            each kernel in each database goes to the manifest.
  measure   (the timing: under ../shared/tools/quiet-run) both libraries and ONNX Runtime on
            the model's ONNX file, ``--rounds`` interleaved rounds, each measurement in its
            own process, ``--threads`` threads.

    python benchmarks/bench_weight_prepack.py prepare --models runs/tune-x86/macro-3.57ms/arch.json [--trials-per-kernel 32]
    ../shared/tools/quiet-run --record runs/quiet_records.jsonl -- python benchmarks/bench_weight_prepack.py measure

Writes ``benchmarks/results/weight_prepack_<target>.json`` and ``.png``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from common import RESULTS, RUNS, argument_parser, git_state, parse_args, pyplot, save_figure, utc_now, write_results

VARIANTS = ("plain", "prepack")


def _kernel_key(func) -> str:
    """A kernel's identity in both variants: its structural hash without its symbol and without
    the layout-free mark the pre-packing variant adds."""
    import tvm_ffi

    for attr in ("global_symbol", "layout_free_buffers"):
        if func.attrs is not None and attr in func.attrs:
            func = func.without_attr(attr)
    return str(tvm_ffi.structural_hash(func))


def _best_per_kernel_us(work: Path, names: dict[str, str]) -> dict[str, float]:
    """Kernel name (``names``: kernel key -> name) -> the best mean run time of its records in a
    MetaSchedule JSON database (us)."""
    import numpy as np
    from tvm.s_tir import meta_schedule as ms

    db = ms.database.JSONDatabase(work_dir=str(work), allow_missing=False)
    out: dict[str, float] = {}
    for rec in db.get_all_tuning_records():
        if not rec.run_secs:
            continue
        name = names.get(_kernel_key(rec.workload.mod["main"]), "?")
        t = float(np.mean([float(x) for x in rec.run_secs])) * 1e6
        out[name] = min(out.get(name, float("inf")), t)
    return out


def _tune_and_export(net, target, variant: str, trials_per_kernel: int, work: Path, lib: Path) -> dict:
    """One variant of one model tuned from an empty database and exported to ``lib``."""
    import tvm
    from tvm import relax
    from tvm.s_tir import meta_schedule as ms

    from tvm import tirx

    from chamtvm.tuning.metaschedule import ms_builder_runner
    from chamtvm.tuning.space import space_generator

    mod = net.fused
    names = {_kernel_key(f): gv.name_hint for gv, f in mod.functions.items() if isinstance(f, tirx.PrimFunc)}
    if variant == "prepack":  # (renames the kernels it marks: ``names`` are the plain module's)
        mod = relax.transform.AttachAttrLayoutFreeBuffers()(mod)
    tt = target.tvm()
    n_kernels = len(names)
    t0 = time.time()
    with ms_builder_runner(target) as (builder, runner):
        db = ms.relax_integration.tune_relax(
            mod, {}, tt, str(work), max_trials_global=trials_per_kernel * n_kernels,
            max_trials_per_task=trials_per_kernel, num_trials_per_iter=trials_per_kernel,
            builder=builder, runner=runner, space=space_generator(target), seed=0)
    tune_s = time.time() - t0
    with tt, db, tvm.transform.PassContext(opt_level=3):
        mod = relax.transform.MetaScheduleApplyDatabase(enable_warning=False)(mod)
    if variant == "prepack":
        with tt:
            mod = tvm.transform.Sequential([relax.transform.SplitLayoutRewritePreproc(),
                                             relax.transform.FoldConstant()])(mod)
    ex = tvm.compile(mod, tt, relax_pipeline=relax.get_default_pipeline(tt))
    lib.parent.mkdir(parents=True, exist_ok=True)
    ex.export_library(str(lib))
    return {"lib": str(lib), "tune_s": round(tune_s, 1), "kernels": n_kernels,
            "best_kernel_us": _best_per_kernel_us(work, names)}


def prepare(args) -> int:
    from chamtvm.lower.network import load_model
    from chamtvm.targets.spec import get_target

    target = get_target(args.target)
    work = Path(args.workdir)
    manifest_path = work / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {
        "target": args.target, "trials_per_kernel": args.trials_per_kernel, "networks": {},
        "prepared_at": utc_now(), "prepared_git": git_state()}
    for path in map(Path, args.models):
        name = path.parent.name if path.name in ("arch.json", "model.onnx") else path.stem
        entry = manifest["networks"].setdefault(name, {"model": str(path)})
        net = load_model(path, **target.lowering())
        onnx = path if path.suffix == ".onnx" else path.parent / "model.onnx"
        entry.update({"inputs": [a.to_list() for a in net.inputs], "onnx": str(onnx) if onnx.exists() else None,
                      "shape": list(net.inputs[0].shape)})
        for variant in VARIANTS:
            if variant in entry:
                continue
            print(f"{name}: tuning {variant} ({args.trials_per_kernel} trials per kernel)", flush=True)
            entry[variant] = _tune_and_export(net, target, variant, args.trials_per_kernel,
                                              work / "db" / name / variant, work / "libs" / f"{name}_{variant}.so")
            manifest_path.parent.mkdir(parents=True, exist_ok=True)
            manifest_path.write_text(json.dumps(manifest, indent=1))
    return 0


def plot(result: dict, png: Path) -> None:
    plt = pyplot()
    names = list(result["networks"])
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(names) + 1.8))
    kinds = [("plain", "TVM, weights as they are"), ("prepack", "TVM, pre-packed weights"), ("onnxruntime", "ONNX Runtime")]
    h = 0.8 / len(kinds)
    for j, (k, label) in enumerate(kinds):
        ys = [i + j * h for i in range(len(names))]
        xs = [result["networks"][n]["measured"].get(k, {}).get("median_us", 0) / 1e3 for n in names]
        ax.barh(ys, xs, height=h, label=label)
    ax.set_yticks([i + h for i in range(len(names))], names)
    ax.set_xlabel(f"ms per run, {result['threads']} thread(s), median of {result['rounds']} rounds")
    ax.set_title(f"weight pre-packing on {result['target']}, {result['trials_per_kernel']} trials per kernel", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, png)


def measure(args) -> int:
    from common.timing import interleaved, per_network

    work = Path(args.workdir)
    manifest = json.loads((work / "manifest.json").read_text())
    jobs = {}
    for name, e in manifest["networks"].items():
        for v in VARIANTS:
            if v in e:
                jobs[f"{name}|{v}"] = {"kind": "tvm", "lib": e[v]["lib"], "inputs": e["inputs"]}
        if e.get("onnx"):
            jobs[f"{name}|onnxruntime"] = {"kind": "ort", "onnx": e["onnx"], "shape": e["shape"]}
    res = interleaved(jobs, args.threads, args.rounds)
    nets = per_network(res, ("median_us", "min_us", "spread_pct", "round_spread_pct", "round_medians_us", "errors"))
    for name, n in nets.items():
        m, e = n["measured"], manifest["networks"][name]
        if "plain" in m and "prepack" in m and m["plain"].get("median_us"):
            n["prepack_over_plain"] = m["prepack"]["median_us"] / m["plain"]["median_us"]
        if m.get("onnxruntime", {}).get("median_us"):
            n.update({f"{v}_over_ort": m[v]["median_us"] / m["onnxruntime"]["median_us"] for v in VARIANTS if v in m})
        common = sorted(set(e["plain"]["best_kernel_us"]) & set(e["prepack"]["best_kernel_us"]))
        n["kernels_in_both"] = len(common)
        n["tuning_kernel_sum_us"] = {v: sum(e[v]["best_kernel_us"][k] for k in common) for v in VARIANTS}
        n["tune_s"] = {v: e[v]["tune_s"] for v in VARIANTS}
    result = {"what": "exported library with MetaSchedule weight pre-packing (layout-free weights, RewriteLayout, "
                      "packing folded at compile time) against the same tuning without it",
              "target": manifest["target"], "trials_per_kernel": manifest["trials_per_kernel"],
              "threads": args.threads, "rounds": args.rounds, "prepared_at": manifest["prepared_at"],
              "prepared_git": manifest["prepared_git"], "networks": nets}
    write_results(result, RESULTS / f"{args.results_name or 'weight_prepack_' + manifest['target']}.json", figure=plot)
    return 0


def main(argv=None) -> int:
    ap = argument_parser(__doc__)
    ap.add_argument("phase", choices=("prepare", "measure"))
    ap.add_argument("--models", nargs="+", default=[], help="architecture JSON or ONNX files (prepare)")
    ap.add_argument("--target", default="x86")
    ap.add_argument("--trials-per-kernel", type=int, default=32)
    ap.add_argument("--workdir", default=str(RUNS / "bench-weight-prepack"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--results-name", default=None)
    args = parse_args(ap, argv)
    if args.phase == "prepare":
        if not args.models:
            ap.error("prepare needs --models")
        return prepare(args)
    return measure(args)


if __name__ == "__main__":
    os.environ.setdefault("TVM_NUM_THREADS", "1")
    raise SystemExit(main())

"""Which convolution layout and MetaSchedule rules make the exported network fastest on this
CPU: the target data ``conv_layout`` and ``schedule_rules`` are kept only where this says so.

Each variant is the target with other ``conv_layout`` / ``schedule_rules`` values
(``nchw16c_default``: convolutions in 16-channel blocks, weights packed at compile time,
``lower.blocked``). For each
variant and network, from an empty schedules folder, ``deploy.tune_network`` spends the same
``--trials`` on the network's own kernels (costliest first, then transfers to the rest of
each kind), and the network's library is built with those schedules (and once with TVM's
default schedules). Two phases, so that only timings run on a quiet machine:

  prepare  (CPU-heavy, resumable: run it under a heavy-work wrapper (not beside a timing)) tunes and builds;
  measure  (run under ../shared/tools/quiet-run) times all libraries of a network
           alternately in one process per round (``--rounds``), at the target's threads;
           per network the speed-up of each variant over the NCHW/default-rules one is the
           median of per-repeat ratios, with its spread.

    python benchmarks/bench_layout.py prepare [--networks pick0,mobilenet_v2@128,LABEL=runs/.../arch.json]
        [--variants nchw_default,nchw16c_default] [--trials 48]
    ../shared/tools/quiet-run --wait 3600 -- python benchmarks/bench_layout.py measure

Writes benchmarks/results/layout_x86.json (``--out``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np

from common import RESULTS, RUNS, argument_parser, parse_args, write_results

warnings.filterwarnings("ignore")
VARIANTS = {"nchw_default": ("NCHW", "default"), "nhwc_default": ("NHWC", "default"),
            "nhwc_wide": ("NHWC", "wide-vector"), "nchw16c_default": ("NCHW16c", "default")}
BASELINE = "nchw_default"


def _network(name: str, layout: str, work: Path):
    """``pick<i>`` (the i-th seeded sample of the fashion space, seed 2026, as the main job's
    picks were drawn in earlier rounds), ``LABEL=PATH`` (an exported ``arch.json``, e.g. a
    main job's pick) or ``<real model>@<px>`` of ``zoo.real``, lowered in ``layout``."""
    from chamtvm.lower.network import lower_arch, lower_onnx, read_arch
    from chamtvm.space.schema import SearchSpace
    from chamtvm.zoo import real

    if "=" in name:
        label, path = name.split("=", 1)
        space, arch = read_arch(Path(path))
        return lower_arch(space, arch, label, layout=layout)
    if name.startswith("pick"):
        space = SearchSpace.load("fashion")
        rng = np.random.default_rng(2026)
        archs = [space.sample(rng) for _ in range(int(name[4:]) + 1)]
        return lower_arch(space, archs[-1], name, layout=layout)
    model, res = name.split("@")
    path = work / "models" / f"{model}_{res}.onnx"
    if not path.exists():
        real.export_onnx(model, int(res), path)
    net = lower_onnx(path, layout=layout)
    net.name = name
    return net


def prepare(args) -> dict:
    from chamtvm.deploy.tune_network import tune_network
    from chamtvm.measure.compile import compile_network, export
    from chamtvm.measure.runners import make_runner
    from chamtvm.table.store import LatencyTable
    from chamtvm.targets.spec import get_target
    from chamtvm.tuning.schedules import ScheduleSource

    base = get_target(args.target)
    work = Path(args.work)
    manifest_path = work / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"libs": {}, "tuning": {}}
    manifest.update(target=base.name, lanes=base.lanes, threads=base.runtime_threads, trials=args.trials)
    table = LatencyTable(work / "luts" / f"{base.name}.jsonl").load()
    with make_runner(base) as runner:
        for net_name in args.networks.split(","):
            for variant in args.variants.split(","):
                key = f"{net_name.split('=')[0]}|{variant}"
                if key in manifest["libs"] and all(Path(p).exists() for p in manifest["libs"][key].values()):
                    continue
                layout, rules = VARIANTS[variant]
                target = dataclasses.replace(base, conv_layout=layout, schedule_rules=rules)
                net = _network(net_name, layout, work)
                sched = ScheduleSource(target, work / "schedules" / variant)
                res = tune_network(net, target, args.trials, table, sched, runner, args.trials_per_kernel,
                                   args.population, log=print)
                libs = {}
                for kind, src in (("default", None), ("tuned", sched)):
                    path = work / "libs" / f"{key.split('|')[0].replace('@', '_')}_{variant}_{kind}.so"
                    export(compile_network(net.fused, target, src), target, path)
                    libs[kind] = str(path)
                manifest["libs"][key] = libs
                manifest["tuning"][key] = {**res.to_dict(), "inputs": [[list(a.shape), a.dtype] for a in net.inputs],
                                           "kernels_n": len(net.kernels)}
                manifest_path.parent.mkdir(parents=True, exist_ok=True)
                manifest_path.write_text(json.dumps(manifest, indent=1))
                print(f"{key}: table sum default {res.default_ms:.3f} ms -> tuned {res.after_ms:.3f} ms "
                      f"({res.trials_spent} trials, {res.seconds:.0f} s)")
    return manifest


def measure(args) -> dict:
    from common.timing import paired_ratio, paired_rounds

    manifest = json.loads((Path(args.work) / "manifest.json").read_text())
    threads = manifest["threads"] or os.cpu_count()
    out = {"target": manifest["target"], "lanes": manifest["lanes"], "threads": threads, "trials": manifest["trials"],
           "rounds": args.rounds, "variants": {v: {"conv_layout": VARIANTS[v][0], "schedule_rules": VARIANTS[v][1]}
                                               for v in VARIANTS},
           "how": "all libraries of one network timed alternately in one process per round (one repeat "
                  "each in turn); speed-up = median of per-repeat ratios time(baseline)/time(variant)",
           "networks": {}}
    t0 = time.time()
    nets = sorted({k.split("|")[0] for k in manifest["libs"]})
    for net in nets:
        variants = {}
        for key, libs in manifest["libs"].items():
            name, variant = key.split("|")
            if name != net:
                continue
            inputs = manifest["tuning"][key]["inputs"]
            for kind, lib in libs.items():
                variants[f"{variant}|{kind}"] = {"kind": "tvm", "lib": lib, "inputs": inputs, "threads": threads}
        print(f"{net}: {len(variants)} libraries x {args.rounds} rounds")
        res = paired_rounds(variants, args.rounds, repeat=args.repeat, threads=threads)
        d = {"measured": {k: {kk: v[kk] for kk in ("median_us", "min_us", "spread_pct")}
                          for k, v in res["variants"].items()}, "errors": res["errors"],
             "tuning": {k.split("|")[1]: {f: manifest["tuning"][k][f] for f in (
                 "default_ms", "after_ms", "trials_spent", "seconds", "provenance_after", "kernels_n")}
                        for k in manifest["tuning"] if k.split("|")[0] == net}}
        base = f"{BASELINE}|tuned"
        d["speedup_over_nchw_default_tuned"] = {
            k: paired_ratio(res, k, base) for k in res["variants"] if k != base and base in res["variants"]}
        out["networks"][net] = d
    out["wall_s"] = round(time.time() - t0, 1)
    write_results(out, args.out)
    return out


def main(argv=None) -> int:
    ap = argument_parser(__doc__)
    sub = ap.add_subparsers(dest="phase", required=True)
    p = sub.add_parser("prepare", help="tune and build every variant (CPU-heavy, resumable)")
    p.add_argument("--target", default="x86")
    p.add_argument("--networks", default="pick0,mobilenet_v2@128")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--trials", type=int, default=48)
    p.add_argument("--trials-per-kernel", type=int, default=16)
    p.add_argument("--population", type=int, default=64)
    m = sub.add_parser("measure", help="time every library (run under quiet-run)")
    m.add_argument("--rounds", type=int, default=5)
    m.add_argument("--repeat", type=int, default=15)
    for q in (p, m):
        q.add_argument("--work", default=str(RUNS / "bench-layout"))
        q.add_argument("--out", default=str(RESULTS / "layout_x86.json"))
    args = parse_args(ap, argv)
    {"prepare": prepare, "measure": measure}[args.phase](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Tuning cost vs deployed speed-up: minutes of tuning (chamtvm's policy: joint MetaSchedule
tuning with one shared cost model, then trace transfer to same-kind kernels) against the
mean end-to-end speed-up of held-out networks of the ``fashion`` space.

The kernels to tune come from ``--train`` seeded training networks (ranked by their share
of their network's default time); the held-out networks (another seed) are never used to
choose what to tune: they gain through kernels they share with the training networks and
through transferred schedules. After each step of ``--steps`` trials the held-out networks
are rebuilt with the schedules so far and measured end to end (chamtvm's local runner,
one process per measurement), and every kernel's tuned / transferred / default latency is
recorded from the table.

    python benchmarks/bench_tuning_cost.py [--steps 16,32,48] [--train 4] [--heldout 3]

Writes benchmarks/results/tuning_cost_x86.json and tuning_cost_x86.png (contended shared
2-core VM: figures with spread).
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import numpy as np

from common import RESULTS, RUNS, argument_parser, fresh_workdir, parse_args, pyplot, save_figure, write_results

warnings.filterwarnings("ignore")


def main(argv=None) -> int:
    ap = argument_parser(__doc__)
    ap.add_argument("--space", default="fashion")
    ap.add_argument("--steps", default="16,32,48", help="trials added per step")
    ap.add_argument("--round-trials", type=int, default=8)
    ap.add_argument("--kernels", type=int, default=6, help="kernels tuned jointly per step")
    ap.add_argument("--population", type=int, default=None, help="evolutionary search population (MS default 512)")
    ap.add_argument("--train", type=int, default=4)
    ap.add_argument("--train-seed", type=int, default=101)
    ap.add_argument("--heldout", type=int, default=3)
    ap.add_argument("--heldout-seed", type=int, default=2026)
    ap.add_argument("--work", default=str(RUNS / "bench-tuning-cost"),
                    help="resumable working folder (tables, schedules; default: runs/bench-tuning-cost, git-ignored)")
    ap.add_argument("--out", default=str(RESULTS / "tuning_cost_x86.json"))
    args = parse_args(ap, argv)
    os.environ.setdefault("TVM_NUM_THREADS", str(os.cpu_count() or 1))

    from chamtvm.core.metrics import iqr_spread_pct
    from chamtvm.latency.table_sum import table_sum
    from chamtvm.lower.network import lower_arch
    from chamtvm.measure.local import LocalRunner
    from chamtvm.measure.network import measure_network
    from chamtvm.space.schema import SearchSpace
    from chamtvm.table.fill import fill_table, prepare
    from chamtvm.table.store import LatencyTable
    from chamtvm.targets.spec import get_target
    from chamtvm.tuning.policy import TuningTask, tune_tasks
    from chamtvm.tuning.schedules import ScheduleSource
    from chamtvm.tuning.transfer import transfer_schedules

    t_start = time.time()
    work = fresh_workdir(Path(args.work))  # the curve starts from no tuning at all
    target = get_target("x86")
    runner = LocalRunner(target)
    table = LatencyTable(work / "x86.jsonl")
    ms_dir = work / "schedules" / "x86"
    space = SearchSpace.load(args.space)
    rng = np.random.default_rng(args.train_seed)
    train = [lower_arch(space, space.sample(rng), f"train{i}") for i in range(args.train)]
    rng = np.random.default_rng(args.heldout_seed)
    held = [lower_arch(space, space.sample(rng), f"heldout{i}") for i in range(args.heldout)]
    default_src = ScheduleSource(target, use_database=False)
    for net in train + held:
        fill_table(prepare(net.kernels, target, default_src), table, runner, target)
    weights, kernels = {}, {}
    for net in train:
        pred = table_sum(prepare(net.kernels, target, default_src), table)
        for e in pred.kernels:
            h = e["key"].split("/")[-1]
            weights[h] = weights.get(h, 0.0) + e["total_us"] / (pred.latency_ms * 1e3)
        kernels.update({k.struct_hash: k for k in net.kernels})
    all_kernels = {k.struct_hash: k for net in train + held for k in net.kernels}
    held_hashes = {k.struct_hash for net in held for k in net.kernels}
    train_hashes = set(kernels)
    out = {"space": args.space, "population": args.population or 512, "kernels_per_step": args.kernels, "target_fingerprint": target.fingerprint, "threads": os.environ["TVM_NUM_THREADS"],
           "train_networks": args.train, "heldout_networks": args.heldout,
           "heldout_kernels": len(held_hashes), "heldout_kernels_shared_with_train": len(held_hashes & train_hashes),
           "note": "contended shared 2-core VM; e2e medians with IQR/median spread", "points": []}

    def measure_heldout(sched):
        res = []
        for net in held:
            r = measure_network(net, target, runner, sched, work_dir=None, key=net.name)
            res.append({"median_us": float(np.median(r.samples_us)), "spread_pct": iqr_spread_pct(r.samples_us)}
                       if r.ok else {"error": r.error})
        return res

    base = measure_heldout(None)
    tuning_s = 0.0
    trials_done = 0
    steps = [int(x) for x in args.steps.split(",") if x]
    for step in [0] + steps:
        if step:
            sched = ScheduleSource(target, ms_dir)
            ranked = sorted(weights, key=lambda h: -weights[h])[: args.kernels]
            t0 = time.time()
            tune_tasks([TuningTask(kernels[h].func, h, kernels[h].name, weights[h]) for h in ranked], target,
                       step, ms_dir, round_trials=args.round_trials, seed=trials_done + 1, log=print,
                       population=args.population)
            transfer_schedules(list(all_kernels.values()), target, runner, ms_dir, log=print)
            tuning_s += time.time() - t0
            trials_done += step
        sched = ScheduleSource(target, ms_dir)
        now = measure_heldout(sched) if step else base
        speedups = [b["median_us"] / n["median_us"] for b, n in zip(base, now) if "median_us" in b and "median_us" in n]
        prov = {}
        for p in prepare(list(all_kernels.values()), target, sched):
            prov[p.provenance] = prov.get(p.provenance, 0) + 1
        point = {"trials": trials_done, "tuning_min": tuning_s / 60, "heldout_us": now,
                 "mean_speedup": float(np.mean(speedups)) if speedups else None,
                 "speedups": speedups, "provenance": prov}
        out["points"].append(point)
        print(f"{trials_done:4d} trials  {tuning_s / 60:5.1f} min  mean held-out speed-up {point['mean_speedup']:.2f}x  {prov}")

    # per kernel: tuned / transferred / default latency from the table
    sched = ScheduleSource(target, ms_dir)
    fill_table(prepare(list(all_kernels.values()), target, sched), table, runner, target)
    per_kernel = []
    for p in prepare(list(all_kernels.values()), target, sched):
        d = table.get(prepare([p.kernel], target, default_src)[0].key)
        row = table.get(p.key)
        per_kernel.append({"name": p.kernel.name, "struct_hash": p.kernel.struct_hash, "provenance": p.provenance,
                           "default_us": d["runtime_us_p50"] if d else None,
                           "scheduled_us": row["runtime_us_p50"] if row else None,
                           "in_heldout": p.kernel.struct_hash in held_hashes})
    out["kernels"] = per_kernel
    out["wall_s"] = round(time.time() - t_start, 1)
    write_results(out, args.out, figure=plot)
    return 0


def plot(out: dict, path: Path) -> None:
    plt = pyplot()
    xs = [p["tuning_min"] for p in out["points"]]
    ys = [p["mean_speedup"] for p in out["points"]]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(xs, ys, "o-")
    for p in out["points"]:
        ax.annotate(f"{p['trials']} trials", (p["tuning_min"], p["mean_speedup"]), fontsize=7)
    ax.set_xlabel("tuning + transfer, minutes (contended 2-core VM)")
    ax.set_ylabel("held-out mean speed-up vs default (x)")
    ax.set_title(f"{out['space']}: {out['heldout_networks']} held-out networks")
    save_figure(fig, path, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())

"""Tuning through RPC on the emulated ARM board: tuned / transferred / default latency per
kernel, held-out fidelity on the tuned table, and the tuning cost.

EMULATION figures: the "board" is real aarch64 TVM RPC servers under QEMU user-mode
emulation on this x86 host (``chamtvm device emulate-arm``); every latency below is QEMU's,
never an ARM core's. The flow is the real one a user runs against a board:

1. a tracker and ``--servers`` emulated aarch64 servers on 127.0.0.1 (stopped at the end,
   also on failure);
2. ``python -m chamtvm tune --target arm --tracker HOST:PORT --key KEY --trials N`` (the CLI,
   in a child process): the default table of the space, then the tuning policy
   (``tuning.policy``: joint MetaSchedule tuning, candidates cross-compiled here with
   ``aarch64-linux-gnu-g++`` and timed on the emulated servers; ``tuning.transfer``: the
   tuned traces re-fitted to the untuned kernels of the same kind, timed as candidates),
   the tuned kernels measured into the table (rows carry ``schedule_provenance``), the
   residual model, and held-out networks measured end to end with the tuned schedules;
3. per tuned or transferred kernel, its default and deployed schedule re-timed together
   ``--rounds`` times, interleaved, through the same RPC runner (median and IQR/median);
4. the held-out networks measured end to end with the default and with the deployed
   schedules, alternating (``network_speedup``; alone on a finished run: ``--speedup-only``).

    python benchmarks/bench_arm_emulated.py [--space small] [--trials 48] [--heldout 8]

Writes ``benchmarks/results/arm_emulated_tuned.json`` and ``arm_emulated_tuned.png``.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path

from common import (EMULATION, RESULTS, RUNS, argument_parser, fresh_workdir, load_average, parse_args, pyplot,
                    run_chamtvm, save_figure, summary, write_results)

WORK = RUNS / "bench_arm_emulated"


def kernel_rows(luts: Path) -> dict[str, dict[str, dict]]:
    """``struct_hash -> {provenance: row}`` of the ARM table (the latest row per provenance)."""
    from chamtvm.table.store import LatencyTable

    out: dict[str, dict[str, dict]] = {}
    for r in LatencyTable(luts / "arm.jsonl").load().rows():
        out.setdefault(r["struct_hash"], {})[r.get("schedule_provenance", "default")] = r
    return out


def retime(space_name: str, sched_root: Path, tracker, key: str, rounds: int, log=print) -> dict:
    """Default and deployed schedule of every tuned/transferred kernel of the space, timed
    together ``rounds`` times (one library per round, both variants in it) through the RPC
    runner: ``struct_hash -> {default: summary, deployed: summary, provenance, name}``."""
    from chamtvm.lower.coverage import space_kernels
    from chamtvm.measure.rpc import RPCRunner
    from chamtvm.space.schema import SearchSpace
    from chamtvm.table.fill import build_batches, prepare
    from chamtvm.targets.spec import get_target
    from chamtvm.tuning.schedules import ScheduleSource

    arm = get_target("arm")
    space = SearchSpace.load(space_name)
    kernels = space_kernels(space)
    deployed = prepare(kernels, arm, ScheduleSource(arm, sched_root / arm.name))
    default = prepare(kernels, arm, ScheduleSource(arm, use_database=False))
    pairs = [(d, p) for d, p in zip(default, deployed) if p.schedule != d.schedule]
    pairs = list({p.kernel.struct_hash: (d, p) for d, p in pairs}.values())
    todo = [x for pair in pairs for x in pair]
    samples: dict[str, list[float]] = {}
    with RPCRunner(arm, tracker[0], tracker[1], key) as runner:
        tmp = Path(tempfile.mkdtemp(prefix="arm-retime-", dir=WORK))
        batches = list(build_batches(todo, arm, tmp, batch_size=16))  # built once, timed each round
        for r in range(rounds):
            for res in runner.measure_batches(batches, arm.evaluator):
                if res.ok:
                    samples.setdefault(res.key, []).append(res.median_us)
            log(f"  re-timing round {r + 1}/{rounds} done (load average {load_average()})")
    out = {}
    for d, p in pairs:
        if d.key in samples and p.key in samples:
            out[p.kernel.struct_hash] = {"name": p.kernel.name, "provenance": p.provenance,
                                         "default_us": summary(samples[d.key]),
                                         "deployed_us": summary(samples[p.key])}
    return out


def network_speedup(args, rounds: int = 2, log=print) -> dict:
    """The held-out networks of the finished run measured end to end with the default and
    with the deployed schedules, alternating, ``rounds`` times each on fresh emulated
    servers: per network the medians and the speed-up (default / deployed)."""
    import numpy as np

    from chamtvm.devices import start_tracker
    from chamtvm.devices.arm import start_arm_servers
    from chamtvm.lower.network import lower_arch
    from chamtvm.measure.network import measure_network
    from chamtvm.measure.rpc import RPCRunner
    from chamtvm.space.schema import Arch, SearchSpace
    from chamtvm.targets.spec import get_target
    from chamtvm.tuning.schedules import ScheduleSource

    arm = get_target("arm")
    work = WORK / f"{Path(args.space).stem}-t{args.trials}"
    report = json.loads((work / "report.json").read_text())
    space = SearchSpace.load(args.space)
    schedules = {"default": ScheduleSource(arm, use_database=False),
                 "deployed": ScheduleSource(arm, work / "schedules" / arm.name)}
    key = "arm-bench-speedup"
    load = {"before": load_average()}
    samples: dict[str, dict[str, list[float]]] = {}
    with start_tracker() as tracker, start_arm_servers(tracker.tracker, key, n=1, log=print), \
            RPCRunner(arm, tracker.tracker[0], tracker.tracker[1], key) as runner:
        for n in report["networks"]:
            net = lower_arch(space, Arch.from_dict(n["arch"]), n["name"])
            for r in range(rounds):
                for which, sched in schedules.items():
                    res = measure_network(net, arm, runner, sched, work_dir=str(WORK))
                    if res.ok:
                        samples.setdefault(n["name"], {}).setdefault(which, []).append(float(np.median(res.samples_us)) / 1e3)
            log(f"  {n['name']}: {samples.get(n['name'])} ms (load average {load_average()})")
        load["after"] = load_average()
    nets = []
    for name, by in samples.items():
        if len(by) == 2:
            d, p = statistics.median(by["default"]), statistics.median(by["deployed"])
            nets.append({"name": name, "default_ms": d, "deployed_ms": p, "speedup": d / p, "rounds": by})
    sp = [x["speedup"] for x in nets]
    return {"what": "held-out networks end to end, default vs deployed schedules alternating (EMULATION)",
            "rounds": rounds, "networks": nets, "load_average_1_5_15": load,
            "speedup": summary(sp) if sp else None,
            "mean_speedup": statistics.mean(sp) if sp else None}


def run(args) -> dict:
    from chamtvm.devices import start_tracker
    from chamtvm.devices.arm import start_arm_servers

    work = fresh_workdir(WORK / f"{Path(args.space).stem}-t{args.trials}", args.resume)
    luts, sched, report_path = work / "luts", work / "schedules", work / "report.json"
    key = "arm-bench-tune"
    load = {"before": load_average()}
    with start_tracker() as tracker:
        with start_arm_servers(tracker.tracker, key, n=args.servers, log=print):
            host, port = tracker.tracker
            load["devices_up"] = load_average()
            print(f"EMULATED aarch64 board(s) up at {host}:{port} key={key}; tuning through RPC ({load['devices_up']})")
            tune_args = ["tune", "--target", "arm", "--tracker", f"{host}:{port}", "--key", key,
                         "--space", args.space, "--trials", str(args.trials),
                         "--trials-per-kernel", str(args.trials_per_kernel), "--heldout", str(args.heldout),
                         "--train-networks", str(args.train_networks), "--no-calibration", "--task", "none",
                         "--luts-dir", str(luts), "--schedules-dir", str(sched), "--out", str(report_path),
                         "--no-progress"]
            wall = run_chamtvm(tune_args, work / "tune.log", timeout_s=args.timeout_min * 60)["wall_s"]
            load["after_tune"] = load_average()
            print(f"tune finished in {wall / 60:.1f} min (load average {load['after_tune']})")
            retimed = retime(args.space, sched, tracker.tracker, key, args.rounds)
            load["after_retime"] = load_average()
    report = json.loads(report_path.read_text())
    rows = kernel_rows(luts)
    tuned_now = report["tuning"]["tuned_now"]
    per_kernel = []
    for line in tuned_now:
        h = line["struct_hash"]
        by = rows.get(h, {})
        deployed = by.get("tuned") or by.get("transferred")
        entry = {"struct_hash": h, "name": line["name"], "policy": line["policy"], "trials": line.get("trials", 0),
                 "tuning_s": line.get("tuning_s", 0.0),
                 "metaschedule_best_us": line.get("best_us"),
                 "table_default_us": by["default"]["runtime_us_p50"] if "default" in by else None,
                 "table_deployed_us": deployed["runtime_us_p50"] if deployed else None,
                 "schedule_provenance": deployed["schedule_provenance"] if deployed else "default",
                 "retimed": retimed.get(h)}
        if entry["table_default_us"] and entry["table_deployed_us"]:
            entry["table_speedup"] = entry["table_default_us"] / entry["table_deployed_us"]
        if entry["retimed"]:
            rt = entry["retimed"]
            entry["retimed_speedup"] = rt["default_us"]["median"] / rt["deployed_us"]["median"]
        per_kernel.append(entry)
    provenance_counts: dict[str, int] = {}
    space_hashes = set()
    for r in rows.values():
        space_hashes.update(x["struct_hash"] for x in r.values())
    for h, by in rows.items():
        prov = "tuned" if "tuned" in by else "transferred" if "transferred" in by else "default"
        provenance_counts[prov] = provenance_counts.get(prov, 0) + 1
    nets = report["networks"]
    out = {
        "EMULATION": EMULATION,
        "device_label": report["device_label"], "emulated": report["emulated"],
        "space": report["space"], "servers": args.servers,
        "command": "python -m chamtvm " + " ".join(tune_args),
        "trials_budget": args.trials, "trials_per_kernel": args.trials_per_kernel,
        "load_average_1_5_15": load,
        "tuning_cost_min": report["seconds"].get("tuning", 0.0) / 60,
        "tune_wall_min": wall / 60,
        "seconds": report["seconds"],
        "table": report["table"],
        "kernels_by_provenance": provenance_counts,
        "kernels_with_deployed_schedule": report["tuning"]["kernels_with_tuned_schedule"],
        "per_kernel": per_kernel,
        "retime_rounds": args.rounds,
        "heldout": len(nets),
        "fidelity_table_sum": report["fidelity_table_sum"],
        "fidelity_residual": report["fidelity"],
        "predictor": report["predictor"],
        "abs_error_pct_table_sum": summary([abs(n["table_sum_ms"] - n["measured_ms"]) / n["measured_ms"] * 100
                                            for n in nets]) if nets else None,
        "abs_error_pct_residual": summary([abs(n["error_pct"]) for n in nets]) if nets else None,
        "measured_spread_pct": summary([n["measured_spread_pct"] for n in nets]) if nets else None,
        "networks": [{k: n[k] for k in ("name", "table_sum_ms", "predicted_ms", "measured_ms", "measured_spread_pct",
                                        "error_pct", "kernels")} for n in nets],
    }
    return out


def aggregate(out: dict) -> dict:
    """Per schedule provenance: the re-timed speed-up (default / deployed, medians of the
    interleaved rounds) of the kernels whose deployed schedule is not the default."""
    by: dict[str, list[float]] = {}
    for k in out["per_kernel"]:
        if k.get("retimed_speedup") is not None:
            by.setdefault(k["schedule_provenance"], []).append(k["retimed_speedup"])
    agg = {}
    for prov, xs in by.items():
        xs = sorted(xs)
        agg[prov] = {"kernels": len(xs), "median_speedup": statistics.median(xs), "min_speedup": xs[0],
                     "max_speedup": xs[-1], "slower_than_default": sum(x < 1 for x in xs)}
    attempted = [k for k in out["per_kernel"] if k["policy"] == "transfer"]
    agg["transfers_attempted"] = len(attempted)
    agg["transfers_kept"] = sum(1 for k in attempted if k["table_deployed_us"] is not None)
    return agg


def print_figures(out: dict) -> None:
    print(f"\n{out['EMULATION']}")
    print(f"tuning cost {out['tuning_cost_min']:.1f} min (tune wall {out['tune_wall_min']:.1f} min); "
          f"kernels by schedule provenance: {out['kernels_by_provenance']}")
    print(f"{'kernel':40s} {'policy':9s} {'MS best us':>10s} {'table def':>10s} {'table dep':>10s} "
          f"{'retimed def (IQR%)':>20s} {'retimed dep (IQR%)':>20s}")
    for k in out["per_kernel"]:
        rt = k.get("retimed") or {}
        d, p = rt.get("default_us"), rt.get("deployed_us")

        def f(x):
            return f"{x:10.1f}" if isinstance(x, (int, float)) else f"{'-':>10s}"

        print(f"{k['name'][:40]:40s} {k['policy']:9s} {f(k['metaschedule_best_us'])} {f(k['table_default_us'])} "
              f"{f(k['table_deployed_us'])} "
              + (f"{d['median']:12.1f} ({d['iqr_spread_pct']:4.1f}%) {p['median']:12.1f} ({p['iqr_spread_pct']:4.1f}%)"
                 if d and p else ""))
    for name, fid in (("table sum", out["fidelity_table_sum"]), ("table + residual", out["fidelity_residual"])):
        if fid:
            print(f"held-out ({fid['n']} networks, tuned schedules), {name}: within ±5% {100 * fid['within_5pct']:.0f}%, "
                  f"±10% {100 * fid['within_10pct']:.0f}%, MAPE {fid['mape_pct']:.1f}%, "
                  f"Kendall tau {fid.get('kendall_tau', float('nan')):.2f}")
    for prov, a in out["retimed_speedup"].items():
        if isinstance(a, dict):
            print(f"re-timed {prov} kernels ({a['kernels']}): default/deployed median {a['median_speedup']:.2f}x "
                  f"({a['min_speedup']:.2f}-{a['max_speedup']:.2f}x), {a['slower_than_default']} slower than default")
    if out["measured_spread_pct"]:
        s = out["measured_spread_pct"]
        print(f"end-to-end repeat spread (IQR/median) of the held-out networks: median {s['median']:.1f}%")
    ns = out.get("network_speedup")
    if ns and ns.get("speedup"):
        print(f"held-out networks end to end, default / deployed schedules: median {ns['speedup']['median']:.2f}x "
              f"(IQR/median {ns['speedup']['iqr_spread_pct']:.1f}%), mean {ns['mean_speedup']:.2f}x over "
              f"{len(ns['networks'])} networks ({ns['rounds']} alternating rounds)")
    print(f"load average (1, 5, 15 min) at the recorded moments: {out.get('load_average_1_5_15')}")


def plot(out: dict, path: Path) -> None:
    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    for prov, color in (("tuned", "C2"), ("transferred", "C1")):
        ks = [k for k in out["per_kernel"] if k.get("retimed") and k["schedule_provenance"] == prov]
        d = [k["retimed"]["default_us"] for k in ks]
        p = [k["retimed"]["deployed_us"] for k in ks]
        a.errorbar([x["median"] for x in d], [x["median"] for x in p],
                   xerr=[x["median"] * x["iqr_spread_pct"] / 200 for x in d],
                   yerr=[x["median"] * x["iqr_spread_pct"] / 200 for x in p], fmt="o", ms=4, color=color,
                   elinewidth=0.6, label=f"{prov} ({len(ks)} kernels)")
    a.plot([300, 2e5], [300, 2e5], "k--", lw=0.8)
    a.set_xscale("log")
    a.set_yscale("log")
    a.set_xlabel("default schedule, us (EMULATION)")
    a.set_ylabel("deployed schedule, us")
    a.set_title(f"kernels re-timed x{out['retime_rounds']} through RPC (bars: IQR)", fontsize=9)
    a.legend(fontsize=7)
    nets = out["networks"]
    m = [n["measured_ms"] for n in nets]
    b.scatter(m, [n["table_sum_ms"] for n in nets], label="table sum")
    b.scatter(m, [n["predicted_ms"] for n in nets], label="table + residual")
    if m:
        lo, hi = min(m) * 0.5, max(max(m), max(n["table_sum_ms"] for n in nets)) * 1.1
        b.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    b.set_xlabel("measured end to end, ms (EMULATION)")
    b.set_ylabel("predicted, ms")
    b.set_title(f"held-out networks of {out['space']}, tuned table")
    b.legend(fontsize=7)
    fig.suptitle("Emulated ARM board (QEMU user mode on x86): emulation timings, not ARM device latency", fontsize=9)
    save_figure(fig, path)


def main(argv=None) -> int:
    ap = argument_parser(__doc__)
    ap.add_argument("--space", default="small")
    ap.add_argument("--trials", type=int, default=48)
    ap.add_argument("--trials-per-kernel", type=int, default=16)
    ap.add_argument("--heldout", type=int, default=8)
    ap.add_argument("--train-networks", type=int, default=4)
    ap.add_argument("--servers", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3, help="re-timing rounds of default vs deployed kernels")
    ap.add_argument("--timeout-min", type=float, default=60)
    ap.add_argument("--resume", action="store_true", help="keep the working folder (the tune run resumes)")
    ap.add_argument("--out", type=Path, default=RESULTS / "arm_emulated_tuned.json")
    ap.add_argument("--analyze-only", action="store_true", help="recompute the figures and plot from --out")
    ap.add_argument("--speedup-only", action="store_true",
                    help="only measure the finished run's held-out networks, default vs deployed, into --out")
    args = parse_args(ap, argv)
    import warnings

    warnings.filterwarnings("ignore")
    WORK.mkdir(parents=True, exist_ok=True)
    reused = args.analyze_only or args.speedup_only
    out = json.loads(args.out.read_text()) if reused else run(args)
    if args.speedup_only or not args.analyze_only:
        out["network_speedup"] = network_speedup(args)
    out["retimed_speedup"] = aggregate(out)
    print_figures(out)
    write_results(out, args.out, figure=plot, measurements_from=args.out if reused else None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""RPC device-farm benchmark (all processes on 127.0.0.1, started and stopped here).

1. Throughput scaling: kernels measured per minute by ``RPCRunner.measure_batches`` with 1,
   2 and 3 native x86 RPC servers under one key (the same pre-built batches each time, so
   only measurement is timed). Note: on a machine with few cores the servers share them,
   so this shows the farm's overhead and contention as much as its parallelism.
2. Emulated-ARM fidelity: ``tune --target arm`` (no tuning) against emulated aarch64
   servers (QEMU user mode) on a space, with N held-out networks: table-sum prediction vs
   end-to-end measurement. These are EMULATION figures, not ARM device figures.

    python benchmarks/bench_rpc.py [--rounds 3] [--heldout 24] [--space small] [--skip-arm]

Writes ``benchmarks/results/rpc_scaling.json`` and ``benchmarks/results/arm_emulated_fidelity.json``.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from common import EMULATION, RESULTS, argument_parser, parse_args, write_results

# Enough distinct kernels for a few batches, cheap to compile.
SCALING_SPACE = {
    "name": "bench-rpc", "in_channels": 3, "num_classes": 10, "resolution": [32, 40],
    "stem_channels": [8], "head_channels": [64],
    "stages": [
        {"stride": 1, "channels": [8], "blocks": [1], "expansion": [1], "kernel": [3]},
        {"stride": 2, "channels": [12, 16], "blocks": [1, 2], "expansion": [3], "kernel": [3, 5]},
        {"stride": 2, "channels": [24], "blocks": [1], "expansion": [3, 6], "kernel": [3]},
    ],
}


def _summary(xs):
    """Mean, sample std, range and values of repeated figures (throughputs, walls)."""
    return {"mean": statistics.mean(xs), "std": statistics.stdev(xs) if len(xs) > 1 else 0.0,
            "min": min(xs), "max": max(xs), "values": xs}


def bench_scaling(rounds: int, batch_size: int, server_counts=(1, 2, 3)) -> dict:
    from chamtvm.lower.coverage import space_kernels
    from chamtvm.devices import start_tracker, start_x86_server
    from chamtvm.measure.rpc import RPCRunner
    from chamtvm.tuning.schedules import ScheduleSource
    from chamtvm.space.schema import SearchSpace
    from chamtvm.table.fill import build_batches, prepare
    from chamtvm.targets.spec import get_target

    x86 = get_target("x86")
    space = SearchSpace.from_dict(SCALING_SPACE)
    prepared = prepare(space_kernels(space), x86, ScheduleSource(x86, use_database=False))
    uniq = list({p.key: p for p in prepared}.values())
    tmp = Path(tempfile.mkdtemp(prefix="bench-rpc-"))
    t0 = time.time()
    batches = list(build_batches(uniq, x86, tmp, batch_size))
    build_s = time.time() - t0
    n_kernels = sum(len(b.items) for b in batches)
    print(f"scaling: {n_kernels} kernels in {len(batches)} batches of <= {batch_size} (built in {build_s:.1f} s)")
    out = {"what": "kernels measured per minute by RPCRunner.measure_batches, native x86 servers on 127.0.0.1",
           "host": {"machine": platform.machine(), "cpus": os.cpu_count()},
           "kernels": n_kernels, "batches": len(batches), "batch_size": batch_size, "rounds": rounds,
           "evaluator": x86.evaluator.to_dict(), "by_servers": {}}
    with start_tracker() as tracker:
        for n in server_counts:
            key = f"bench{n}"
            with start_x86_server(tracker, key, n=n):
                per_min, walls, failed, lat = [], [], 0, {}
                with RPCRunner(x86, *tracker.tracker, key) as runner:
                    assert runner.parallelism() == n
                    for r in range(rounds):
                        t = time.time()
                        results = list(runner.measure_batches(batches, x86.evaluator))
                        wall = time.time() - t
                        failed += sum(not x.ok for x in results)
                        for x in results:
                            if x.ok:
                                lat.setdefault(x.key, []).append(x.median_us)
                        walls.append(wall)
                        per_min.append(60 * len(results) / wall)
                out["by_servers"][str(n)] = {"kernels_per_min": _summary(per_min), "wall_s": _summary(walls),
                                             "failed": failed,
                                             "kernel_median_us": {k: statistics.median(v) for k, v in lat.items()}}
                s = out["by_servers"][str(n)]["kernels_per_min"]
                print(f"  {n} server(s): {s['mean']:.1f} ± {s['std']:.1f} kernels/min "
                      f"(min {s['min']:.1f}, max {s['max']:.1f}; {rounds} rounds; {failed} failed)")
    base = out["by_servers"]["1"]["kernels_per_min"]["mean"]
    out["speedup_vs_1"] = {k: v["kernels_per_min"]["mean"] / base for k, v in out["by_servers"].items()}
    # Servers sharing this host's cores slow each other's kernels down: the geometric mean of
    # each kernel's latency relative to the 1-server run says by how much.
    ref = out["by_servers"]["1"]["kernel_median_us"]
    out["latency_inflation_vs_1"] = {}
    for k, v in out["by_servers"].items():
        common = [key for key in v["kernel_median_us"] if key in ref and ref[key] > 0]
        ratio = math.exp(statistics.mean(math.log(v["kernel_median_us"][key] / ref[key]) for key in common))
        out["latency_inflation_vs_1"][k] = ratio
        print(f"  {k} server(s): kernel latency x{ratio:.2f} vs 1 server (geometric mean over {len(common)})")
    return out


def bench_arm_fidelity(space: str, heldout: int, servers: int, luts_dir: Path | None) -> dict:
    from chamtvm.devices import start_tracker
    from chamtvm.devices.arm import start_arm_servers
    from chamtvm.measure.rpc import RPCRunner
    from chamtvm.targets.spec import get_target
    from chamtvm.pipeline.config import TuneConfig
    from chamtvm.pipeline.job import run_tune

    arm = get_target("arm")
    luts = luts_dir or Path(tempfile.mkdtemp(prefix="bench-arm-luts-"))
    t0 = time.time()
    with start_tracker() as tracker:
        with start_arm_servers(tracker.tracker, "arm-bench", n=servers, log=print):
            up_s = time.time() - t0
            with RPCRunner(arm, *tracker.tracker, "arm-bench", log=print) as runner:
                assert runner.emulated, "the emulated server did not identify itself"
                report = run_tune(arm, runner, TuneConfig(space=space, trials=0, heldout=heldout,
                                                          luts_dir=luts, progress=False), log=print)
    f = report["fidelity"]
    nets = report["networks"]
    spreads = [n["measured_spread_pct"] for n in nets]
    out = {"EMULATION": EMULATION,
           "device_label": report["device_label"], "emulated": report["emulated"], "space": space,
           "servers": servers, "heldout": len(nets), "statistic": report["statistic"],
           "fidelity": f, "abs_error_pct": _summary([abs(n["error_pct"]) for n in nets]),
           "measured_spread_pct": _summary(spreads),
           "table": report["table"], "seconds": {**report["seconds"], "devices_up": round(up_s, 1)},
           "networks": nets}
    print(f"EMULATED arm fidelity on {len(nets)} held-out networks of space {space}: "
          f"MAPE {f['mape_pct']:.2f}%, median APE {f['median_ape_pct']:.2f}%, "
          f"within ±10% {100 * f['within_10pct']:.0f}%, Kendall tau {f.get('kendall_tau', float('nan')):.3f}; "
          f"repeat spread of the measurements {statistics.median(spreads):.1f}% (median)")
    return out


def main(argv=None) -> int:
    ap = argument_parser(__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=6)
    ap.add_argument("--heldout", type=int, default=24)
    ap.add_argument("--space", default="small")
    ap.add_argument("--arm-servers", type=int, default=1)
    ap.add_argument("--luts-dir", type=Path, default=None, help="reuse an ARM table (default: fresh)")
    ap.add_argument("--skip-scaling", action="store_true")
    ap.add_argument("--skip-arm", action="store_true")
    args = parse_args(ap, argv)
    import warnings

    warnings.filterwarnings("ignore")
    if not args.skip_scaling:
        write_results(bench_scaling(args.rounds, args.batch_size), RESULTS / "rpc_scaling.json")
    if not args.skip_arm:
        write_results(bench_arm_fidelity(args.space, args.heldout, args.arm_servers, args.luts_dir),
                      RESULTS / "arm_emulated_fidelity.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

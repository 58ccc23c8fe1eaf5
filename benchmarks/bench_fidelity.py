"""Table-sum fidelity on held-out networks of the default space, and tuning cost/speed-up.

Runs on the local CPU (target x86) and measures everything it reports:

1. the latency table of the space (built or resumed) and N held-out networks measured end
   to end; fidelity of the table sum with the median and with the minimum per kernel;
   the measurement noise floor (repeat-to-repeat spread of the end-to-end timings);
2. where the latency is: how few distinct kernels make 50/80/90 % of the held-out
   networks' summed latency (what makes tuning affordable: tune only those);
3. MetaSchedule on the most expensive kernels: tuning seconds per kernel (first kernel
   pays the process's fixed overhead), kernel speed-up, and the end-to-end speed-up and
   fidelity of the held-out networks rebuilt with the tuned schedules.

    python benchmarks/bench_fidelity.py [--heldout 32] [--tune-kernels 6] [--trials 16]

Writes benchmarks/results/fidelity_x86.json.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
from common import REPO, RESULTS, argument_parser, parse_args, write_results

from chamtvm.core.metrics import fidelity, iqr_spread_pct
from chamtvm.measure.local import LocalRunner
from chamtvm.pipeline.config import TuneConfig
from chamtvm.pipeline.job import run_tune
from chamtvm.table.store import LatencyTable
from chamtvm.targets.spec import get_target

warnings.filterwarnings("ignore")


def heldout_rows(report, nets_table, table):
    """Per network: measured samples, table sums with p50 and min."""
    rows = []
    for r in report["networks"]:
        row = nets_table.get(r["key"])
        ks = [table.get(k) for k in row["kernel_keys"]]
        counts = row["kernel_counts"]
        rows.append({
            "arch": r["arch"],
            "measured_ms": row["runtime_us_p50"] / 1e3,
            "measured_iqr_pct": iqr_spread_pct(row["runtime_us_samples"]),
            "sum_p50_ms": sum(k["runtime_us_p50"] * c for k, c in zip(ks, counts)) / 1e3,
            "sum_min_ms": sum(k["runtime_us_min"] * c for k, c in zip(ks, counts)) / 1e3,
            "kernels": [(k["key"], k["runtime_us_p50"] * c) for k, c in zip(ks, counts)],
        })
    return rows


def concentration(rows):
    total: dict[str, float] = {}
    for r in rows:
        for key, us in r["kernels"]:
            total[key] = total.get(key, 0.0) + us
    vals = np.sort(np.array(list(total.values())))[::-1]
    cum = np.cumsum(vals) / vals.sum()
    return {"distinct_kernels": int(len(vals)),
            **{f"kernels_for_{p}pct": int(np.searchsorted(cum, p / 100) + 1) for p in (50, 80, 90)}}


def main(argv=None) -> int:
    ap = argument_parser(__doc__)
    ap.add_argument("--heldout", type=int, default=32)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--tune-kernels", type=int, default=6)
    ap.add_argument("--trials", type=int, default=16, help="trials per tuned kernel")
    ap.add_argument("--luts-dir", type=Path, default=REPO / "luts")
    ap.add_argument("--schedules-dir", type=Path, default=REPO / "schedules")
    ap.add_argument("--out", type=Path, default=RESULTS / "fidelity_x86.json")
    args = parse_args(ap, argv)

    target = get_target("x86")
    runner = LocalRunner(target)
    t0 = time.time()
    base_cfg = dict(space="small", heldout=args.heldout, heldout_seed=args.seed,
                    luts_dir=args.luts_dir, schedules_dir=args.schedules_dir)

    # 1. untuned table and held-out networks (tuning off: the database, if any, still applies)
    rep_a = run_tune(target, runner, TuneConfig(trials=0, **base_cfg))
    table = LatencyTable(Path(args.luts_dir) / "x86.jsonl").load()
    nets = LatencyTable(Path(args.luts_dir) / "x86.networks.jsonl").load()
    rows_a = heldout_rows(rep_a, nets, table)
    meas = [r["measured_ms"] for r in rows_a]
    fid_p50 = fidelity([r["sum_p50_ms"] for r in rows_a], meas)
    fid_min = fidelity([r["sum_min_ms"] for r in rows_a], meas)
    noise = [r["measured_iqr_pct"] for r in rows_a]
    conc = concentration(rows_a)

    # 2. tune the most expensive kernels, rebuild the same held-out networks
    rep_b = run_tune(target, runner, TuneConfig(trials=args.tune_kernels * args.trials,
                                                trials_per_kernel=args.trials, **base_cfg))
    table.load()
    nets.load()
    rows_b = heldout_rows(rep_b, nets, table)
    tuned = rep_b["tuning"]["tuned_now"]
    tuned_kernels = []
    for line in tuned:
        rows = [r for r in table.rows() if r["struct_hash"] == line["struct_hash"]]
        default = [r for r in rows if r["schedule"] == "default"]
        ms = [r for r in rows if r["schedule"].startswith("ms-")]
        entry = {"name": line["name"], "trials": line["trials"], "tuning_s": line["tuning_s"]}
        if default and ms:
            entry.update(default_us=default[-1]["runtime_us_p50"], tuned_us=ms[-1]["runtime_us_p50"],
                         speedup=default[-1]["runtime_us_p50"] / ms[-1]["runtime_us_p50"])
        tuned_kernels.append(entry)
    e2e_speedup = [a["measured_ms"] / b["measured_ms"] for a, b in zip(rows_a, rows_b)]
    changed = [s for s, a, b in zip(e2e_speedup, rows_a, rows_b) if a["kernels"] != b["kernels"]]
    fid_tuned = fidelity([r["sum_p50_ms"] for r in rows_b], [r["measured_ms"] for r in rows_b])

    result = {
        "benchmark": "table-sum fidelity and tuning cost, space small, target x86",
        "device": runner.label, "emulated": False, "tvm_version": rep_a["tvm_version"],
        "heldout_networks": args.heldout, "heldout_seed": args.seed,
        "table_rows": len(table), "space_kernels": rep_a["table"]["space_kernels"],
        "fidelity_untuned_p50": fid_p50, "fidelity_untuned_min": fid_min,
        "measurement_noise_iqr_pct": {"median": float(np.median(noise)), "max": float(np.max(noise))},
        "latency_concentration": conc,
        "tuning": {"kernels": tuned_kernels,
                   "tuning_s_first_kernel": tuned_kernels[0]["tuning_s"] if tuned_kernels else None,
                   "tuning_s_next_kernels_median": float(np.median([k["tuning_s"] for k in tuned_kernels[1:]]))
                   if len(tuned_kernels) > 1 else None},
        "networks_with_tuned_kernels": len(changed),
        "e2e_speedup_of_those": {"median": float(np.median(changed)), "min": float(np.min(changed)),
                                 "max": float(np.max(changed))} if changed else None,
        "fidelity_after_tuning_p50": fid_tuned,
        "per_network": [{k: v for k, v in r.items() if k != "kernels"} for r in rows_a],
        "seconds": round(time.time() - t0, 1),
        "steps_seconds": {"untuned": rep_a["seconds"], "tuned": rep_b["seconds"]},
    }
    write_results(result, args.out)

    def line(name, f):
        return (f"{name:<28} n={f['n']:<3} ±5%: {100 * f['within_5pct']:5.1f}%  ±10%: {100 * f['within_10pct']:5.1f}%  "
                f"median APE {f['median_ape_pct']:5.2f}%  MAPE {f['mape_pct']:5.2f}%  tau {f['kendall_tau']:.3f}")

    print(f"\n== table-sum fidelity, {args.heldout} held-out networks of space small on {runner.label}")
    print(line("table sum (p50), untuned", fid_p50))
    print(line("table sum (min), untuned", fid_min))
    print(line("table sum (p50), tuned", fid_tuned))
    print(f"measurement noise (IQR of e2e repeats): median {np.median(noise):.1f}%, max {np.max(noise):.1f}%")
    print(f"latency concentration: {conc}")
    print("tuning:")
    for k in tuned_kernels:
        sp = f"{k['speedup']:.1f}x ({k['default_us']:.0f} -> {k['tuned_us']:.0f} us)" if "speedup" in k else "n/a"
        print(f"  {k['name']:<34} {k['trials']} trials {k['tuning_s']:6.1f} s  {sp}")
    if changed:
        print(f"end-to-end speed-up of the {len(changed)} networks using tuned kernels: median "
              f"{np.median(changed):.2f}x (min {np.min(changed):.2f}, max {np.max(changed):.2f})")
    print(f"total {result['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Do the width model's kernel rows add up to the network? Kernels timed inside the very network
they belong to, against the table's rows and the network end to end (#23).

The pruning benchmark (``bench_prune.py``) found that its end-to-end line is fitted on
networks whose kernel rows do not add up to them: for some cut shapes the sum of the table's
rows (x86 times each kernel inside a *batch network* of kernels) is far above or below the
network measured end to end. This checks where the gap is, on the networks that benchmark
measured (its calibration networks and its pruned networks, read from
``runs/bench_prune/<target>-<task>/state.json``): each network is lowered as the width model
lowers it and built as a measuring library (the reference kernel beside it), then

* ``insitu_sum_us``: every call of the network timed inside that network (``measure.insitu``
  through the runner's ``measure_batch_network``: the VM instrument, the instrument's own cost
  removed, at the device's nominal speed), summed over the calls;
* ``e2e_us``: the same library timed end to end (``TargetLatency.measure_library``'s path);
* ``table_sum_us``: the table rows of its kernels, where the table has them all;
* ``line_from_calibration``: ``e2e = alpha * sum + beta`` fitted on the calibration networks
  only (as the width model fits its line), judged on the other networks, for both sums.

If the in-network sums follow the network where the table rows do not, the width model should
take its kernel times from its own networks. Run it after ``bench_prune.py`` (same target and
task), under quiet-run::

    ../shared/tools/quiet-run -- python benchmarks/bench_prune_insitu.py --task digits

Writes ``benchmarks/results/prune_insitu_<target>_<task>.json``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from common import RESULTS, RUNS, argument_parser, parse_args, write_results


def configs_of(state: dict, full: dict[str, int]) -> list[tuple[str, dict[str, int]]]:
    """``(name, widths)`` of the calibration networks and the pruned networks in a
    ``bench_prune`` state (widths of the groups that differ from ``full``)."""
    out = [(f"calibration-{i}", dict(r["widths"])) for i, r in enumerate(state["model"]["width_model"]["calibration"])]
    for name, info in state.get("networks", {}).items():
        if info.get("kind") in ("prune", "admm", "ablation", "uniform"):
            out.append((name, {g: w for g, w in info["widths"].items() if w != full[g]}))
    return out


def main(argv=None) -> int:
    from chamtvm.cli.validate import tracker

    ap = argument_parser(__doc__)
    ap.add_argument("--target", default="x86")
    ap.add_argument("--task", default="digits", choices=("digits", "fashion-mnist"))
    ap.add_argument("--tracker", type=tracker, default=None, help="HOST:PORT of the RPC tracker (the emulated ARM board)")
    ap.add_argument("--key", default=None)
    args = parse_args(ap, argv)

    import numpy as np

    from chamtvm.core.metrics import fidelity
    from chamtvm.measure.base import KernelItem
    from chamtvm.measure.network import build_for_measuring
    from chamtvm.measure.runners import make_runner
    from chamtvm.table.store import LatencyTable
    from chamtvm.targets.spec import get_target
    from chamtvm.transform.latency import TargetLatency
    from chamtvm.transform.prune.graph import trace_channel_groups
    from chamtvm.transform.prune.latency import STATISTIC, WidthProbe, make_config
    from chamtvm.transform.teacher import default_architecture
    from chamtvm.tuning.schedules import ScheduleSource

    # bench_prune.py's working folder for this target and task
    work = RUNS / "bench_prune" / (args.target if args.task == "fashion-mnist" else f"{args.target}-{args.task}")
    if not (work / "state.json").exists():
        raise SystemExit(f"no pruning benchmark state in {work}: run benchmarks/bench_prune.py --stage all "
                         f"--target {args.target} --task {args.task} first")
    state = json.loads((work / "state.json").read_text())
    target = get_target(args.target)
    module, shape = default_architecture(args.task)
    graph = trace_channel_groups(module, shape)
    table = LatencyTable(work / "luts" / f"{target.name}.jsonl").load()
    schedules = ScheduleSource(target, use_database=False)
    rows = []
    with make_runner(target, args.tracker, args.key) as runner, tempfile.TemporaryDirectory(prefix="chamtvm-insitu-") as tmp:
        lat = TargetLatency(target, runner, work / "luts")
        probe = WidthProbe(module, graph, target, table, runner, schedules, frontend=state["model"]["width_model"]
                           .get("frontend", "export"))
        for name, widths in configs_of(state, graph.widths):
            lay = probe.layout(make_config({**graph.widths, **widths}, graph.widths))
            lib = Path(tmp) / f"{name}.so"
            error = build_for_measuring(lay.net, target, schedules, lib)
            if error:
                rows.append({"name": name, "widths": widths, "error": error})
                continue
            symbols = [k.name for k in lay.kernels]
            items = [KernelItem(s, s, ()) for s in dict.fromkeys(symbols)]
            per_symbol = {r.key: r for r in runner.measure_batch_network(lib, items, lay.net.inputs, target.evaluator)}
            failed = [s for s, r in per_symbol.items() if not r.ok]
            insitu = sum(per_symbol[s].median_us for s in symbols) if not failed else None
            e2e = lat.measure_library(lib, shape, name)
            table_rows = [table.get(probe.prepared(k).key) for k in lay.kernels]
            table_sum = sum(float(r[STATISTIC]) for r in table_rows) if all(r is not None for r in table_rows) else None
            row = {"name": name, "widths": widths, "calls": len(symbols), "insitu_sum_us": insitu,
                   "insitu_failed": failed, "e2e_us": e2e.median_us if e2e.ok else None,
                   "e2e_error": None if e2e.ok else e2e.error, "table_sum_us": table_sum,
                   "overhead_us": next(iter(per_symbol.values())).extra.get("overhead_us") if per_symbol else None}
            if row["e2e_us"] and insitu:
                row["e2e_over_insitu"] = row["e2e_us"] / insitu
            if row["e2e_us"] and table_sum:
                row["e2e_over_table"] = row["e2e_us"] / table_sum
            rows.append(row)
            print(f"{name:16s} calls {len(symbols):3d}  table {table_sum or float('nan'):8.1f}  in-network "
                  f"{insitu or float('nan'):8.1f}  end to end {row['e2e_us'] or float('nan'):8.1f} us")
        label = runner.label

    def spread(key):
        xs = np.array([r[key] for r in rows if r.get(key)])
        return {"n": int(xs.size), "min": float(xs.min()), "max": float(xs.max()), "median": float(np.median(xs)),
                "iqr_over_median_pct": float(100 * (np.percentile(xs, 75) - np.percentile(xs, 25)) / np.median(xs))} \
            if xs.size else None

    def line_from_calibration(key):
        """``e2e = alpha * sum + beta`` fitted on the calibration networks only (what the width
        model fits its line on), judged on the other networks: held out from the fit."""
        fit = [r for r in rows if r["name"].startswith("calibration-") and r.get(key) and r.get("e2e_us")]
        held = [r for r in rows if not r["name"].startswith("calibration-") and r.get(key) and r.get("e2e_us")]
        if len(fit) < 2 or not held:
            return None
        alpha, beta = np.polyfit([r[key] for r in fit], [r["e2e_us"] for r in fit], 1)
        predicted = [float(alpha * r[key] + beta) for r in held]
        measured = [r["e2e_us"] for r in held]
        return {"alpha": float(alpha), "beta_us": float(beta), "fitted_on": len(fit), "judged_on": len(held),
                "fidelity": fidelity(predicted, measured),
                "errors_pct": {r["name"]: 100 * (p - m) / m for r, p, m in zip(held, predicted, measured)}}

    result = {"target": target.name, "task": args.task, "device_label": label, "lanes": state["model"]["lanes"],
              "networks": rows, "e2e_over_insitu": spread("e2e_over_insitu"), "e2e_over_table": spread("e2e_over_table"),
              "line_from_calibration": {"insitu": line_from_calibration("insitu_sum_us"),
                                        "table": line_from_calibration("table_sum_us")},
              "source_state": str(work.relative_to(RUNS.parent))}
    write_results(result, RESULTS / f"prune_insitu_{target.name}_{args.task}.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Real-architecture models on the emulated ARM board: predicted vs measured per family.

EMULATION figures: the "board" is real aarch64 TVM RPC servers under QEMU user-mode
emulation on this x86 host (``chamtvm device emulate-arm``); every latency below is QEMU's,
never an ARM core's. Everything goes through the CLI a user runs, against a tracker:

1. one member of each of a few families of ``chamtvm.zoo.real`` exported to ONNX at
   ``--resolution`` px (torchvision-style definitions, random weights);
2. the emulated ARM table: ``tune --target arm --space <tiny test space> --trials 0`` with
   the grid calibration sweep (``lower.calibration.calibration_kernels``) and, with
   ``--real-calibration``, the real-network sweep; no kernel of the models is in it;
3. per model, in this order (so no model's kernels are in the table when it is predicted
   from the sweep): ``predict MODEL.onnx --target arm`` (kernels the table lacks priced by
   the kernel model fitted on the sweep: "sweep only"), then ``measure MODEL.onnx --target
   arm --tracker ...`` (end to end, default schedules), then ``predict --measure-missing
   --tracker ...`` (the kernels the table lacks measured on the emulated board first: the
   table sum of the model's own kernels, "measured kernels").

    python benchmarks/bench_arm_real_models.py [--models a,b,c] [--resolution 128] [--real-calibration]

Writes ``benchmarks/results/real_models_arm_emulated.json`` and ``.png``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from common import (EMULATION, REPO, RESULTS, RUNS, argument_parser, fresh_workdir, load_average, parse_args,
                    pyplot, run_chamtvm, save_figure, summary, write_results)

WORK = RUNS / "bench_arm_real_models"
TINY = REPO / "tests" / "data" / "tiny_space.json"
DEFAULT_MODELS = ("mobilenet_v2_x0_5", "mobilenet_v3_small", "squeezenet1_1_x0_5", "resnet10_x0_5",
                  "shufflenet_v2_x0_5")


def cli_json(args: list[str], log_path: Path, timeout_s: float, ok_codes=(0,)) -> dict:
    """``python -m chamtvm ARGS --json`` (this checkout): its JSON; stderr into ``log_path``."""
    res = run_chamtvm(args, log_path, timeout_s, ok_codes=ok_codes, json_output=True)
    return {**res["json"], "_wall_s": res["wall_s"], "_exit": res["exit"]}


def export_models(models, resolution: int, folder: Path) -> dict[str, Path]:
    from chamtvm.zoo import real

    out = {}
    for m in models:
        path = folder / f"{m}_{resolution}.onnx"
        if not path.exists():
            real.export_onnx(m, resolution, path)
        out[m] = path
    return out


def _brief_prediction(p: dict) -> dict:
    keep = ("latency_ms", "latency_ms_range", "table_sum_ms", "residual", "estimated_kernels", "missing_kernels",
            "complete", "calls_by_source", "estimated_share", "_wall_s", "_exit")
    out = {k: p.get(k) for k in keep}
    out["measured_now"] = len(p.get("measured_now") or [])
    out["kernels"] = len(p.get("kernels") or [])
    return out


def run(args) -> dict:
    from chamtvm.devices import start_tracker
    from chamtvm.devices.arm import start_arm_servers
    from chamtvm.zoo import real

    work = fresh_workdir(WORK / f"r{args.resolution}{'-real' if args.real_calibration else ''}", args.resume)
    luts, log = work / "luts", work / "cli.log"
    onnx = export_models(args.models, args.resolution, WORK / "onnx")
    key = "arm-bench-real"
    load = {"before": load_average()}
    seconds = {}
    rows = {m: {"model": m, "family": real.family_of(m), "resolution": args.resolution} for m in args.models}
    with start_tracker() as tracker:
        with start_arm_servers(tracker.tracker, key, n=1, log=print):
            trk = f"{tracker.tracker[0]}:{tracker.tracker[1]}"
            remote = ["--tracker", trk, "--key", key]
            load["devices_up"] = load_average()
            t0 = time.time()
            table_args = ["tune", "--target", "arm", *remote, "--space", str(TINY), "--trials", "0", "--heldout", "0",
                          "--train-networks", "0", "--task", "none", "--luts-dir", str(luts), "--no-progress",
                          "--out", str(work / "table-report.json")] + (["--real-calibration"] if args.real_calibration else [])
            table_report = cli_json(table_args, log, timeout_s=args.timeout_min * 60)
            seconds["table"] = time.time() - t0
            load["after_table"] = load_average()
            print(f"emulated ARM table: {table_report['table']['rows']} rows in {seconds['table'] / 60:.1f} min "
                  f"(load average {load['after_table']})")
            common = ["--target", "arm", "--luts-dir", str(luts)]
            for m in args.models:  # every model from the sweep first: no model's kernels in the table yet
                try:
                    rows[m]["sweep_only"] = _brief_prediction(cli_json(["predict", str(onnx[m]), *common], log,
                                                                       600, ok_codes=(0, 3)))
                except Exception as e:
                    rows[m]["sweep_only_error"] = str(e)[:500]
                print(f"  {m}: predicted (sweep only) {rows[m].get('sweep_only', {}).get('latency_ms')} ms")
            load["after_predict"] = load_average()
            for m in args.models:
                try:
                    meas = cli_json(["measure", str(onnx[m]), *common, *remote], log, args.timeout_min * 60)
                    rows[m]["measured"] = {k: meas.get(k) for k in ("latency_ms", "latency_ms_min", "latency_ms_max",
                                                                    "repeat", "number", "samples_ms", "error",
                                                                    "device_label", "emulated", "_wall_s")}
                    if meas.get("samples_ms"):
                        rows[m]["measured"]["spread"] = summary(meas["samples_ms"])
                    rows[m]["measured_ms"] = meas.get("latency_ms")
                except Exception as e:
                    rows[m]["measured_error"] = str(e)[:500]
                print(f"  {m}: measured {rows[m].get('measured_ms')} ms (EMULATION; load average {load_average()})")
                try:
                    rows[m]["measured_kernels"] = _brief_prediction(cli_json(
                        ["predict", str(onnx[m]), *common, *remote, "--measure-missing"], log, args.timeout_min * 60,
                        ok_codes=(0, 3)))
                except Exception as e:
                    rows[m]["measured_kernels_error"] = str(e)[:500]
                print(f"  {m}: predicted after --measure-missing {rows[m].get('measured_kernels', {}).get('latency_ms')} ms")
            load["after_models"] = load_average()
    for r in rows.values():
        for proto in ("sweep_only", "measured_kernels"):
            p, meas = r.get(proto), r.get("measured_ms")
            if p and p.get("latency_ms") and meas:
                r[f"{proto}_error_pct"] = 100 * (p["latency_ms"] - meas) / meas
    return {"EMULATION": EMULATION, "resolution": args.resolution, "models": list(args.models),
            "table": {"rows": table_report["table"]["rows"],
                      "calibration_measured": table_report["table"].get("calibration_measured_now"),
                      "sweeps": ["grid"] + (["real-network"] if args.real_calibration else []),
                      "space": "tests/data/tiny_space.json", "device_label": table_report["device_label"],
                      "emulated": table_report["emulated"]},
            "schedules": "default (no tuned database)", "load_average_1_5_15": load,
            "seconds": {k: round(v, 1) for k, v in seconds.items()},
            "protocols": {"sweep_only": "predict from the sweep table (kernel model prices every model kernel)",
                          "measured_kernels": "predict --measure-missing: the model's kernels measured on the "
                                              "emulated board first, then the table sum"},
            "fidelity": fidelity_by_protocol(list(rows.values())), "per_model": list(rows.values())}


def fidelity_by_protocol(rows: list[dict]) -> dict:
    from chamtvm.core.metrics import fidelity

    out = {}
    for proto in ("sweep_only", "measured_kernels"):
        ok = [r for r in rows if r.get(proto) and r[proto].get("latency_ms") and r.get("measured_ms")]
        if ok:
            out[proto] = fidelity([r[proto]["latency_ms"] for r in ok], [r["measured_ms"] for r in ok])
            out[proto]["abs_error_pct"] = summary([abs(r[f"{proto}_error_pct"]) for r in ok])
            # the range spans the estimated kernels' intervals: a model without any has none
            ranged = [r for r in ok if r[proto].get("latency_ms_range")
                      and (r[proto].get("calls_by_source") or {}).get("estimated")]
            out[proto]["models_with_range"] = len(ranged)
            out[proto]["measured_within_predicted_range"] = sum(
                r[proto]["latency_ms_range"][0] <= r["measured_ms"] <= r[proto]["latency_ms_range"][1] for r in ranged)
    return out


def print_figures(out: dict) -> None:
    print(f"\n{out['EMULATION']}; {out['resolution']} px; table {out['table']['rows']} rows ({out['table']['sweeps']})")
    print(f"{'model':22s} {'family':14s} {'measured ms (IQR%)':>20s} {'sweep-only ms':>14s} {'err%':>7s} "
          f"{'measured-kernels ms':>20s} {'err%':>7s}")
    for r in out["per_model"]:
        meas = r.get("measured") or {}
        sp = meas.get("spread") or {}

        def g(proto):
            p = r.get(proto) or {}
            e = r.get(f"{proto}_error_pct")
            return (f"{p['latency_ms']:14.1f}" if p.get("latency_ms") else f"{'-':>14s}",
                    f"{e:+7.1f}" if e is not None else f"{'-':>7s}")

        a, b = g("sweep_only"), g("measured_kernels")
        m = f"{r['measured_ms']:12.1f} ({sp.get('iqr_spread_pct', 0):4.1f}%)" if r.get("measured_ms") else f"{'-':>20s}"
        print(f"{r['model']:22s} {r['family']:14s} {m:>20s} {a[0]} {a[1]} {b[0]:>20s} {b[1]}")
    for proto, f in out["fidelity"].items():
        print(f"{proto}: n={f['n']} within ±10% {100 * f['within_10pct']:.0f}%, MAPE {f['mape_pct']:.1f}%, "
              f"bias {f.get('bias_pct', float('nan')):+.1f}%, Kendall tau {f.get('kendall_tau', float('nan')):.2f}; "
              f"measured inside the predicted range for {f['measured_within_predicted_range']} of {f['models_with_range']}")
    print(f"load average (1, 5, 15 min) at the recorded moments: {out.get('load_average_1_5_15')}")


def plot(out: dict, path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 5))
    vals = []
    for proto, marker in (("sweep_only", "o"), ("measured_kernels", "s")):
        for i, r in enumerate(out["per_model"]):
            p = r.get(proto) or {}
            if p.get("latency_ms") and r.get("measured_ms"):
                ax.scatter(r["measured_ms"], p["latency_ms"], marker=marker, color=f"C{i}",
                           label=f"{r['family']} ({proto.replace('_', ' ')})")
                vals += [r["measured_ms"], p["latency_ms"]]
    if vals:
        lo, hi = min(vals) * 0.7, max(vals) * 1.3
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.fill_between([lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="grey", alpha=0.15, lw=0)
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("measured end to end, ms (EMULATION)")
    ax.set_ylabel("predicted, ms")
    ax.set_title(f"real models at {out['resolution']} px on the emulated ARM board\n(QEMU user mode on x86: "
                 f"emulation timings, not ARM device latency)", fontsize=9)
    ax.legend(fontsize=6)
    save_figure(fig, path)


def main(argv=None) -> int:
    ap = argument_parser(__doc__)
    ap.add_argument("--models", type=lambda s: s.split(","), default=list(DEFAULT_MODELS))
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--real-calibration", action="store_true", help="also the real-network sweep in the table")
    ap.add_argument("--timeout-min", type=float, default=40)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--analyze-only", action="store_true", help="recompute the figures and plot from --out")
    ap.add_argument("--out", type=Path, default=RESULTS / "real_models_arm_emulated.json")
    args = parse_args(ap, argv)
    import warnings

    warnings.filterwarnings("ignore")
    WORK.mkdir(parents=True, exist_ok=True)
    if args.analyze_only:
        out = json.loads(args.out.read_text())
        out["fidelity"] = fidelity_by_protocol(out["per_model"])
    else:
        out = run(args)
    print_figures(out)
    write_results(out, args.out, figure=plot, measurements_from=args.out if args.analyze_only else None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

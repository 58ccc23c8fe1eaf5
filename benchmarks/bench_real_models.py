"""Latency prediction on real architecture families, leave-one-family-out, on x86.

Protocol (NNLQP's "a model you have never seen"):
  * the development zoo (``chamtvm.zoo.real``: torchvision-style definitions, random
    weights) is exported to ONNX at 128 and 224 px, lowered with chamtvm's pipeline, and
    every model is measured end to end (``measure_network``, default schedules, the
    pipeline the target deploys with) and every kernel is measured into a table;
  * for each family F: the kernel model is fitted on the calibration sweep plus the
    kernels of the *other* families (kernels of F that also occur elsewhere stay table
    hits, the rest are priced by the model), and F's models are predicted as the sum over
    their kernels; a second figure multiplies by the median measured/sum ratio of the other
    families' networks (fitted without F);
  * figures: share within +-5 % / +-10 %, MAPE, Kendall tau, per family and per resolution;
    the same without any zoo kernels in the table ("sweep only": what a user with a fresh
    table gets), for the old grid sweep and for the real-network sweep.

Measurement is resumable (everything appended to runs/bench_real_models/), the analysis
reruns from it in seconds. The CPU is shared: figures are contended timings.

    python benchmarks/bench_real_models.py [--quick] [--resolutions 128,224] [--analyze-only]

Writes benchmarks/results/real_models_x86.json and real_models_x86.png.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
warnings.filterwarnings("ignore")

from chamtvm.core.jsonl import append_lines  # noqa: E402
from chamtvm.core.metrics import iqr_spread_pct  # noqa: E402
from chamtvm.zoo import real  # noqa: E402

WORK = REPO / "runs" / "bench_real_models"
QUICK_MODELS = ("mobilenet_v2", "mnasnet0_5", "mobilenet_v3_small", "efficientnet_lite_x0_5", "resnet10_x0_5",
                "squeezenet1_1_x0_5", "shufflenet_v2_x0_5", "regnet_x_200mf", "vit_hybrid_tiny")


def append_jsonl(path: Path, row: dict) -> None:
    append_lines(path, [json.dumps(row)])


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --------------------------------------------------------------------- measuring
def measure(work: Path, resolutions, models, sweep_per_kind: int, log=print) -> None:
    from chamtvm.lower.calibration import calibration_kernels, real_calibration_kernels
    from chamtvm.lower.network import lower_onnx
    from chamtvm.measure.local import LocalRunner
    from chamtvm.measure.network import measure_network
    from chamtvm.table.fill import fill_table, prepare
    from chamtvm.table.store import LatencyTable
    from chamtvm.targets.spec import get_target
    from chamtvm.tuning.schedules import ScheduleSource

    work.mkdir(parents=True, exist_ok=True)
    target = get_target("x86")
    sched = ScheduleSource(target, use_database=False)
    table = LatencyTable(work / "x86.jsonl").load()
    sources = work / "sources.jsonl"  # which kernels each source (sweep, model) has
    done = {(r["source"], r.get("resolution")) for r in _read_jsonl(sources)}
    nets_path = work / "networks.jsonl"
    measured_nets = {(r["model"], r["resolution"]) for r in _read_jsonl(nets_path)}
    with LocalRunner(target) as runner:
        for name, make in (("sweep_grid", calibration_kernels),
                           ("sweep_real", lambda: real_calibration_kernels(sweep_per_kind))):
            if (name, None) in done:
                continue
            t0 = time.time()
            prepared = prepare(make(), target, sched)
            s = fill_table(prepared, table, runner, target)
            append_jsonl(sources, {"source": name, "resolution": None,
                                   "kernels": [[p.key, 1] for p in prepared]})
            log(f"{name}: {len(prepared)} kernels, {s.measured} measured, {s.failed} failed, "
                f"{time.time() - t0:.0f} s")
        # one member per family at every resolution first: an interrupted run still covers all families
        first = [m for m in models if m in QUICK_MODELS]
        order = [(m, r) for group in (first, [m for m in models if m not in first])
                 for r in resolutions for m in group]
        for m, res in order:
            if (m, res) in done and (m, res) in measured_nets:
                continue
            t0 = time.time()
            path = real.export_onnx(m, res, work / "onnx" / f"{m}_{res}.onnx")
            net = lower_onnx(path)
            prepared = prepare(net.kernels, target, sched)
            s = fill_table(prepared, table, runner, target)
            if (m, res) not in done:
                append_jsonl(sources, {"source": m, "resolution": res,
                                       "kernels": [[p.key, p.kernel.count] for p in prepared]})
            e2e_ms = float("nan")
            if (m, res) not in measured_nets:
                r = measure_network(net, target, runner, sched, key=f"{m}@{res}")
                row = {"model": m, "family": real.family_of(m), "resolution": res, "error": r.error,
                       "device_label": runner.label, "emulated": runner.emulated}
                if r.ok:
                    row.update(runtime_us_p50=float(np.median(r.samples_us)), samples_us=list(r.samples_us),
                               iqr_spread_pct=iqr_spread_pct(r.samples_us))
                append_jsonl(nets_path, row)
                e2e_ms = row.get("runtime_us_p50", float("nan")) / 1e3
            log(f"{m}@{res}: {len(prepared)} kernels ({s.measured} new, {s.failed} failed), "
                f"e2e {e2e_ms:.2f} ms, {time.time() - t0:.0f} s")


# ---------------------------------------------------------------------- analysis
def _kendall(a, b) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(a, b).statistic) if len(a) > 2 else float("nan")


def _metrics(pred, meas) -> dict:
    pred, meas = np.asarray(pred, float), np.asarray(meas, float)
    if not len(pred):
        return {"n": 0}
    err = (pred - meas) / meas * 100
    return {"n": int(len(err)), "within_5pct": float(np.mean(np.abs(err) <= 5)),
            "within_10pct": float(np.mean(np.abs(err) <= 10)), "mape_pct": float(np.mean(np.abs(err))),
            "mean_err_pct": float(np.mean(err)), "kendall_tau": _kendall(pred, meas)}


def analyze(work: Path, out_json: Path, out_png: Path | None, model_factory=None) -> dict:
    from chamtvm.latency.models import KernelCostModel
    from chamtvm.table.store import LatencyTable

    table = LatencyTable(work / "x86.jsonl").load()
    rows = {r["key"]: r for r in table.rows()}
    src = _read_jsonl(work / "sources.jsonl")
    sweep = {s["source"]: [k for k, _ in s["kernels"] if k in rows] for s in src if s["resolution"] is None}
    models = {(s["source"], s["resolution"]): s["kernels"] for s in src if s["resolution"] is not None}
    nets = {(r["model"], r["resolution"]): r for r in _read_jsonl(work / "networks.jsonl") if r.get("runtime_us_p50")}
    keys_of_family: dict[str, set] = {}
    for (m, res), ks in models.items():
        keys_of_family.setdefault(real.family_of(m), set()).update(k for k, _ in ks)
    # intervals (5-fold CV inside fit) are judged on the sweep-only protocols, where one model serves all
    make = model_factory or (lambda folds=0: KernelCostModel(cv_folds=folds))

    def predict(train_keys: set, m, res, km, bounds=None):
        total, est, n_est = 0.0, 0.0, 0
        lo = hi = 0.0
        todo = []
        for k, c in models[(m, res)]:
            if k in train_keys:
                total += rows[k]["runtime_us_p50"] * c
            elif k in rows:
                todo.append((rows[k], c))
        if todo:
            us, ul, uh = km.predict_interval_us([r for r, _ in todo])
            for (r, c), u, a, b in zip(todo, us, ul, uh):
                est += float(u) * c
                lo += float(a) * c
                hi += float(b) * c
                n_est += c
        if bounds is not None:
            bounds[:] = [total + lo, total + hi]
        return total + est, n_est

    protocols = {}
    # oracle: every kernel from the measured table (no model): the floor the measurement
    # noise and the sum-vs-end-to-end gap leave on a shared CPU
    cases = [("oracle_all_kernels_measured", None, False), ("sweep_grid_only", ["sweep_grid"], False),
             ("sweep_real_only", ["sweep_grid", "sweep_real"], False),
             ("lofo_grid", ["sweep_grid"], True), ("lofo_real", ["sweep_grid", "sweep_real"], True)]
    all_model_keys = set().union(*[set(v) for v in keys_of_family.values()]) if keys_of_family else set()
    for case, sweeps, lofo in cases:
        if sweeps is None:
            base = all_model_keys | set().union(*[set(v) for v in sweep.values()])
        elif not all(s in sweep for s in sweeps):
            continue
        else:
            base = set().union(*[set(sweep[s]) for s in sweeps])
        fams = sorted({real.family_of(m) for m, _ in nets})
        per_model = []
        kernel_errs: list[tuple[str, float, float]] = []
        fitted = {}
        for fam in fams:
            if lofo:
                other = set().union(*[v for f, v in keys_of_family.items() if f != fam])
                train = (base | other) & set(rows)
            else:
                train = base & set(rows)
            key = frozenset(train)
            if key not in fitted:
                fitted[key] = make(0 if lofo or sweeps is None else 5).fit([rows[k] for k in sorted(train)])
            km = fitted[key]
            # kernel level: log(predicted / measured) of the family's estimated kernels
            test = {}
            for (m, res), ks in models.items():
                if real.family_of(m) == fam:
                    for k, c in ks:
                        if k in rows and k not in train:
                            test[k] = test.get(k, 0) + c
            if test:
                tk = sorted(test)
                est = km.predict_us([rows[k] for k in tk])
                for k, e in zip(tk, est):
                    kernel_errs.append((fam, float(np.log(e / rows[k]["runtime_us_p50"])),
                                        rows[k]["runtime_us_p50"] * test[k]))
            fam_nets = [(m, res) for (m, res) in nets if real.family_of(m) == fam and (m, res) in models]
            # network-level scale from the other families only (never from the family judged)
            ratios = []
            for (m2, r2), row in nets.items():
                if real.family_of(m2) != fam and (m2, r2) in models:
                    s2, _ = predict(train, m2, r2, km)
                    ratios.append(row["runtime_us_p50"] / s2)
            scale = float(np.median(ratios)) if ratios else 1.0
            for m, res in fam_nets:
                bounds: list[float] = []
                s, n_est = predict(train, m, res, km, bounds)
                calls = sum(c for _, c in models[(m, res)])
                per_model.append({"model": m, "family": fam, "resolution": res,
                                  "measured_ms": nets[(m, res)]["runtime_us_p50"] / 1e3,
                                  "measured_iqr_spread_pct": nets[(m, res)]["iqr_spread_pct"],
                                  "predicted_sum_ms": s / 1e3, "predicted_scaled_ms": s * scale / 1e3,
                                  "scale_from_other_families": scale, "estimated_calls": n_est, "calls": calls,
                                  "predicted_range_ms": [bounds[0] / 1e3, bounds[1] / 1e3]})
        summary = {}
        for which in ("predicted_sum_ms", "predicted_scaled_ms"):
            block = {"all": _metrics([p[which] for p in per_model], [p["measured_ms"] for p in per_model])}
            for res in sorted({p["resolution"] for p in per_model}):
                sel = [p for p in per_model if p["resolution"] == res]
                block[f"{res}px"] = _metrics([p[which] for p in sel], [p["measured_ms"] for p in sel])
            block["per_family"] = {f: _metrics([p[which] for p in per_model if p["family"] == f],
                                               [p["measured_ms"] for p in per_model if p["family"] == f])
                                   for f in sorted({p["family"] for p in per_model})}
            summary[which] = block
        inside = [p["predicted_range_ms"][0] <= p["measured_ms"] <= p["predicted_range_ms"][1] for p in per_model
                  if p["predicted_range_ms"][1] > p["predicted_range_ms"][0]]
        summary["range_coverage"] = {"n_with_range": len(inside),
                                     "share_measured_inside": float(np.mean(inside)) if inside else None}
        ke = np.array([e for _, e, _ in kernel_errs]) if kernel_errs else np.zeros(0)
        kw = np.array([w for _, _, w in kernel_errs]) if kernel_errs else np.zeros(0)
        kernel_level = {"n_estimated": int(len(ke))}
        if len(ke):
            kernel_level.update(median_abs_log_err=float(np.median(np.abs(ke))),
                                time_weighted_mean_log_err=float(np.sum(ke * kw) / kw.sum()),
                                time_weighted_abs_log_err=float(np.sum(np.abs(ke) * kw) / kw.sum()))
        protocols[case] = {"sweeps": sweeps, "leave_one_family_out": lofo, "summary": summary,
                           "kernel_level": kernel_level, "models": per_model,
                           "train_rows_max": max(len(k) for k in fitted) if fitted else 0}
    result = {
        "benchmark": "bench_real_models", "target": "x86", "device": "local x86 CPU (2 cores, SHARED with other "
        "work: contended timings)", "schedules": "default pipeline (no tuning database)",
        "table_rows": len(rows), "sweep_kernels": {k: len(v) for k, v in sweep.items()},
        "networks_measured": len(nets), "protocols": protocols,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(result, indent=1))
    if out_png is not None and protocols:
        _plot(protocols, out_png)
    return result


def _plot(protocols: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = [c for c in ("oracle_all_kernels_measured", "sweep_grid_only", "sweep_real_only", "lofo_real")
             if c in protocols]
    fig, axes = plt.subplots(1, len(cases), figsize=(4.6 * len(cases), 4.6), squeeze=False)
    for ax, case in zip(axes[0], cases):
        per = protocols[case]["models"]
        fams = sorted({p["family"] for p in per})
        cmap = plt.get_cmap("tab10")
        for i, f in enumerate(fams):
            sel = [p for p in per if p["family"] == f]
            ax.scatter([p["measured_ms"] for p in sel], [p["predicted_sum_ms"] for p in sel], s=22,
                       color=cmap(i % 10), label=f, marker="o")
        lim = [min(p["measured_ms"] for p in per) * 0.7, max(p["measured_ms"] for p in per) * 1.4]
        ax.plot(lim, lim, "k-", lw=0.8)
        for f in (0.9, 1.1):
            ax.plot(lim, [v * f for v in lim], "k:", lw=0.7)
        ax.set_xscale("log"); ax.set_yscale("log")
        m = protocols[case]["summary"]["predicted_sum_ms"]["all"]
        ax.set_title(f"{case}: {m['within_10pct'] * 100:.0f}% within ±10%, MAPE {m['mape_pct']:.1f}%", fontsize=9)
        ax.set_xlabel("measured ms (x86, contended)"); ax.set_ylabel("predicted ms (kernel sum)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one member per family, 128 px only")
    ap.add_argument("--resolutions", default="128,224")
    ap.add_argument("--models", default=None, help="comma-separated zoo members (default: all)")
    ap.add_argument("--sweep-per-kind", type=int, default=16, help="probes per operator kind in the real sweep")
    ap.add_argument("--work", type=Path, default=WORK)
    ap.add_argument("--analyze-only", action="store_true")
    args = ap.parse_args()
    resolutions = (128,) if args.quick else tuple(int(r) for r in args.resolutions.split(","))
    models = args.models.split(",") if args.models else (QUICK_MODELS if args.quick else real.names())
    if not args.analyze_only:
        measure(args.work, resolutions, models, args.sweep_per_kind, log=lambda m: print(m, flush=True))
    res = analyze(args.work, REPO / "benchmarks" / "results" / "real_models_x86.json",
                  REPO / "benchmarks" / "results" / "real_models_x86.png")
    for case, p in res["protocols"].items():
        for which in ("predicted_sum_ms", "predicted_scaled_ms"):
            m = p["summary"][which]["all"]
            print(f"{case:<28} {which:<20} n={m['n']:<3} within10={m.get('within_10pct', 0) * 100:5.1f}% "
                  f"within5={m.get('within_5pct', 0) * 100:5.1f}% MAPE={m.get('mape_pct', float('nan')):5.1f}% "
                  f"mean err={m.get('mean_err_pct', float('nan')):+6.1f}% tau={m.get('kendall_tau', float('nan')):.2f}")
        rc, kl = p["summary"]["range_coverage"], p["kernel_level"]
        if rc["n_with_range"]:
            print(f"{case:<28} measured inside the predicted range: {rc['share_measured_inside'] * 100:.0f}% "
                  f"of {rc['n_with_range']}")
        if kl["n_estimated"]:
            print(f"{case:<28} kernels estimated: {kl['n_estimated']}, median |log err| "
                  f"{kl['median_abs_log_err']:.3f}, time-weighted mean log err {kl['time_weighted_mean_log_err']:+.3f}")
    print("contended timings (2 shared cores); spread of each network's repeats in the JSON")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

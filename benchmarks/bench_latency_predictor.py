"""Latency predictors against each other on held-out networks, measured on the target.

Methods (all judged on the same held-out networks of space ``small``):
  flops_linear     least squares of latency on FLOPs, fitted on k measured networks
  encoding_xgb     XGBoost on the architecture encoding alone (no table), k networks
  table_sum        sum of table medians over the network's kernels (no network measured)
  table_scale      table sum x median(measured / table sum) of k networks
  table_ratio      table sum x learned residual ratio (XGBoost, network features), k networks
  table_additive   table sum + learned residual (XGBoost, relative), k networks
for k in 5, 10, 20, 30, 50 training networks, each over several random draws of the k.
Plus the measurement noise floor (repeat-to-repeat IQR), out-of-space ONNX networks
(ResNet basic blocks, ShuffleNet split, squeeze-excite, hard-swish at several resolutions)
priced with the unseen-kernel model, and batch prediction throughput.

    python benchmarks/bench_latency_predictor.py [--target x86] [--train 50] [--test 32] [--no-calibration]

Writes benchmarks/results/latency_predictor_<target>.json (``_nocalib`` with
``--no-calibration``) and a scatter plot PNG.

The residual mode of the full predictor is chosen by 5-fold cross-validation on its
training networks; nothing is chosen on the held-out networks reported. ``--no-calibration``
changes one thing: the calibration sweep's rows are neither measured nor seen (not by the
unseen-kernel model, not as table rows of the out-of-space networks), also when an earlier
run put them in the table; networks already measured are reused from the network table, so
two runs on one working folder, with and without, compare the same measurements.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from common import REPO, RESULTS, argument_parser, parse_args, pyplot, save_figure, write_results

warnings.filterwarnings("ignore")

from chamtvm.zoo import families as zoo  # noqa: E402
from chamtvm.latency.batch import BatchLatencyPredictor  # noqa: E402
from chamtvm.lower.calibration import calibration_kernels  # noqa: E402
from chamtvm.lower.coverage import space_kernel_map  # noqa: E402
from chamtvm.latency.features import network_feature_vector  # noqa: E402
from chamtvm.latency.models import KernelCostModel, LatencyPredictor, ResidualModel, kernel_dicts  # noqa: E402
from chamtvm.core.hostport import parse_hostport  # noqa: E402
from chamtvm.core.metrics import iqr_spread_pct  # noqa: E402
from chamtvm.table.store import LatencyTable  # noqa: E402
from chamtvm.measure.local import LocalRunner  # noqa: E402
from chamtvm.core.metrics import fidelity  # noqa: E402
from chamtvm.lower.network import lower_onnx  # noqa: E402
from chamtvm.tuning.schedules import ScheduleSource  # noqa: E402
from chamtvm.space.schema import SearchSpace  # noqa: E402
from chamtvm.table.fill import fill_table, prepare  # noqa: E402
from chamtvm.targets.spec import get_target  # noqa: E402
from chamtvm.table.networks import network_table
from chamtvm.pipeline.latency import price_archs
from chamtvm.pipeline.pricing import price_and_measure
from chamtvm.core.progress import progress_bar  # noqa: E402

KS = (5, 10, 20, 30, 50)


class TableWithout:
    """``table`` with the rows of ``hidden`` keys left out (what ``kernel_dicts`` reads:
    ``get``), so a run without the calibration sweep does not price out-of-space kernels
    from calibration rows another run measured into the same table."""

    def __init__(self, table: LatencyTable, hidden: set[str]):
        self.table, self.hidden = table, hidden

    def get(self, key: str):
        return None if key in self.hidden else self.table.get(key)


def measure_set(archs, space, target, runner, sched, table, nets, desc):
    """Per arch: encoding, FLOPs, network features, table sum (us), measured (us), IQR %."""
    out = []
    bar = progress_bar(len(archs), desc)
    for arch, m in price_archs(space, archs, LatencyPredictor(table), target, runner, sched, table, nets, bar):
        if not m.ok:
            continue
        known, _ = kernel_dicts(m.prepared, table)
        s = np.asarray(m.row["runtime_us_samples"])
        out.append({"enc": space.encode(arch),
                    "flops": sum(p.kernel.flops * p.kernel.count for p in m.prepared if p.kernel.flops == p.kernel.flops),
                    "X": network_feature_vector(known), "table_sum_us": m.table_sum_ms * 1e3,
                    "measured_us": m.row["runtime_us_p50"],
                    "iqr_pct": iqr_spread_pct(s)})
    bar.close()
    return out


def predict_all(method, train, test):
    """Predicted microseconds for ``test`` by ``method`` fitted on ``train``."""
    from xgboost import XGBRegressor

    ts = np.array([r["table_sum_us"] for r in test])
    if method == "table_sum":
        return ts
    y = np.array([r["measured_us"] for r in train])
    if method == "flops_linear":
        a, b = np.polyfit([r["flops"] for r in train], y, 1)
        return a * np.array([r["flops"] for r in test]) + b
    if method == "encoding_xgb":
        m = XGBRegressor(n_estimators=200, max_depth=3, learning_rate=0.1, n_jobs=1, random_state=0)
        m.fit(np.array([r["enc"] for r in train]), np.log(y))
        return np.exp(m.predict(np.array([r["enc"] for r in test])))
    mode = {"table_scale": "scale", "table_ratio": "ratio", "table_additive": "additive"}[method]
    rm = ResidualModel(mode).fit(np.array([r["X"] for r in train]), np.array([r["table_sum_us"] for r in train]), y)
    return rm.predict(np.array([r["X"] for r in test]), ts)


def cv_mape_pct(method, train, folds: int = 5) -> float:
    """Mean absolute percentage error of ``method`` in ``folds``-fold cross-validation over
    ``train`` alone (how a model mode is chosen without looking at the test networks)."""
    order = np.random.default_rng(0).permutation(len(train))
    errs = []
    for fold in np.array_split(order, min(folds, len(train))):
        held = set(fold.tolist())
        fit_on = [train[i] for i in order if i not in held]
        if len(fit_on) < 2:
            continue
        pred = predict_all(method, fit_on, [train[i] for i in fold])
        meas = np.array([train[i]["measured_us"] for i in fold])
        errs += list(np.abs(pred - meas) / meas * 100)
    return float(np.mean(errs))


def main(argv=None) -> int:
    ap = argument_parser(__doc__)
    ap.add_argument("--target", default="x86")
    ap.add_argument("--space", default="small")
    ap.add_argument("--train", type=int, default=50)
    ap.add_argument("--test", type=int, default=32)
    ap.add_argument("--draws", type=int, default=5, help="random draws of the k training networks")
    ap.add_argument("--resolutions", default="48,64,96", help="out-of-space ONNX input sizes")
    ap.add_argument("--luts-dir", type=Path, default=REPO / "luts")
    ap.add_argument("--no-calibration", action="store_true", help="kernel model without the calibration sweep")
    ap.add_argument("--tracker", default=None, help="HOST:PORT of a TVM RPC tracker (remote targets)")
    ap.add_argument("--key", default=None, help="RPC device key (default: the target's)")
    args = parse_args(ap, argv)
    t_start = time.time()

    target = get_target(args.target)
    if args.tracker:
        from chamtvm.measure.rpc import RPCRunner

        host, port = parse_hostport(args.tracker, "--tracker")
        runner = RPCRunner(target, host, port, args.key or target.rpc_key)
    else:
        runner = LocalRunner(target)
    sched = ScheduleSource(target)
    space = SearchSpace.load(args.space)
    table = LatencyTable.for_target(target.name, args.luts_dir)
    nets = network_table(target, args.luts_dir)
    rows_before, nets_before = len(table), len(nets)
    kmap = space_kernel_map(space)
    fill_table(prepare(kmap.kernels.values(), target, sched), table, runner, target)
    if not args.no_calibration:  # operator kinds outside the space, for the unseen-kernel model
        fill_table(prepare(calibration_kernels(), target, sched), table, runner, target)

    rng = np.random.default_rng(101)
    train_archs = [space.sample(rng) for _ in range(args.train)]
    rng = np.random.default_rng(7)  # the held-out set of bench_fidelity.py
    test_archs = [space.sample(rng) for _ in range(args.test)]
    train = measure_set(train_archs, space, target, runner, sched, table, nets, "training networks")
    test = measure_set(test_archs, space, target, runner, sched, table, nets, "held-out networks")
    measured = np.array([r["measured_us"] for r in test])
    noise = np.array([r["iqr_pct"] for r in test])

    methods = ("flops_linear", "encoding_xgb", "table_sum", "table_scale", "table_ratio", "table_additive")
    curves = {m: {} for m in methods}
    for k in KS:
        if k > len(train):
            continue
        for m in methods:
            fids = []
            for d in range(args.draws if m != "table_sum" else 1):
                idx = np.random.default_rng(1000 + d).choice(len(train), k, replace=False)
                pred = predict_all(m, [train[i] for i in idx], test)
                fids.append(fidelity(pred, measured))
            curves[m][k] = {key: {"mean": float(np.mean([f[key] for f in fids])),
                                  "std": float(np.std([f[key] for f in fids]))}
                            for key in ("within_5pct", "within_10pct", "mape_pct", "kendall_tau")}

    # full predictor at 30 networks: the residual mode is chosen by 5-fold cross-validation on
    # those training networks only (never on the held-out networks it is then reported on)
    k_full = max(k for k in KS if k <= len(train))  # the largest training set of the curves, at most 30
    k_full = min(k_full, 30)
    tr = train[:k_full]
    cv_mape = {m: cv_mape_pct(m, tr) for m in ("table_scale", "table_ratio", "table_additive")}
    best_mode = min(cv_mape, key=cv_mape.get)
    mode = {"table_scale": "scale", "table_ratio": "ratio", "table_additive": "additive"}[best_mode]
    residual = ResidualModel(mode).fit(np.array([r["X"] for r in tr]), np.array([r["table_sum_us"] for r in tr]),
                                       np.array([r["measured_us"] for r in tr]))
    full_pred = residual.predict(np.array([r["X"] for r in test]), np.array([r["table_sum_us"] for r in test]))

    # unseen kernels: cross-validated kernel model on the table rows, then out-of-space ONNX networks
    calib_keys = {p.key for p in prepare(calibration_kernels(), target, sched)}
    hidden = calib_keys if args.no_calibration else set()
    rows = [r for r in table.rows() if r["key"] not in hidden]
    seen_table = TableWithout(table, hidden)
    order = np.random.default_rng(0).permutation(len(rows))
    cv_pred, cv_meas = [], []
    for fold in np.array_split(order, 5):
        held = set(fold.tolist())
        km = KernelCostModel().fit([rows[i] for i in order if i not in held])
        cv_pred += list(km.predict_us([rows[i] for i in fold]))
        cv_meas += [rows[i]["runtime_us_p50"] for i in fold]
    kernel_cv = fidelity(cv_pred, cv_meas)
    kernel_model = KernelCostModel().fit(rows)
    oos = []
    oos_predictor = LatencyPredictor(seen_table, kernel_model, residual)  # table sum, kernel model, residual
    with tempfile.TemporaryDirectory() as tmp:
        todo = [(n, int(r)) for n in zoo.names() for r in args.resolutions.split(",")]
        bar = progress_bar(len(todo), "out-of-space ONNX networks")
        for name, res in todo:
            net = lower_onnx(zoo.export_onnx(name, res, Path(tmp) / f"{name}_{res}.onnx"))
            priced = price_and_measure(net, prepare(net.kernels, target, sched), oos_predictor, target, runner, sched,
                                       nets, {"zoo": name, "resolution": res})
            bar.update(1)
            if not priced.ok:
                continue
            oos.append({"name": f"{name}@{res}", "measured_ms": priced.measured_ms,
                        "estimated_kernels": len(priced.prediction.estimated), "kernels": len(priced.prediction.kernels),
                        "kernel_sum_ms": priced.table_sum_ms, "predicted_ms": priced.predicted_ms})
        bar.close()
    oos_fid = fidelity([o["predicted_ms"] for o in oos], [o["measured_ms"] for o in oos]) if oos else None
    oos_fid_raw = fidelity([o["kernel_sum_ms"] for o in oos], [o["measured_ms"] for o in oos]) if oos else None

    # batch prediction throughput (kernels known): 200k architectures
    bp = BatchLatencyPredictor(kmap, table, target, sched, residual=residual)
    idx = np.array([space.indices(space.sample(np.random.default_rng(5))) for _ in range(2000)])
    idx = np.repeat(idx, 100, axis=0)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        bp.predict_ms(idx)
        times.append(time.perf_counter() - t0)
    rate = len(idx) / np.array(times)

    result = {
        "benchmark": f"latency predictors, space {space.name}, target {target.name}",
        "device": runner.label, "emulated": runner.emulated,
        "train_networks": len(train), "test_networks": len(test),
        "noise_floor_iqr_pct": {"median": float(np.median(noise)), "max": float(np.max(noise))},
        "curves": {m: {str(k): v for k, v in c.items()} for m, c in curves.items()},
        "full_predictor": {"residual_mode": mode, "trained_on": k_full,
                           "mode_selection": "5-fold CV MAPE on the training networks",
                           "training_cv_mape_pct": cv_mape,
                           "fidelity": fidelity(full_pred, measured)},
        "calibration_sweep": not args.no_calibration,
        "kernel_model_cv": {"rows": len(rows), "median_ape_pct": kernel_cv["median_ape_pct"],
                            "within_10pct": kernel_cv["within_10pct"],
                            "within_25pct": float(np.mean(np.abs(np.subtract(cv_pred, cv_meas)) / cv_meas <= 0.25))},
        "out_of_space": {"networks": oos, "fidelity_full": oos_fid, "fidelity_kernel_sum": oos_fid_raw},
        "batch_prediction_networks_per_s": {"median": float(np.median(rate)), "min": float(np.min(rate))},
        "seconds": round(time.time() - t_start, 1),
        "tvm_threads": target.runtime_threads,
        "measured_now": {"table_rows": len(table) - rows_before, "networks": len(nets) - nets_before,
                         "note": "networks the network table already held are reused, not measured again"},
        "settings": {"train": args.train, "test": args.test, "draws": args.draws, "ks": list(KS),
                     "resolutions": args.resolutions, "space": space.name},
    }
    suffix = "_nocalib" if args.no_calibration else ""
    write_results(result, RESULTS / f"latency_predictor_{target.name}{suffix}.json",
                  figure=lambda _result, png: plot(png, space, mode, k_full, test, measured, full_pred, oos, runner))
    print_figures(result, runner, test, noise, methods, curves, mode, k_full, oos, oos_fid, oos_fid_raw, rate)
    return 0


def plot(path, space, mode, k_full, test, measured, full_pred, oos, runner) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(1, 2, figsize=(11, 5))
    m_ms = measured / 1e3
    ax[0].scatter(m_ms, np.array([r["table_sum_us"] for r in test]) / 1e3, s=18, label="table sum")
    ax[0].scatter(m_ms, full_pred / 1e3, s=18, marker="x", label=f"table + residual ({mode}, {k_full} nets)")
    lo, hi = m_ms.min() * 0.9, m_ms.max() * 1.1
    for a in ax:
        a.plot([0, 1e4], [0, 1e4], "k-", lw=0.8)
    ax[0].fill_between([lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="grey", alpha=0.15, label="±10%")
    ax[0].set(xlim=(lo, hi), ylim=(lo, hi), xlabel="measured ms", ylabel="predicted ms",
              title=f"{len(test)} held-out networks of space {space.name}")
    ax[0].legend(fontsize=8)
    if oos:
        om = np.array([o["measured_ms"] for o in oos])
        ax[1].scatter(om, [o["predicted_ms"] for o in oos], s=18, c="C2")
        for o in oos:
            ax[1].annotate(o["name"], (o["measured_ms"], o["predicted_ms"]), fontsize=6)
        lo, hi = om.min() * 0.8, om.max() * 1.2
        ax[1].fill_between([lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="grey", alpha=0.15)
        ax[1].set(xlim=(lo, hi), ylim=(lo, hi), xlabel="measured ms", ylabel="predicted ms",
                  title="out-of-space ONNX networks (unseen kernels estimated)")
    emu = " (EMULATION timings)" if runner.emulated else ""
    fig.suptitle(f"Latency prediction on {runner.label}{emu}", fontsize=9, wrap=True)
    save_figure(fig, path)


def print_figures(result, runner, test, noise, methods, curves, mode, k_full, oos, oos_fid, oos_fid_raw, rate) -> None:
    train = result["train_networks"]
    print(f"\n== latency predictors on {runner.label}: {len(test)} held-out networks, "
          f"noise floor (median repeat IQR) {np.median(noise):.1f}%")
    print(f"{'method':<16}" + "".join(f"{'k=' + str(k):>22}" for k in KS if k <= train))
    for m in methods:
        cells = []
        for k in KS:
            if k in curves[m]:
                c = curves[m][k]
                cells.append(f"{100 * c['within_10pct']['mean']:5.1f}%/{c['mape_pct']['mean']:5.2f}/{c['kendall_tau']['mean']:.3f}")
        print(f"{m:<16}" + "".join(f"{c:>22}" for c in cells))
    print("(cells: share within ±10% / MAPE % / Kendall tau, mean over draws)")
    f = result["full_predictor"]["fidelity"]
    print(f"full predictor (table + {mode} residual, {k_full} nets): ±5% {100 * f['within_5pct']:.1f}%, "
          f"±10% {100 * f['within_10pct']:.1f}%, MAPE {f['mape_pct']:.2f}%, tau {f['kendall_tau']:.3f}")
    kc = result["kernel_model_cv"]
    print(f"unseen-kernel model, 5-fold CV on {kc['rows']} table rows: median APE {kc['median_ape_pct']:.1f}%, "
          f"within ±10% {100 * kc['within_10pct']:.0f}%, within ±25% {100 * kc['within_25pct']:.0f}%")
    if oos_fid:
        print(f"out-of-space ONNX ({len(oos)} networks): full predictor ±10% {100 * oos_fid['within_10pct']:.0f}%, "
              f"MAPE {oos_fid['mape_pct']:.1f}%; kernel sum alone ±10% {100 * oos_fid_raw['within_10pct']:.0f}%, "
              f"MAPE {oos_fid_raw['mape_pct']:.1f}%")
    print(f"batch prediction: {np.median(rate):,.0f} networks/s (min {np.min(rate):,.0f})")
    print(f"total {result['seconds']} s; measured now: {result['measured_now']['table_rows']} table rows, "
          f"{result['measured_now']['networks']} networks")


if __name__ == "__main__":
    raise SystemExit(main())

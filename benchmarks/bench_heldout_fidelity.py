"""Held-out fidelity of a main job's tuned table, re-analysed from the job's own measurements.

    python benchmarks/bench_heldout_fidelity.py --luts DIR [--target x86] [--space macro]
        [--heldout 20] [--job-record FILE] [--out benchmarks/results/tuned_heldout_x86.json]

``DIR`` is the ``luts/`` folder a ``tune`` run filled (``bench_main_job.py --keep``): its
kernel table, network journal and saved residual. The training networks are the ones the
saved residual names (``<target>.<space>.residual.json.meta.json``: ``network_keys``); the
held-out networks are the next ``--heldout`` networks of the journal, in the order the job
measured them (the steps measure training, then held-out networks, then the picks). Nothing
is measured: the job's figures are recomputed as the job computes them (table sum; the
residual chosen by ``latency.models.fit_residual`` on the training networks only), with the
run's measurement noise (``table.noise``), the error per network against the share of its
time in each kernel kind, and a scatter plot. ``--job-record`` is the quiet-run record of the
job that measured (one JSON line): it goes into the results as ``job_quiet_run_record``.
"""

from __future__ import annotations

import json
from pathlib import Path

from common import RESULTS, argument_parser, parse_args, pyplot, save_figure, write_results


def analyse(luts: Path, target_name: str, space: str, heldout: int) -> dict:
    import numpy as np

    from chamtvm.core.metrics import fidelity
    from chamtvm.latency.features import NETWORK_FEATURES
    from chamtvm.latency.models import fit_residual, network_training_set
    from chamtvm.table.noise import noise_summary
    from chamtvm.table.store import LatencyTable
    from chamtvm.targets.spec import get_target

    target = get_target(target_name)
    table = LatencyTable(luts / f"{target_name}.jsonl").load()
    nets = LatencyTable(luts / f"{target_name}.networks.jsonl").load()
    meta = json.loads((luts / f"{target_name}.{space}.residual.json.meta.json").read_text())
    train_keys = list(meta["network_keys"])
    X, sums, meas, keys = network_training_set(nets.rows(), table, target.fingerprint)
    index = {k: i for i, k in enumerate(keys)}
    tr = [index[k] for k in train_keys if k in index]
    rest = [i for i in range(len(keys)) if keys[i] not in set(train_keys)]
    ho = rest[:heldout]
    model, selection = fit_residual(X[tr], sums[tr], meas[tr])
    pred = model.predict(X[ho], sums[ho]) if model is not None else sums[ho]
    shares = {}
    for kind in ("conv1x1", "depthwise", "conv_kxk", "dense", "pool"):
        col = NETWORK_FEATURES.index(f"share_us_{kind}") if f"share_us_{kind}" in NETWORK_FEATURES else None
        if col is not None:
            err = sums[ho] / meas[ho] - 1
            v = X[ho, col]
            shares[kind] = float(np.corrcoef(v, err)[0, 1]) if np.std(v) > 0 else None
    networks = [{"key": keys[i], "role": "train" if i in tr else "heldout", "table_sum_ms": sums[i] / 1e3,
                 "measured_ms": meas[i] / 1e3, "error_pct": 100 * (sums[i] / meas[i] - 1)} for i in tr + ho]
    for n, p in zip([n for n in networks if n["role"] == "heldout"], pred):
        n["predicted_ms"] = float(p) / 1e3
    rows = [nets.get(k) for k in keys]
    return {
        "target": target_name, "space": space, "training_networks": len(tr), "heldout_networks": len(ho),
        "fidelity_table_sum": fidelity(sums[ho], meas[ho]),
        "fidelity": fidelity(pred, meas[ho]),
        "residual_selection": selection,
        "fidelity_table_sum_all_measured": fidelity(sums, meas),
        "error_vs_kind_share_correlation": shares,
        "measurement_noise": noise_summary(table.rows(), [r for r in rows if r is not None]),
        "networks": networks,
    }


def plot(result: dict, png: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for role, marker in (("train", "o"), ("heldout", "s")):
        pts = [n for n in result["networks"] if n["role"] == role]
        ax.scatter([n["measured_ms"] for n in pts], [n["table_sum_ms"] for n in pts], marker=marker, label=f"{role}: table sum")
    ho = [n for n in result["networks"] if n["role"] == "heldout" and "predicted_ms" in n]
    ax.scatter([n["measured_ms"] for n in ho], [n["predicted_ms"] for n in ho], marker="x",
               label=f"held-out: with residual ({result['residual_selection'].get('chosen')})")
    lo = min(n["measured_ms"] for n in result["networks"]) * 0.85
    hi = max(n["measured_ms"] for n in result["networks"]) * 1.15
    for f, style in ((1.0, "-"), (1.1, ":"), (0.9, ":")):
        ax.plot([lo, hi], [lo * f, hi * f], "k" + style, lw=0.8)
    ax.set_xlabel("measured end to end (ms)")
    ax.set_ylabel("predicted (ms)")
    ax.set_title(f"{result['target']}: tuned table vs network (dotted: +-10 %)")
    ax.legend(fontsize=7)
    save_figure(fig, png)


def main(argv=None) -> int:
    ap = argument_parser(__doc__)
    ap.add_argument("--luts", type=Path, required=True)
    ap.add_argument("--target", default="x86")
    ap.add_argument("--space", default="macro")
    ap.add_argument("--heldout", type=int, default=20)
    ap.add_argument("--job-record", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=RESULTS / "tuned_heldout_x86.json")
    args = parse_args(ap, argv)
    result = analyse(args.luts, args.target, args.space, args.heldout)
    if args.job_record is not None:
        result["job_quiet_run_record"] = json.loads(args.job_record.read_text().strip().splitlines()[-1])
    f, fs = result["fidelity"], result["fidelity_table_sum"]
    print(f"held-out {fs['n']}: table sum {100 * fs['within_10pct']:.0f} % within 10 %, {100 * fs['within_5pct']:.0f} % "
          f"within 5 %, MAPE {fs['mape_pct']:.1f} %; with residual {result['residual_selection'].get('chosen')}: "
          f"{100 * f['within_10pct']:.0f} % / {100 * f['within_5pct']:.0f} %, MAPE {f['mape_pct']:.1f} %")
    write_results(result, args.out, figure=plot, measurements_from=args.luts)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

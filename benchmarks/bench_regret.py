"""Regret the search leaves on the built-in task ``nas-bench-macro``.

For 10/20/30/50/100 lookups x seeds 0-4 x 3 latency budgets on one target:

* ``bo``: the main job's accuracy step (GP on the ``macro`` features, imbalanced Sobol +
  BO, ``sampling.DEFAULTS``) over the whole space as the pool, then the most accurate
  network *by the GP's mean* among those predicted within the budget;
* ``random``: the same GP on uniformly drawn lookups;
* ``no-predictor``: the network with the most multiply-accumulates predicted within the
  budget (no accuracy information at all; seed independent);
* ``bo-lcb2`` / ``random-lcb2``: the same GPs, the pick maximizing the lower confidence
  bound ``mean - 2 std`` instead of the mean (kappa 2 fixed a priori, not tuned here).

Latency: the target's table and saved models (build them with the main job first:
``python -m chamtvm tune --target x86 --trials 0``), predicted for all 6,561 networks by
the batch predictor the search uses. Budgets: the 25/50/75 % quantiles of those predicted
latencies. Regret = (true best accuracy among the networks predicted within the budget)
- (true accuracy of the chosen one), in points; true accuracy = NAS-Bench-Macro's 3-seed
mean, the same value the lookup task returns. The choice is exhaustive over the 6,561
networks (the main job's genetic search can only do worse or equal).

The GP's settings (``sampling.DEFAULTS``) were selected by ``bench_accuracy.py`` for
ranking (Kendall tau) on seeds 100-104 of the same benchmark; nothing here was tuned on
these regrets.

Usage: ``python benchmarks/bench_regret.py [--target x86] [--workdir DIR] [--quick]``.
Writes ``benchmarks/results/regret_<target>.json`` and ``regret_<target>.png``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from common import RESULTS, argument_parser, one_blas_thread, parse_args, pyplot, save_figure, write_results

one_blas_thread()

import numpy as np  # noqa: E402

SAMPLES = [10, 20, 30, 50, 100]
SEEDS = [0, 1, 2, 3, 4]
QUANTILES = (0.25, 0.5, 0.75)
LCB_KAPPA = 2.0  # fixed a priori (the usual 2-sigma bound), not tuned on these regrets


def summary(v) -> dict:
    v = np.asarray(v, dtype=float)
    return {"mean": float(v.mean()), "median": float(np.median(v)), "std": float(v.std()),
            "max": float(v.max()), "values": [float(x) for x in v]}


def predicted_latency(target_name: str, luts: Path, schedules: Path | None):
    from chamtvm.latency.batch import BatchLatencyPredictor
    from chamtvm.latency.loading import load_predictor
    from chamtvm.lower.coverage import space_kernel_map
    from chamtvm.pipeline.regret import all_indices
    from chamtvm.space.schema import SearchSpace
    from chamtvm.table.store import LatencyTable
    from chamtvm.targets.spec import get_target
    from chamtvm.tuning.schedules import ScheduleSource

    space = SearchSpace.load("macro")
    target = get_target(target_name)
    table = LatencyTable.for_target(target.name, luts)
    if len(table) == 0:
        raise SystemExit(f"{table.path} is empty: run `python -m chamtvm tune --target {target.name} --trials 0` first")
    models = load_predictor(table, space=space.name)
    sched = ScheduleSource(target, schedules and schedules / target.name)
    batch = BatchLatencyPredictor(space_kernel_map(space), table, target, sched, models.kernel_model, models.residual)
    idx = all_indices(space)
    return space, idx, batch.predict_ms(idx), {"table": str(table.path), "rows": len(table),
                                               "residual": models.residual.mode if models.residual else "none",
                                               "estimated_kernels": batch.estimated_kernels}


def run(target: str, luts: Path, schedules: Path | None, samples, seeds) -> dict:
    from chamtvm.accuracy.encoding import accuracy_features
    from chamtvm.accuracy.evaluate import kendall_tau
    from chamtvm.accuracy.fit import LOG_ERROR_SCALE
    from chamtvm.accuracy.nasbench import NasBenchMacro
    from chamtvm.accuracy.sampling import DEFAULTS, sample_and_fit

    space, idx, lat, latency_info = predicted_latency(target, luts, schedules)
    true = NasBenchMacro.load().true_accuracy(idx)
    X = accuracy_features(space, idx)
    macs = space.costs(idx)[:, 1]
    budgets = [float(f"{q:.3g}") for q in np.quantile(lat, QUANTILES)]
    feas = [lat <= b for b in budgets]
    best_true = [float(true[f].max()) for f in feas]

    def regret(score):
        out = []
        for f, bt in zip(feas, best_true):
            cand = np.flatnonzero(f)
            out.append(100 * (bt - true[cand[np.argmax(score[cand])]]))
        return out

    res = {"target": target, "latency": latency_info, "budgets_ms": budgets, "samples": list(samples),
           "seeds": list(seeds), "networks": int(len(idx)), "feasible": [int(f.sum()) for f in feas],
           "best_true_accuracy": best_true, "settings": dict(DEFAULTS), "methods": {}}
    res["methods"]["no-predictor"] = {"regret_points": regret(macs)}
    for method in ("bo", "random"):
        per_n, per_n_lcb = {}, {}
        for n in samples:
            regs, lregs, taus, secs = [], [], [], []
            for seed in seeds:
                t0 = time.time()
                gp, chosen = sample_and_fit(X, lambda i: true[i], n, method, seed=seed, kernel=DEFAULTS["kernel"],
                                            acquisition=DEFAULTS["acquisition"], kappa=DEFAULTS["kappa"],
                                            skew=DEFAULTS["skew"], log_error_scale=LOG_ERROR_SCALE)
                pred, std = gp.predict(X, return_std=True)
                secs.append(time.time() - t0)
                regs.append(regret(pred))
                lregs.append(regret(pred - LCB_KAPPA * std))
                taus.append(kendall_tau(pred, true))
            regs, lregs = np.array(regs), np.array(lregs)  # (seeds, budgets)
            per_n_lcb[str(n)] = {"regret_points": {f"{b:g}": summary(lregs[:, j]) for j, b in enumerate(budgets)},
                                 "regret_points_all_budgets": summary(lregs.ravel())}
            per_n[str(n)] = {"regret_points": {f"{b:g}": summary(regs[:, j]) for j, b in enumerate(budgets)},
                             "regret_points_all_budgets": summary(regs.ravel()),
                             "kendall_tau_all": summary(taus), "seconds_per_run": summary(secs)}
            print(f"{method:>6} n={n:>3}: mean regret {regs.mean():.3f} points "
                  f"(per budget {', '.join(f'{m:.3f}' for m in regs.mean(axis=0))}), tau {np.mean(taus):.3f}; "
                  f"LCB pick: {lregs.mean():.3f} points", flush=True)
        res["methods"][method] = per_n
        res["methods"][f"{method}-lcb{LCB_KAPPA:g}"] = per_n_lcb
    print(f"no-predictor: regret {', '.join(f'{r:.3f}' for r in res['methods']['no-predictor']['regret_points'])} "
          f"points at budgets {budgets} ms")
    return res


def plot(res: dict, path: Path) -> None:
    plt = pyplot()
    budgets = res["budgets_ms"]
    fig, axes = plt.subplots(1, len(budgets), figsize=(4.2 * len(budgets), 3.8), sharey=True)
    ns = res["samples"]
    for j, (ax, b) in enumerate(zip(axes, budgets)):
        for m, label in (("bo", "GP + BO sampling"), ("random", "GP + random sampling"),
                         ("bo-lcb2", "GP + BO, LCB pick"), ("random-lcb2", "GP + random, LCB pick")):
            r = [res["methods"][m][str(n)]["regret_points"][f"{b:g}"] for n in ns]
            ax.errorbar(ns, [x["mean"] for x in r], yerr=[x["std"] for x in r], marker="o", capsize=3, label=label,
                        ls="-" if "lcb" not in m else ":")
        ax.axhline(res["methods"]["no-predictor"]["regret_points"][j], color="black", ls="--", lw=1,
                   label="no predictor (largest MACs)")
        ax.axhline(0.1, color="grey", ls=":", lw=1, label="goal 0.1 points")
        ax.set_yscale("symlog", linthresh=1.0)
        ax.set_ylim(bottom=0)
        ax.set(xscale="log", xlabel="lookups (trained architectures)", title=f"budget {b:g} ms on {res['target']}")
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("regret (accuracy points)")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"NAS-Bench-Macro: regret of the pick, mean ± std over {len(res['seeds'])} seeds")
    save_figure(fig, path, dpi=120)


def main(argv=None) -> int:
    ap = argument_parser(__doc__)
    ap.add_argument("--target", default="x86")
    ap.add_argument("--workdir", type=Path, default=None, help="folder holding luts/ (default $CHAMTVM_HOME or cwd)")
    ap.add_argument("--quick", action="store_true", help="10/30 samples x 2 seeds (smoke run, not reported)")
    args = parse_args(ap, argv)
    if args.workdir:
        os.environ["CHAMTVM_HOME"] = str(args.workdir.resolve())
    from chamtvm.core.workdir import luts_dir, schedules_root

    samples, seeds = ([10, 30], [0, 1]) if args.quick else (SAMPLES, SEEDS)
    t0 = time.time()
    res = run(args.target, luts_dir(), schedules_root(), samples, seeds)
    res["seconds"] = round(time.time() - t0, 1)
    res["note"] = "timings contended (2-core machine shared with other jobs); regrets do not depend on timing"
    suffix = "_quick" if args.quick else ""
    write_results(res, RESULTS / f"regret_{args.target}{suffix}.json", figure=plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

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
reruns from it in seconds. Run it under ``../shared/tools/quiet-run``: the results' provenance
block says how busy the machine was.

    python benchmarks/bench_real_models.py [--quick] [--resolutions 128,224] [--analyze-only]

Writes benchmarks/results/real_models_x86.json and real_models_x86.png.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np
from common import RESULTS, RUNS, argument_parser, load_average, parse_args, pyplot, save_figure, write_results

from chamtvm.core.jsonl import append_lines
from chamtvm.core.metrics import fidelity, iqr_spread_pct
from chamtvm.zoo import real

warnings.filterwarnings("ignore")

WORK = RUNS / "bench_real_models"
# the zoo's families in the order they were added; each later set was measured and judged with
# the code of its commit and nothing chosen on it (docs/real-models.md)
FAMILY_SETS = {
    "development": ("mobilenet_v2", "mnasnet", "mobilenet_v3", "mobilenet_v4", "efficientnet", "resnet",
                    "squeezenet", "shufflenet_v2", "regnet", "vit_hybrid"),
    "added_8f7021a": ("resnext", "densenet", "convnext", "efficientnet_v2"),
    "added_5bacdda": ("ghostnet", "mobilevit", "googlenet", "repvgg", "mixnet"),
}
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
            if (name, None) in done or (name == "sweep_real" and sweep_per_kind <= 0):
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


# ------------------------------------------------------- adaptive vs uniform sweep
ADAPTIVE = {"initial_per_kind": 4, "initial_seed": 0, "pool_per_kind": 16, "pool_seeds": [1, 2, 3, 4],
            "rounds": 5, "per_kind": 6, "n_models": 8}


def measure_adaptive(work: Path, settings: dict, log=print) -> None:
    """Both arms, round by round, from one initial sweep and one candidate pool: the adaptive
    arm picks the ``per_kind`` most uncertain candidates of each kernel kind
    (``chamtvm.latency.adaptive``), the uniform arm as many per kind at random from the same
    pool. Each round's picks of both arms are measured in one batch, interleaved, so that the
    machine's drift during the run hits both arms alike. Cumulative kernel sets are recorded
    in sources.jsonl as ``sweep_adaptive_r<r>`` / ``sweep_uniform_r<r>``; per-round reports
    (held-out error on every zoo kernel, a model fitted on the grid sweep + the arm's kernels)
    in adaptive_rounds.jsonl. Resumable: the choices depend only on the table's rows."""
    from chamtvm.latency.adaptive import SweepSampler, heldout_error
    from chamtvm.lower.calibration import real_calibration_kernels, real_sweep_pool
    from chamtvm.measure.local import LocalRunner
    from chamtvm.table.fill import fill_table, prepare
    from chamtvm.table.store import LatencyTable
    from chamtvm.targets.spec import get_target
    from chamtvm.tuning.schedules import ScheduleSource

    target = get_target("x86")
    sched = ScheduleSource(target, use_database=False)
    table = LatencyTable(work / "x86.jsonl").load()
    sources_path = work / "sources.jsonl"
    src = _read_jsonl(sources_path)
    done = {s["source"] for s in src}
    grid_rows = [table.get(k) for s in src if s["source"] == "sweep_grid" for k, _ in s["kernels"]]
    grid_rows = [r for r in grid_rows if r is not None]
    zoo_keys = sorted({k for s in src if s["resolution"] is not None and not s["source"].startswith("tuned:")
                       for k, _ in s["kernels"]})
    zoo_rows = [r for r in (table.get(k) for k in zoo_keys) if r is not None]
    t0 = time.time()
    initial_k = real_calibration_kernels(settings["initial_per_kind"], seed=settings["initial_seed"])
    pool_k = real_sweep_pool(settings["pool_per_kind"], settings["pool_seeds"],
                             exclude={k.struct_hash for k in initial_k})
    initial, pool = prepare(initial_k, target, sched), prepare(pool_k, target, sched)
    zoo_set = set(zoo_keys)
    pool = [p for p in pool if p.key not in zoo_set]  # the zoo's kernels are the test, never candidates
    log(f"adaptive: {len(initial)} initial kernels, {len(pool)} candidates ({time.time() - t0:.0f} s to lower)")
    rounds_path = work / "adaptive_rounds.jsonl"
    logged = {(r["arm"], r["round"]) for r in _read_jsonl(rounds_path)}
    with LocalRunner(target) as runner:
        s = fill_table(initial, table, runner, target)
        log(f"initial sweep: {s.measured} measured, {s.failed} failed")
        arms = {arm: SweepSampler(table, initial, pool, grid_rows, strategy, settings["per_kind"],
                                  settings["n_models"], seed=0)
                for arm, strategy in (("adaptive", "uncertainty"), ("uniform", "random"))}
        for r in range(settings["rounds"] + 1):
            picks = {}
            for arm, sampler in arms.items():
                name = f"sweep_{arm}_r{r}"
                if name not in done:
                    append_jsonl(sources_path, {"source": name, "resolution": None,
                                                "kernels": [[k, 1] for k in sampler.owned]})
                t1 = time.time()
                own = sampler.own_rows()
                held = heldout_error(sampler.fit(), zoo_rows)
                chosen, info = ([], {}) if r == settings["rounds"] else sampler.propose()
                picks[arm] = chosen
                if (arm, r) not in logged:
                    append_jsonl(rounds_path, {"arm": arm, "round": r, "sweep_kernels": len(sampler.owned),
                                               "sweep_rows_ok": len(own), "heldout_zoo_kernels": held,
                                               "chosen": len(chosen), **info, "fit_and_score_s": time.time() - t1,
                                               "load_average_1_5_15": load_average()})
                log(f"{arm} round {r}: {len(sampler.owned)} sweep kernels; zoo kernels median |log err| "
                    f"{held.get('median_abs_log_err', float('nan')):.3f}, bias {held.get('mean_log_err', float('nan')):+.3f}"
                    f"; next {len(chosen)}")
            if r == settings["rounds"]:
                break
            mixed = [p for pair in zip(picks["adaptive"], picks["uniform"]) for p in pair]
            mixed += picks["adaptive"][len(mixed) // 2:] + picks["uniform"][len(mixed) // 2:]
            t1 = time.time()
            s = fill_table(mixed, table, runner, target)
            log(f"round {r}: measured {s.measured} ({s.already_in_table} already in the table, "
                f"{s.failed} failed), {time.time() - t1:.0f} s")
            for arm, sampler in arms.items():
                sampler.accept(picks[arm])


def analyze_adaptive(work: Path, settings: dict, run: dict) -> dict:
    """The leave-one-family-out protocols for both arms at every round (equal numbers of
    sweep kernels per round), plus the per-round kernel-level reports."""
    rounds = _read_jsonl(work / "adaptive_rounds.jsonl")
    names = {s["source"] for s in _read_jsonl(work / "sources.jsonl")}
    cases = []
    for r in range(settings["rounds"] + 1):
        for arm in ("adaptive", "uniform"):
            if f"sweep_{arm}_r{r}" in names:
                cases += [(f"{arm}_r{r}_only", ["sweep_grid", f"sweep_{arm}_r{r}"], False),
                          (f"lofo_{arm}_r{r}", ["sweep_grid", f"sweep_{arm}_r{r}"], True)]
    res = analyze(work, extra_cases=cases,
                  extra={"run": run, "adaptive_settings": settings, "adaptive_rounds": rounds})
    comparison = []
    for r in range(settings["rounds"] + 1):
        row = {"round": r}
        for arm in ("adaptive", "uniform"):
            rep = next((x for x in rounds if x["arm"] == arm and x["round"] == r), None)
            lofo = res["protocols"].get(f"lofo_{arm}_r{r}")
            only = res["protocols"].get(f"{arm}_r{r}_only")
            if rep is None or lofo is None:
                continue
            row["sweep_kernels"] = rep["sweep_kernels"]
            row[arm] = {"zoo_kernels_heldout": rep["heldout_zoo_kernels"],
                        "lofo": lofo["summary"]["predicted_sum_ms"]["all"], "lofo_kernel_level": lofo["kernel_level"],
                        "sweep_only": only["summary"]["predicted_sum_ms"]["all"] if only else None}
        comparison.append(row)
    res["comparison_equal_kernels"] = comparison
    res["error_on_next_picks"] = _next_pick_errors(work, settings)
    return res


def _next_pick_errors(work: Path, settings: dict) -> list[dict]:
    """Does the uncertainty find the kernels the model gets wrong? Per arm and round r: the
    error of the model fitted after round r (grid sweep + the arm's kernels) on the kernels
    the arm picked in round r, measured afterwards (at round 0 both arms share one model)."""
    from chamtvm.latency.adaptive import heldout_error
    from chamtvm.latency.models import KernelCostModel
    from chamtvm.table.store import LatencyTable

    rows = {r["key"]: r for r in LatencyTable(work / "x86.jsonl").load().rows()}
    sweep = {s["source"]: [k for k, _ in s["kernels"] if k in rows] for s in _read_jsonl(work / "sources.jsonl")
             if s["resolution"] is None}
    out = []
    for r in range(settings["rounds"]):
        for arm in ("adaptive", "uniform"):
            cur, nxt = sweep.get(f"sweep_{arm}_r{r}"), sweep.get(f"sweep_{arm}_r{r + 1}")
            if cur is None or nxt is None:
                continue
            picked = [rows[k] for k in nxt if k not in set(cur)]
            km = KernelCostModel(cv_folds=0).fit([rows[k] for k in sweep["sweep_grid"] + cur])
            out.append({"arm": arm, "round": r, "picked": len(picked), **heldout_error(km, picked)})
    return out


def _plot_adaptive(comparison: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    panels = (("zoo kernels: median |log(pred/meas)|", lambda a: a["zoo_kernels_heldout"].get("median_abs_log_err")),
              ("LOFO networks: within ±10 % (%)", lambda a: a["lofo"].get("within_10pct", float("nan")) * 100),
              ("LOFO networks: MAPE (%)", lambda a: a["lofo"].get("mape_pct")))
    for ax, (title, get) in zip(axes, panels):
        for arm, style in (("adaptive", "o-"), ("uniform", "s--")):
            pts = [(c["sweep_kernels"], get(c[arm])) for c in comparison if arm in c]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=arm)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("measured sweep kernels (x86)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# ---------------------------------------------------------- under a tuned database
def _zoo_networks(work: Path, models, resolutions):
    from chamtvm.lower.network import lower_onnx

    for m in models:
        for res in resolutions:
            path = work / "onnx" / f"{m}_{res}.onnx"
            if path.exists():
                yield m, res, lower_onnx(path)


def measure_tuned(work: Path, models, resolutions, trials: int, trials_per_kernel: int, log=print) -> None:
    """Tune the zoo's kernels with the project's policy (``tuning.policy.tune_schedules``:
    joint MetaSchedule tuning of the costliest kernel of each kind within ``trials``, then
    transfer of the traces to the untuned kernels of the same kinds) into
    ``<work>/schedules/x86``; measure every kernel under the resulting schedules (tuned and
    transferred ones get new table keys) and every network end to end under them
    (``networks_tuned.jsonl``; kernel keys in sources.jsonl as ``tuned:<model>``)."""
    from chamtvm.measure.local import LocalRunner
    from chamtvm.measure.network import measure_network
    from chamtvm.pipeline.config import TuneConfig
    from chamtvm.table.faster_schedule import default_rows_us
    from chamtvm.tuning.policy import tune_schedules
    from chamtvm.table.fill import fill_table, prepare
    from chamtvm.table.store import LatencyTable
    from chamtvm.targets.spec import get_target
    from chamtvm.tuning.schedules import ScheduleSource

    target = get_target("x86")
    table = LatencyTable(work / "x86.jsonl").load()
    sched = ScheduleSource(target, work / "schedules" / "x86")
    nets = list(_zoo_networks(work, models, resolutions))
    kernels: dict = {}
    for _, _, net in nets:
        for k in net.kernels:
            if k.struct_hash in kernels:
                kernels[k.struct_hash].count += k.count
            else:
                kernels[k.struct_hash] = type(k)(k.name, k.struct_hash, k.args, k.flops, k.count, k.func)
    lines_path = work / "tuning_lines.jsonl"
    with LocalRunner(target) as runner:
        if not lines_path.exists():
            t0 = time.time()
            ks = list(kernels.values())
            lines = tune_schedules(ks, default_rows_us(ks, table, target), target, sched, trials, trials_per_kernel,
                                   TuneConfig.tuning_population, log=log, runner=runner)
            append_lines(lines_path, [json.dumps({**d, "tuning_wall_s": time.time() - t0}) for d in lines])
            log(f"tuned: {sum(d['policy'] == 'joint' for d in lines)} kernels jointly, "
                f"{sum(d['policy'] == 'transfer' and d.get('committed') for d in lines)} transfers committed, "
                f"{time.time() - t0:.0f} s")
        sched.reload()
        src = {(s["source"], s["resolution"]) for s in _read_jsonl(work / "sources.jsonl")}
        measured = {(r["model"], r["resolution"]) for r in _read_jsonl(work / "networks_tuned.jsonl")}
        for m, res, net in nets:
            t0 = time.time()
            prepared = prepare(net.kernels, target, sched)
            s = fill_table(prepared, table, runner, target)
            if (f"tuned:{m}", res) not in src:
                append_jsonl(work / "sources.jsonl", {"source": f"tuned:{m}", "resolution": res,
                                                      "kernels": [[p.key, p.kernel.count] for p in prepared]})
            if (m, res) not in measured:
                r = measure_network(net, target, runner, sched, key=f"{m}@{res}:tuned")
                row = {"model": m, "family": real.family_of(m), "resolution": res, "error": r.error,
                       "tuned_calls": sum(p.kernel.count for p in prepared if p.schedule != "default")}
                if r.ok:
                    row.update(runtime_us_p50=float(np.median(r.samples_us)), samples_us=list(r.samples_us),
                               iqr_spread_pct=iqr_spread_pct(r.samples_us))
                append_jsonl(work / "networks_tuned.jsonl", row)
            log(f"{m}@{res} under the tuned database: {s.measured} kernels measured, "
                f"{sum(p.schedule != 'default' for p in prepared)} of {len(prepared)} with a tuned schedule, "
                f"{time.time() - t0:.0f} s")


def analyze_tuned(work: Path, run: dict) -> dict:
    """How well the kernel model predicts the latency of kernels under tuned/transferred
    schedules it never saw, leave-one-family-out: for family F the model is fitted on every
    sweep row, every default row of the other families and (protocol ``with_tuned_rows``) the
    tuned/transferred rows of the other families' kernels, or not (``default_rows_only``);
    it then prices F's kernels under the tuned database. Network level: F's networks under
    the tuned database, predicted as the sum over their kernels (table rows of the training
    set, the model for the rest) against their end-to-end measurement under that database."""
    from chamtvm.latency.models import KernelCostModel
    from chamtvm.table.store import LatencyTable

    rows = {r["key"]: r for r in LatencyTable(work / "x86.jsonl").load().rows()}
    src = _read_jsonl(work / "sources.jsonl")
    sweep_keys = {k for s in src if s["resolution"] is None for k, _ in s["kernels"]} & set(rows)
    default_nets = {(s["source"], s["resolution"]): s["kernels"] for s in src
                    if s["resolution"] is not None and not s["source"].startswith("tuned:")}
    tuned_nets = {(s["source"][6:], s["resolution"]): s["kernels"] for s in src if s["source"].startswith("tuned:")}
    e2e = {(r["model"], r["resolution"]): r for r in _read_jsonl(work / "networks_tuned.jsonl") if r.get("runtime_us_p50")}
    lines = _read_jsonl(work / "tuning_lines.jsonl")
    fams = sorted({real.family_of(m) for m, _ in tuned_nets})

    def keys_of(nets, fam, same):
        return {k for (m, _), ks in nets.items() if (real.family_of(m) == fam) == same for k, _ in ks} & set(rows)

    out = {}
    for case, with_tuned in (("with_tuned_rows", True), ("default_rows_only", False)):
        kernel_errs, per_net = [], []
        for fam in fams:
            other_default = keys_of(default_nets, fam, False)
            other_tuned = {k for k in keys_of(tuned_nets, fam, False) if rows[k].get("schedule") != "default"}
            train = sweep_keys | other_default | (other_tuned if with_tuned else set())
            km = KernelCostModel(cv_folds=0).fit([rows[k] for k in sorted(train)])
            test = sorted(k for k in keys_of(tuned_nets, fam, True) if k not in train and rows[k].get("schedule") != "default")
            if test:
                est = km.predict_us([rows[k] for k in test])
                kernel_errs += [(float(np.log(e / rows[k]["runtime_us_p50"])), rows[k].get("schedule_provenance"))
                                for k, e in zip(test, est)]
            for (m, res), ks in tuned_nets.items():
                if real.family_of(m) != fam or (m, res) not in e2e:
                    continue
                todo = [(rows[k], c) for k, c in ks if k in rows and k not in train]
                total = sum(rows[k]["runtime_us_p50"] * c for k, c in ks if k in train)
                if todo:
                    total += float(np.sum(km.predict_us([r for r, _ in todo]) * np.array([c for _, c in todo])))
                per_net.append({"model": m, "family": fam, "resolution": res, "predicted_sum_ms": total / 1e3,
                                "measured_ms": e2e[(m, res)]["runtime_us_p50"] / 1e3,
                                "measured_iqr_spread_pct": e2e[(m, res)]["iqr_spread_pct"],
                                "tuned_calls": e2e[(m, res)]["tuned_calls"]})
        ke = np.array([e for e, _ in kernel_errs])
        by_prov = {}
        for prov in sorted({p for _, p in kernel_errs}):
            sel = np.array([e for e, p in kernel_errs if p == prov])
            by_prov[prov] = {"n": int(len(sel)), "median_abs_log_err": float(np.median(np.abs(sel))),
                             "mean_log_err": float(np.mean(sel)), "mape_pct": float(np.mean(np.abs(np.expm1(sel))) * 100)}
        out[case] = {"kernels_tuned_schedule_unseen": {
                         "n": int(len(ke)), "median_abs_log_err": float(np.median(np.abs(ke))) if len(ke) else None,
                         "mean_log_err": float(np.mean(ke)) if len(ke) else None,
                         "mape_pct": float(np.mean(np.abs(np.expm1(ke))) * 100) if len(ke) else None,
                         "within_10pct": float(np.mean(np.abs(np.expm1(ke)) <= 0.1)) if len(ke) else None,
                         "by_provenance": by_prov},
                     "networks": _metrics([p["predicted_sum_ms"] for p in per_net], [p["measured_ms"] for p in per_net]),
                     "models": per_net}
    # oracle: every kernel under the tuned database measured (the noise floor of the sum)
    orc = [(sum(rows[k]["runtime_us_p50"] * c for k, c in ks if k in rows) / 1e3, e2e[n]["runtime_us_p50"] / 1e3)
           for n, ks in tuned_nets.items() if n in e2e]
    speedups = [d["default_us"] / d["best_us"] for d in lines if d.get("best_us") and d.get("default_us")
                and d["default_us"] == d["default_us"]]
    result = {"benchmark": "bench_real_models --tuned", "target": "x86",
              "device": "local x86 CPU (2 cores; how busy it was: the provenance block's noise record)",
              "schedules": "tuned database (tuning.policy joint tuning + tuning.transfer) of the zoo's kernels",
              "run": run, "tuned_jointly": sum(d["policy"] == "joint" for d in lines),
              "transfers_committed": sum(1 for d in lines if d["policy"] == "transfer" and d.get("committed")),
              "transfers_tried": sum(1 for d in lines if d["policy"] == "transfer"),
              "speedup_over_default_median": float(np.median(speedups)) if speedups else None,
              "tuning_wall_s": max((d.get("tuning_wall_s", 0) for d in lines), default=None),
              "oracle_all_kernels_measured": _metrics([a for a, _ in orc], [b for _, b in orc]),
              "protocols": out}
    return result


# ---------------------------------------------------------------------- analysis
def _metrics(pred, meas) -> dict:
    """``core.metrics.fidelity`` of the pairs (``{"n": 0}`` when there are none)."""
    return fidelity(pred, meas) if len(pred) else {"n": 0}


def analyze(work: Path, model_factory=None, extra_cases=(), extra: dict | None = None) -> dict:
    from chamtvm.latency.models import KernelCostModel
    from chamtvm.table.store import LatencyTable

    table = LatencyTable(work / "x86.jsonl").load()
    rows = {r["key"]: r for r in table.rows()}
    src = _read_jsonl(work / "sources.jsonl")
    sweep = {s["source"]: [k for k, _ in s["kernels"] if k in rows] for s in src if s["resolution"] is None}
    models = {(s["source"], s["resolution"]): s["kernels"] for s in src
              if s["resolution"] is not None and not s["source"].startswith("tuned:")}  # --tuned's are apart
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
             ("lofo_grid", ["sweep_grid"], True), ("lofo_real", ["sweep_grid", "sweep_real"], True),
             *extra_cases]
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
                    if rows[k]["runtime_us_p50"] > 0:  # 0 us: a call cheaper than the VM's per-call cost
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
            block["per_set"] = {name: _metrics([p[which] for p in per_model if p["family"] in fams],
                                               [p["measured_ms"] for p in per_model if p["family"] in fams])
                                for name, fams in FAMILY_SETS.items()}
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
        "benchmark": "bench_real_models", "target": "x86", "device": "local x86 CPU (2 cores; how busy it was: the "
        "provenance block's noise record)", "schedules": "default pipeline (no tuning database)",
        "table_rows": len(rows), "sweep_kernels": {k: len(v) for k, v in sweep.items()},
        "networks_measured": len(nets), "protocols": protocols, **(extra or {}),
    }
    return result


def _plot(protocols: dict, path: Path) -> None:
    plt = pyplot()
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
        ax.set_xlabel("measured ms (x86)"); ax.set_ylabel("predicted ms (kernel sum)")
    axes[0][0].legend(fontsize=7)
    save_figure(fig, path)


def main(argv=None) -> int:
    ap = argument_parser(__doc__)
    ap.add_argument("--quick", action="store_true", help="one member per family, 128 px only")
    ap.add_argument("--resolutions", default="128,224")
    ap.add_argument("--models", default=None, help="comma-separated zoo members (default: all)")
    ap.add_argument("--sweep-per-kind", type=int, default=16, help="probes per operator kind in the real sweep")
    ap.add_argument("--work", type=Path, default=WORK)
    ap.add_argument("--analyze-only", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS / "real_models_x86.json",
                    help="results file of the default protocol (its .png beside it)")
    ap.add_argument("--adaptive", action="store_true",
                    help="adaptive vs uniform sweep at equal numbers of measured kernels (no 530-kernel sweep; "
                         "writes real_models_x86_adaptive.json/.png)")
    ap.add_argument("--tuned", action="store_true",
                    help="after --adaptive's measurements: tune the zoo's kernels (small budget), measure them and the "
                         "networks under the tuned database, and judge the kernel model on tuned kernels it never saw "
                         "(writes real_models_x86_tuned.json)")
    ap.add_argument("--trials", type=int, default=96, help="MetaSchedule trials in all, with --tuned")
    ap.add_argument("--trials-per-kernel", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=ADAPTIVE["rounds"])
    ap.add_argument("--per-kind", type=int, default=ADAPTIVE["per_kind"])
    args = parse_args(ap, argv)
    earlier = args.work if args.analyze_only else None  # the analysis of measurements made before
    resolutions = (128,) if args.quick else tuple(int(r) for r in args.resolutions.split(","))
    models = args.models.split(",") if args.models else (QUICK_MODELS if args.quick else real.names())
    log = lambda m: print(m, flush=True)  # noqa: E731
    if args.tuned:
        if args.work == WORK:
            args.work = WORK.with_name("bench_real_models_adaptive")
        run = {"models": list(models), "resolutions": list(resolutions), "trials": args.trials,
               "trials_per_kernel": args.trials_per_kernel}
        if not args.analyze_only:
            measure_tuned(args.work, models, resolutions, args.trials, args.trials_per_kernel, log=log)
        res = analyze_tuned(args.work, run)
        write_results(res, RESULTS / "real_models_x86_tuned.json", measurements_from=earlier)
        print(json.dumps({k: v for k, v in res.items() if k != "protocols"}, indent=1))
        for case, p in res["protocols"].items():
            print(case, json.dumps(p["kernels_tuned_schedule_unseen"]), json.dumps(p["networks"]))
        print("how busy the machine was: the noise record above")
        return 0
    if args.adaptive:
        if args.work == WORK:
            args.work = WORK.with_name("bench_real_models_adaptive")
        settings = {**ADAPTIVE, "rounds": args.rounds, "per_kind": args.per_kind}
        run = {"models": list(models), "resolutions": list(resolutions), "schedules": "default pipeline",
               "target_threads": "auto (x86.json)"}
        if not args.analyze_only:
            measure(args.work, resolutions, models, 0, log=log)
            measure_adaptive(args.work, settings, log=log)
        res = analyze_adaptive(args.work, settings, run)
        figure = (lambda r, png: _plot_adaptive(r["comparison_equal_kernels"], png)) \
            if res["comparison_equal_kernels"] else None
        write_results(res, RESULTS / "real_models_x86_adaptive.json", figure=figure, measurements_from=earlier)
        for c in res["comparison_equal_kernels"]:
            for arm in ("adaptive", "uniform"):
                if arm in c:
                    a, h = c[arm]["lofo"], c[arm]["zoo_kernels_heldout"]
                    print(f"round {c['round']} {arm:<9} sweep kernels {c['sweep_kernels']:<4} zoo kernels median "
                          f"|log err| {h.get('median_abs_log_err', float('nan')):.3f} bias "
                          f"{h.get('mean_log_err', float('nan')):+.3f} | LOFO n={a['n']} within10="
                          f"{a.get('within_10pct', 0) * 100:5.1f}% MAPE={a.get('mape_pct', float('nan')):5.1f}% "
                          f"mean err={a.get('mean_error_pct', float('nan')):+6.1f}%")
        for e in res["error_on_next_picks"]:
            print(f"round {e['round']} {e['arm']:<9} error of its model on its next {e['picked']} picks: median "
                  f"|log err| {e.get('median_abs_log_err', float('nan')):.3f}, bias {e.get('mean_log_err', float('nan')):+.3f}")
        print("how busy the machine was: the noise record above")
        return 0
    if not args.analyze_only:
        measure(args.work, resolutions, models, args.sweep_per_kind, log=log)
    res = analyze(args.work)
    if earlier is not None and args.out.exists():  # the file it replaces holds the measuring run's provenance
        earlier = args.out
    write_results(res, args.out,
                  figure=(lambda r, png: _plot(r["protocols"], png)) if res["protocols"] else None,
                  measurements_from=earlier)
    for case, p in res["protocols"].items():
        for which in ("predicted_sum_ms", "predicted_scaled_ms"):
            m = p["summary"][which]["all"]
            print(f"{case:<28} {which:<20} n={m['n']:<3} within10={m.get('within_10pct', 0) * 100:5.1f}% "
                  f"within5={m.get('within_5pct', 0) * 100:5.1f}% MAPE={m.get('mape_pct', float('nan')):5.1f}% "
                  f"mean err={m.get('mean_error_pct', float('nan')):+6.1f}% tau={m.get('kendall_tau', float('nan')):.2f}")
        rc, kl = p["summary"]["range_coverage"], p["kernel_level"]
        if rc["n_with_range"]:
            print(f"{case:<28} measured inside the predicted range: {rc['share_measured_inside'] * 100:.0f}% "
                  f"of {rc['n_with_range']}")
        if kl["n_estimated"]:
            print(f"{case:<28} kernels estimated: {kl['n_estimated']}, median |log err| "
                  f"{kl['median_abs_log_err']:.3f}, time-weighted mean log err {kl['time_weighted_mean_log_err']:+.3f}")
    print("how busy the machine was: the noise record above; spread of each network's repeats in the JSON")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

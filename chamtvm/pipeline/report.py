"""The main job's report: the report step (the dict every figure of the run goes into), its
text lines and the plot of the chosen networks."""

from __future__ import annotations

from pathlib import Path

from ..core.metrics import fidelity
from ..core.versions import tvm_version
from ..table.noise import noise_line, noise_summary
from ..tuning.schedules import DEFAULT_TAG
from ..search.report import tuning_summary
from ..search.uncertainty import flat_front_warning
from .adapt import QUANTILES, pick_report


def step_report(s) -> None:
    """The report dict (held-out fidelity, the picks, skipped steps) and the plot of the picks."""
    cfg, target, runner, space, models = s.cfg, s.target, s.runner, s.space, s.models
    results = s.get("heldout", [])
    prepared = deployed(s)
    set_aside = set(s.get("set_aside_schedules") or [])
    fills = [f for f in (s.get("table_fill"), s.get("tuned_fill")) if f is not None]
    report = {
        "target": target.name,
        "device_label": runner.label,
        "emulated": runner.emulated,
        "runtime_threads": target.runtime_threads,
        "space": space.name,
        "tvm_version": tvm_version(),
        "statistic": cfg.statistic,
        "table": {"path": str(s.table.path), "rows": len(s.table), "space_kernels": len(s.kernels),
                  "measured_now": sum(f.measured for f in fills), "failed": sum(f.failed for f in fills),
                  "calibration_measured_now": s.get("calibration_measured", 0),
                  "adaptive_calibration_rounds": s.get("adaptive_calibration", [])},
        "tuning": {"trials_budget": cfg.trials, "trials_per_kernel": cfg.trials_per_kernel,
                   "tuned_now": s.get("tuned_now", []),
                   "kernels_with_tuned_schedule": sum(1 for p in prepared if p.schedule != DEFAULT_TAG),
                   "set_aside_in_network": len(set_aside),
                   "set_aside_kernels": [k.name for k in s.kernels if k.struct_hash in set_aside]},
        "predictor": {"residual_mode": models.residual.mode if models.residual else "none",
                      "residual_selection": models.residual_selection,
                      "training_networks": models.n_train, "kernel_model_rows": models.kernel_rows,
                      "models": models.paths},
        "networks": results,
        "fidelity": fidelity([r["predicted_ms"] for r in results], [r["measured_ms"] for r in results])
        if results else None,
        "fidelity_table_sum": fidelity([r["table_sum_ms"] for r in results], [r["measured_ms"] for r in results])
        if results else None,
        "skipped_steps": dict(s.skipped),
        "measurement_noise": run_noise(s),
    }
    s.log(noise_line(report["measurement_noise"]))
    report.update(adapt_report(s))
    if report["picks"]:
        plot = Path(cfg.runs_dir) / f"tune-{target.name}" / f"{space.name}-picks.png"
        picks_plot(report, plot)
        report["picks_plot"] = str(plot)
    s.report = report


def deployed(s) -> list:
    """The space's kernels with the schedules that ship (after step ``faster schedules``), else
    the schedules timed last (after tuning, or those the job started with)."""
    return s.get("prepared_deployed") or s.get("prepared_tuned") or s.prepared


def run_noise(s) -> dict:
    """The noise of this run's measurements (``table.noise``): the rows of the space's kernels
    as priced and the networks measured end to end (training and held-out), and the nominal
    speed learnt for the target."""
    from ..table.reference import ReferenceBaseline

    prepared = deployed(s)
    kernel_rows = [r for r in (s.table.get(p.key) for p in prepared) if r is not None]
    network_rows = [r for r in s.nets_table.rows() if r.get("key", "").startswith(s.target.fingerprint)]
    reference = ReferenceBaseline(s.table.path.parent, s.target.name, s.target.fingerprint).summary()
    return noise_summary(kernel_rows, network_rows, reference)


def adapt_report(s) -> dict:
    """The report's accuracy, picks, regret and search parts (steps ``accuracy`` to ``regret``)."""
    if not s.produced("accuracy"):
        note = s.get("trainer_note") or s.skipped.get("accuracy", "skipped")
        return {"accuracy": {"status": note}, "picks": []}
    cfg, ctx, picks = s.cfg, s.get("search_ctx"), s.get("picks", [])
    exports, prices = s.get("exports") or [None] * len(picks), s.get("pick_prices") or [None] * len(picks)
    regrets = s.get("regrets") or [None] * len(picks)
    tunings = s.get("pick_tunings") or [None] * len(picks)
    before = s.get("pick_prices_before") or [None] * len(picks)
    rows = [pick_report(p, e, m, r, ctx, t, b) for p, e, m, r, t, b in zip(picks, exports, prices, regrets, tunings, before)]
    flat = [p["budget_ms"] for p in rows if p.get("front_flatness", {}).get("flat")]
    warning = flat_front_warning(flat) if flat else None
    if warning:
        s.log(f"WARNING: {warning}")
    return {"accuracy": s.accuracy, "picks": rows, "accuracy_warning": warning,
            "residual_after_pick_tuning": s.get("pick_residual"),
            "regret": {"networks": s.regret_networks, "contenders": cfg.contenders} if s.produced("regrets") else None,
            "search_setup": {"picks": "best observed network of the budget-aware accuracy loop when its pool is the "
                                      "whole space, else the genetic search on the GP",
                             "lcb_kappa": cfg.lcb_kappa,
                             "budgets": "given" if cfg.budgets_ms else f"quantiles {list(QUANTILES)} of predicted latency",
                             "seed": cfg.search_seed, "population": cfg.population, "generations": cfg.generations,
                             "accuracy_protocol": ctx.protocol if ctx else None,
                             "trained_architectures": ctx.n_trained if ctx else None}}


def format_report(report: dict) -> str:
    """Human-readable report (the JSON holds the same figures)."""
    lines = []
    emu = " — EMULATION timings, not device timings" if report["emulated"] else ""
    lines.append(f"chamtvm tune report: target {report['target']} on {report['device_label']}{emu}")
    if report.get("runtime_threads"):
        lines.append(f"timed with {report['runtime_threads']} TVM threads per kernel: run the exported library "
                     f"with TVM_NUM_THREADS={report['runtime_threads']} to get the predicted latency")
    t = report["table"]
    lines.append(f"table: {t['rows']} rows ({t['space_kernels']} kernels in space {report['space']}, "
                 f"{t['measured_now']} measured this run, {t['failed']} failed)")
    tu = report["tuning"]
    set_aside = set(tu.get("set_aside_kernels", []))
    lines.append(f"tuning: {len(tu['tuned_now'])} kernels tuned this run, "
                 f"{tu['kernels_with_tuned_schedule']} kernels use a tuned schedule"
                 + (f", {tu['set_aside_in_network']} set aside (no faster in the network than the default row: "
                    "the default ships)" if tu.get("set_aside_in_network") else ""))
    for line in tu["tuned_now"]:
        sp = f"{line['default_us'] / line['best_us']:.1f}x" if line.get("best_us") else "n/a"
        lines.append(f"  {line['name']:<36} {line['trials']:>3} trials {line['tuning_s']:>6.1f} s  "
                     f"default {line['default_us']:.1f} us -> tuned {line['best_us'] or float('nan'):.1f} us ({sp})"
                     + ("  not faster: default kept" if line.get("kept") is False else
                        "  no faster in the network: default ships" if line["name"] in set_aside else ""))
    lines.append("")
    lines.append(f"{'network':<10} {'table sum ms':>12} {'predicted ms':>12} {'measured ms':>12} {'error %':>8} {'spread %':>9}")
    for r in report["networks"]:
        lines.append(f"{r['name']:<10} {r['table_sum_ms']:>12.3f} {r['predicted_ms']:>12.3f} {r['measured_ms']:>12.3f} "
                     f"{r['error_pct']:>+8.1f} {r['measured_spread_pct']:>9.1f}")
    lines.append("")
    pr = report.get("predictor", {})
    for label, f in (("table sum alone", report.get("fidelity_table_sum")),
                     (f"table + {pr.get('residual_mode')} residual ({pr.get('training_networks')} training networks)",
                      report.get("fidelity"))):
        if not f:
            continue
        lines.append(f"held-out fidelity, {label} (n={f['n']}): "
                     f"within ±5%: {100 * f['within_5pct']:.0f}%  within ±10%: {100 * f['within_10pct']:.0f}%  "
                     f"median APE: {f['median_ape_pct']:.2f}%  MAPE: {f['mape_pct']:.2f}%  "
                     f"Kendall tau: {f.get('kendall_tau', float('nan')):.3f}")

    lines += format_adapt(report)
    if report.get("picks_plot"):
        lines.append(f"plot: {report['picks_plot']}")
    s = report["seconds"]
    lines.append("time (s): " + ", ".join(f"{k} {v}" for k, v in s.items()))
    return "\n".join(lines)

def format_adapt(report: dict) -> list[str]:
    """Report lines of the steps ``accuracy`` to ``regret``."""
    acc = report.get("accuracy")
    if not acc:
        return []
    if acc.get("status") != "ok":
        return [f"accuracy predictor and search: {acc.get('status')}"]
    cv = acc["cv"]
    tau = "n/a" if cv.get("kendall_tau") is None else f"{cv['kendall_tau']:.3f}"
    how = "looked up" if acc.get("kind") == "lookup" else f"{acc['epochs']} epochs"
    lines = [f"accuracy predictor ({acc['task']}, {how}): {acc['samples']} architectures "
             f"({acc['trained_now']} trained now, {acc['resumed_from_journal']} from the journal, {acc['failed']} failed"
             + (f", and {acc['known_trainings']['used_networks']} known from {acc['known_trainings']['journal']}"
                if acc.get("known_trainings") else "") + "); "
             f"accuracy {100 * acc['measured_accuracy']['min']:.1f}..{100 * acc['measured_accuracy']['max']:.1f}%; "
             f"cross-validated Kendall tau {tau}, RMSE {100 * cv['rmse']:.2f} points"
             + (f" (task ceiling: seed-vs-seed tau {acc['ceiling']['kendall_tau_between_seeds']:.3f})"
                if acc.get("ceiling") else "")]
    emu = " (EMULATED)" if report.get("emulated") else ""
    lines.append(f"{'budget ms':>9} {'pred acc %':>10} {'pred ms':>8} {'measured ms' + emu:>12} {'error %':>8}  export")
    for p in report.get("picks", []):
        if p.get("error"):
            lines.append(f"{p['budget_ms']:>9.3g}  {p['error']}")
            continue
        meas = f"{p['measured_ms']:.3f}" if p["measured_ms"] else "failed"
        err = f"{p['error_pct']:+.1f}" if p["error_pct"] is not None else "-"
        lines.append(f"{p['budget_ms']:>9.3g} {100 * p['predicted_accuracy']:>10.2f} {p['predicted_latency_ms']:>8.3f} "
                     f"{meas:>12} {err:>8}  {Path(p['artifacts']['library']).parent}"
                     f"{'' if p['exported_now'] else ' (up to date)'}"
                     + (f"  observed acc {100 * p['observed_accuracy']:.2f}% (looked up)"
                        if p.get("chosen_by") == "observed" else ""))
    tuned = [p for p in report.get("picks", []) if p.get("tuning")]
    if tuned:
        lines.append(f"the picks' own kernels tuned before export{emu}:")
        refit = report.get("residual_after_pick_tuning")
        if refit:
            inn = refit.get("in_network") or {}
            counts = [c for c in inn.get("picks_kernels_priced_in_network") or [] if c]
            lines.append((f"  predicted with a residual refitted on {refit.get('networks')} tuning networks "
                          f"({refit.get('chosen')})" if refit.get("chosen") is not None else
                          f"  residual not refitted: {refit.get('why')}")
                         + (f"; kernels priced from their times inside the tuning networks: "
                            + ", ".join(f"{a} of {b}" for a, b in counts) if counts else ""))
        for p in tuned:
            lines.append(f"{p['budget_ms']:>9.3g}  "
                         + tuning_summary(p["tuning"], p["predicted_latency_ms"], p["measured_ms"] or None))
    picks = [p for p in report.get("picks", []) if not p.get("error")]
    if picks:
        lines.append(f"{'budget ms':>9} {'P(beats runner-up)':>18} {'front spread pts':>16} {'GP std pts':>10}"
                     + (f" {'true acc %':>10} {'best true %':>11} {'regret pts':>10} {'lookups':>7}"
                        if any("regret_points" in p for p in picks) else ""))
        for p in picks:
            pb = "-" if p.get("p_beats_runner_up") is None else f"{p['p_beats_runner_up']:.2f}"
            fl = p.get("front_flatness") or {}
            line = (f"{p['budget_ms']:>9.3g} {pb:>18} {fl.get('spread_points', float('nan')):>16.2f} "
                    f"{fl.get('gp_std_points', float('nan')):>10.2f}")
            if "regret_points" in p:
                best = p.get("best_true_accuracy_under_budget")
                best_s = "-" if best is None else f"{100 * best:.2f}"
                regret_s = "-" if p["regret_points"] is None else f"{p['regret_points']:.2f}"
                line += f" {100 * p['true_accuracy']:>10.2f} {best_s:>11} {regret_s:>10} {p['samples']:>7}"
            lines.append(line + ("  FLAT" if fl.get("flat") else ""))
    if report.get("accuracy_warning"):
        lines.append(f"WARNING: {report['accuracy_warning']}")
    return lines


def picks_plot(report: dict, path: Path) -> None:
    """Predicted Pareto front and the chosen network at each budget (predicted and measured)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picks = [p for p in report.get("picks", []) if not p.get("error")]
    if not picks:
        return
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    front = max(picks, key=lambda p: p["budget_ms"])["pareto"]
    ax.step([f["predicted_latency_ms"] for f in front], [100 * f["predicted_accuracy"] for f in front],
            where="post", color="grey", lw=1, label="Pareto front (predicted)")
    emu = " (EMULATED)" if report.get("emulated") else ""
    for i, p in enumerate(picks):
        c = f"C{i}"
        ax.axvline(p["budget_ms"], color=c, ls="--", lw=0.8)
        ax.scatter([p["predicted_latency_ms"]], [100 * p["predicted_accuracy"]], color=c, marker="o",
                   label=f"budget {p['budget_ms']:g} ms: predicted")
        if p["measured_ms"]:
            ax.scatter([p["measured_ms"]], [100 * p["predicted_accuracy"]], color=c, marker="x",
                       label=f"budget {p['budget_ms']:g} ms: measured{emu}")
    ax.set(xlabel=f"latency on {report['target']} (ms)", ylabel="predicted accuracy (%)",
           title=f"{report['space']} on {report['target']}: chosen networks")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)

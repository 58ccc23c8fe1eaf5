"""The main job's report: text lines and the plot of the chosen networks."""

from __future__ import annotations
from pathlib import Path



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
    lines.append(f"tuning: {len(tu['tuned_now'])} kernels tuned this run, "
                 f"{tu['kernels_with_tuned_schedule']} kernels use a tuned schedule")
    for line in tu["tuned_now"]:
        sp = f"{line['default_us'] / line['best_us']:.1f}x" if line.get("best_us") else "n/a"
        lines.append(f"  {line['name']:<36} {line['trials']:>3} trials {line['tuning_s']:>6.1f} s  "
                     f"default {line['default_us']:.1f} us -> tuned {line['best_us'] or float('nan'):.1f} us ({sp})"
                     + ("  not faster: default kept" if line.get("kept") is False else ""))
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
    """Report lines of steps 7-10."""
    acc = report.get("accuracy")
    if not acc:
        return []
    if acc.get("status") != "ok":
        return [f"accuracy predictor and search: {acc.get('status')}"]
    cv = acc["cv"]
    tau = "n/a" if cv.get("kendall_tau") is None else f"{cv['kendall_tau']:.3f}"
    how = "looked up" if acc.get("kind") == "lookup" else f"{acc['epochs']} epochs"
    lines = [f"accuracy predictor ({acc['task']}, {how}): {acc['samples']} architectures "
             f"({acc['trained_now']} trained now, {acc['resumed_from_journal']} from the journal, {acc['failed']} failed); "
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
                     f"{'' if p['exported_now'] else ' (up to date)'}")
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

"""The ``search`` command's output: text report and Pareto plot."""

from __future__ import annotations
import json
from pathlib import Path

from .uncertainty import flat_front_warning



def pareto_plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    lat = [p["predicted_latency_ms"] for p in report["pareto"]]
    acc = [100 * p["predicted_accuracy"] for p in report["pareto"]]
    ax.step(lat, acc, where="post", marker="o", ms=3, label="Pareto front (predicted)")
    ax.axvline(report["latency_budget_ms"], color="grey", ls="--", label="latency budget")
    b = report["best"]
    ax.scatter([b["predicted_latency_ms"]], [100 * b["predicted_accuracy"]], c="red", zorder=3, label="chosen")
    m = report.get("measured") or {}
    if m.get("latency_ms"):
        ax.scatter([m["latency_ms"]], [100 * b["predicted_accuracy"]], marker="x", c="black", zorder=3,
                   label="chosen, measured latency" + (" (EMULATED)" if report["emulated"] else ""))
    ax.set(xlabel=f"latency on {report['target']} (ms)", ylabel="predicted accuracy (%)",
           title=f"space {report['space']}: accuracy vs latency")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def tuning_summary(t: dict, predicted_after_ms: float | None, measured_after_ms: float | None) -> str:
    """One line of a pick's tuning (a report's ``tuning`` entry): trials, time, and its
    predicted and measured latency before -> after (ms; "-" where unknown)."""
    def ms(x):
        return "-" if x is None else f"{x:.3f}"

    shared = t.get("campaign_networks") or 1
    campaign = f" (one campaign for {shared} picks)" if shared > 1 else ""
    return (f"{t['trials_spent']} of {t['trials_budget']} trials{campaign}, {t['seconds']:.0f} s: predicted "
            f"{ms(t['predicted_before_ms'])} -> {ms(predicted_after_ms)} ms, measured {ms(t['measured_before_ms'])} -> "
            f"{ms(measured_after_ms)} ms" + ("" if t["within_budget_after"] else "; OVER BUDGET after tuning")
            + refit_note(t, predicted_after_ms))


def refit_note(t: dict, predicted_after_ms: float | None) -> str:
    """``" (search's residual: X ms)"`` where the residual was refitted after the tuning (the
    pick is priced by the refitted one), else ``""``."""
    was = t.get("predicted_with_search_residual_ms")
    if was is None or predicted_after_ms is None or abs(was - predicted_after_ms) < 1e-9:
        return ""
    return f" (the search's residual: {was:.3f} ms)"


def format_search(report: dict) -> str:
    b = report["best"]
    lines = [f"best network for {report['target']} under {report['latency_budget_ms']} ms "
             f"(space {report['space']}, {report['search']['evaluated']} candidates in {report['search']['seconds']} s):",
             f"  predicted accuracy {100 * b['predicted_accuracy']:.2f}%, predicted latency {b['predicted_latency_ms']:.3f} ms",
             f"  {json.dumps(b['architecture'])}"]
    u = report.get("uncertainty") or {}
    if u:
        pb = u.get("p_beats_runner_up")
        fl = u.get("front_flatness") or {}
        lines.append(f"  P(beats the runner-up) {'-' if pb is None else f'{pb:.2f}'}; front's predicted accuracies "
                     f"span {fl.get('spread_points', float('nan')):.2f} points, GP std {fl.get('gp_std_points', float('nan')):.2f} points")
        if fl.get("flat"):
            lines.append(f"  WARNING: {flat_front_warning()}")
    m = report.get("measured")
    if m:
        if m["latency_ms"] is not None:
            emu = " (EMULATED: not a device timing)" if report["emulated"] else ""
            lines.append(f"  measured {m['latency_ms']:.3f} ms on {report['device_label']}{emu}; predicted "
                         f"{m['predicted_latency_ms']:.3f} ms ({m['error_pct']:+.1f}%)")
        else:
            lines.append(f"  measuring failed: {m['error']}")
    if report.get("tuning"):
        m = report.get("measured") or {}
        lines.append("  its own kernels tuned before export: "
                     + tuning_summary(report["tuning"], m.get("predicted_latency_ms"), m.get("latency_ms")))
    lines.append(f"  Pareto front: {len(report['pareto'])} networks; artefacts in {Path(report['artifacts']['arch']).parent}")
    for k, v in report["artifacts"].items():
        lines.append(f"    {k}: {v}")
    return "\n".join(lines)
